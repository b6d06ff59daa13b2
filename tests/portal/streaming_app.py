"""A test-only ASGI app served through the Procfile's uvicorn flags: a large streamed response.

``GET /stream?mb=N`` sends N MB in 1 MB messages (byte i is ``i % 251``), as the proxy streams
a layer; anything else answers ``ok``.
"""

PATTERN = bytes(i % 251 for i in range(251))
MB = 1 << 20


def expected(mb: int) -> bytes:
    total = mb * MB
    return (PATTERN * (total // len(PATTERN) + 1))[:total]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] != "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"3")]})
        await send({"type": "http.response.body", "body": b"ok\n"})
        return
    mb = int(scope["query_string"].decode().removeprefix("mb=") or 1)
    body = expected(mb)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"),
                            (b"content-length", str(len(body)).encode())]})
    for start in range(0, len(body), MB):
        await send({"type": "http.response.body", "body": body[start:start + MB],
                    "more_body": start + MB < len(body)})

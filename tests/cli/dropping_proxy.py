"""A loopback HTTP/1.1 proxy that loses the answers to chosen requests.

For each request whose method and path match ``drop`` (while ``budget`` lasts) it forwards the
request, reads the server's whole answer (so the server has done the work) and then closes the
client's connection without a byte: what a client sees when a load balancer or the network drops
a response. Everything else passes through unchanged. It understands only what the portal sends
back to the CLI: a head, then a Content-Length body.
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field

from tests.support.servers import LOOPBACK


def _read_message(sock: socket.socket, buffer: bytearray) -> bytes | None:
    """One HTTP message (head plus Content-Length body) from ``sock``; None when it closed."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buffer.extend(chunk)
    head_end = buffer.index(b"\r\n\r\n") + 4
    match = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", bytes(buffer[:head_end]))
    length = int(match.group(1)) if match else 0
    while len(buffer) < head_end + length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buffer.extend(chunk)
    message = bytes(buffer[:head_end + length])
    del buffer[:head_end + length]
    return message


@dataclass
class DroppingProxy:
    upstream: tuple[str, int]
    drop: re.Pattern  # matched against b"METHOD /path"
    budget: int = 1
    dropped: list[bytes] = field(default_factory=list)
    _server: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.getsockname()[1]}"

    def start(self) -> DroppingProxy:
        self._server = socket.create_server((LOOPBACK, 0))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream, timeout=120)
        from_client, from_upstream = bytearray(), bytearray()
        try:
            while True:
                request = _read_message(client, from_client)
                if request is None:
                    return
                upstream.sendall(request)
                response = _read_message(upstream, from_upstream)
                if response is None:
                    return
                request_line = request.split(b" HTTP/", 1)[0]
                if self.budget > 0 and self.drop.search(request_line):
                    self.budget -= 1
                    self.dropped.append(request_line)
                    return  # the answer is lost: close without sending it
                client.sendall(response)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

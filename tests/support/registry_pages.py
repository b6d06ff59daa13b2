"""What a user does on the registries pages over HTTP, against a running ``PortalStack``."""

from __future__ import annotations

import re
import time

import httpx


def csrf(client: httpx.Client) -> str:
    return client.cookies["csrftoken"]


def add_registry(client: httpx.Client, data: dict[str, str]) -> httpx.Response:
    return client.post("/registries/add/", data={**data, "csrfmiddlewaretoken": csrf(client)})


def registry_status(client: httpx.Client, endpoint: str) -> tuple[str, str, int]:
    """(status, row HTML, HTTP status) of ``endpoint``'s row in the polled list fragment."""
    response = client.get("/registries/", headers={"HX-Request": "true"})
    rows = re.findall(r'<tr id="registry-\d+">.*?</tr>', response.text, re.S)
    for row in rows:
        if f"<code>{endpoint}</code>" in row:
            return re.search(r'data-status="(\w+)"', row).group(1), row, response.status_code
    return "", "", response.status_code


def wait_for_status(client: httpx.Client, endpoint: str, statuses: set[str], *, timeout: float = 30,
                    interval: float = 0.05) -> tuple[str, str]:
    """Poll the list as the page does until ``endpoint`` reaches one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        status, row, _ = registry_status(client, endpoint)
        if status in statuses:
            return status, row
        if time.monotonic() > deadline:
            raise TimeoutError(f"{endpoint} stayed {status or 'absent'}, expected {statuses}")
        time.sleep(interval)

"""Finding 1: ``carexpert-tui --serve`` must not let another web page (or DNS rebinding) drive the app.

A real ``--serve`` process; aiohttp's client plays the attacker: a WebSocket with a
foreign ``Origin``, a rebound ``Host``, no token. Each is refused with 403 before any
app process starts; the page opened with the printed URL (token) is served and sets
the cookie that lets its own WebSocket through.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    """A running ``carexpert-tui --serve`` and the URL (with token) it printed."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "carexpert_tui", "--serve", "--port", str(port)],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**__import__("os").environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"})
    try:
        url = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and url is None:
            line = server.stdout.readline()
            if not line:
                break
            found = re.search(r"(http://localhost:\d+/\?token=[\w-]+)", line)
            url = found.group(1) if found else None
        assert url, "the server did not print its URL with a token"
        _wait_listening(port)
        yield port, url
    finally:
        server.terminate()
        server.wait(10)


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("localhost", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)


async def _ws_status(url: str, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers=headers) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as error:
            return error.status


async def test_foreign_origin_rebound_host_and_missing_token_are_refused(served):
    port, url = served
    token = url.split("token=")[1]
    ws = f"ws://localhost:{port}/ws"
    own = f"http://localhost:{port}"
    # Any web page the user visits: its Origin is its own site, even with the right token.
    assert await _ws_status(f"{ws}?token={token}", {"Origin": "http://evil.example"}) == 403
    # DNS rebinding: evil.example resolves to 127.0.0.1, so Host and Origin both say evil.example.
    rebound = f"evil.example:{port}"
    assert await _ws_status(f"{ws}?token={token}", {"Host": rebound, "Origin": f"http://{rebound}"}) == 403
    # The right origin without the token (a local program guessing): refused too.
    assert await _ws_status(ws, {"Origin": own}) == 403
    assert await _ws_status(f"{ws}?token=wrong", {"Origin": own}) == 403
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://localhost:{port}/") as response:
            assert response.status == 403  # the page itself needs the token
        async with session.get(f"http://localhost:{port}/", headers={"Host": rebound}) as response:
            assert response.status == 403


async def test_the_printed_url_opens_the_page_and_its_cookie_lets_the_websocket_in(served):
    port, url = served
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(url) as response:
            assert response.status == 200
            page = await response.text()
            assert "carexpert" in page and f"ws://localhost:{port}/ws" in page
        # The page's own WebSocket: same origin, token from the cookie. Accepted (closed at once).
        async with session.ws_connect(f"ws://localhost:{port}/ws",
                                      headers={"Origin": f"http://localhost:{port}"}) as ws:
            await ws.close()


def test_a_network_address_without_a_token_is_refused_and_one_with_a_token_warns():
    from carexpert_tui.serve import Guard, refusal, startup_message

    refused = subprocess.run([sys.executable, "-m", "carexpert_tui", "--serve", "--host", "0.0.0.0", "--no-token",
                              "--port", str(free_port())], capture_output=True, text=True, timeout=60,
                             env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert refused.returncode == 2 and "without a token" in refused.stderr
    guard = Guard("0.0.0.0", 8000)
    assert refusal(guard) is None and "not only this machine" in startup_message(guard)
    assert guard.token and guard.token in guard.url()
    assert refusal(Guard("127.0.0.1", 8000, token=None)) is None  # --no-token stays possible on loopback

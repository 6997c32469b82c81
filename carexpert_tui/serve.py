"""Browser mode (``carexpert-tui --serve``): textual-serve behind a guard.

textual-serve starts an app process for every WebSocket that connects, and that app
can edit the config, train and delete runs. Any web page the user visits can open a
WebSocket to ``localhost`` (browsers do not apply the same-origin policy to them), and
DNS rebinding can make a foreign name resolve to 127.0.0.1. So every HTTP and
WebSocket request passes ``check_request`` first:

- ``Host`` must name the address served (``localhost``/``127.0.0.1``/``[::1]`` on the
  port, for a loopback server), which defeats DNS rebinding;
- ``Origin``, when the browser sends one (always on a WebSocket), must be that same
  host, which stops other web pages;
- the request must carry the per-start token: ``?token=...`` in the URL printed at
  start (as Jupyter does), after which a cookie (HttpOnly, SameSite=Strict) carries it.

Serving on an address other than loopback exposes the app to the network: it needs the
token (``--no-token`` is refused there) and the start-up message says so.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

TOKEN_COOKIE = "carexpert_token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only ever means this machine."""
    host = host.strip("[]").lower()
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_port(value: str) -> tuple[str, int | None]:
    """(host, port) of a ``Host`` header value such as ``localhost:8000`` or ``[::1]:8000``."""
    parsed = urlsplit(f"//{value}")
    try:
        port = parsed.port
    except ValueError:
        return "", None
    return (parsed.hostname or "").lower(), port


@dataclass
class Guard:
    """What a request must show to reach the app: the right Host, a same-origin Origin, the token."""

    host: str
    port: int
    token: str | None = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def allowed_host(self, header: str) -> bool:
        host, port = _host_port(header)
        if not host or (port or 80) != self.port:
            return False
        if self.loopback:
            return host in LOOPBACK_NAMES or host == self.host.lower()
        return True  # on a network address the name users reach us by is unknown; the token guards

    def check_request(self, headers, query, cookies) -> str | None:
        """Why this request is refused, or None to let it through."""
        host = headers.get("Host", "")
        if not self.allowed_host(host):
            return f"Host {host!r} is not the address this app is served on"
        origin = headers.get("Origin")
        if origin is not None:
            parsed = urlsplit(origin)
            origin_host = parsed.netloc.lower()
            if parsed.scheme not in ("http", "https") or origin_host != host.lower():
                return f"Origin {origin!r} is not this app's page"
        if self.token is not None:
            given = query.get("token") or cookies.get(TOKEN_COOKIE) or ""
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return "missing or wrong token: open the URL with ?token=... printed when the server started"
        return None

    def url(self, host: str | None = None) -> str:
        """The URL to open (with the token), for the start-up message."""
        shown = host or (self.host if self.host not in ("0.0.0.0", "::") else "localhost")
        shown = f"[{shown}]" if ":" in shown else shown
        suffix = f"/?token={self.token}" if self.token else "/"
        return f"http://{shown}:{self.port}{suffix}"


def refusal(guard: Guard) -> str | None:
    """Why these settings must not be served at all, or None."""
    if guard.token is None and not guard.loopback:
        return (f"refusing to serve on {guard.host!r} without a token: anyone who can reach this machine could "
                "drive the app (edit the config, train, delete runs). Leave out --no-token, or serve on localhost.")
    return None


def make_server(command: str, guard: Guard, *, title: str = "carexpert"):
    """A textual-serve ``Server`` whose every request passes ``guard`` first."""
    from aiohttp import web
    from textual_serve.server import Server

    class GuardedServer(Server):
        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.middlewares.insert(0, guard_middleware)
            return app

        async def on_startup(self, app: web.Application) -> None:
            print(startup_message(guard), flush=True)

        async def handle_index(self, request: web.Request):
            # The page builds its WebSocket URL from public_url: use the host the browser used,
            # so the cookie set for that host goes with the WebSocket.
            self.public_url = f"http://{request.host}"
            return await super().handle_index(request)

    @web.middleware
    async def guard_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        problem = guard.check_request(request.headers, request.query, request.cookies)
        if problem:
            return web.Response(status=403, text=f"carexpert: refused: {problem}\n")
        response = await handler(request)
        if guard.token is not None and request.query.get("token") and isinstance(response, web.Response):
            response.set_cookie(TOKEN_COOKIE, guard.token, httponly=True, samesite="Strict", path="/")
        return response

    return GuardedServer(command, host=guard.host, port=guard.port, title=title)


def startup_message(guard: Guard) -> str:
    lines = [f"carexpert is served at {guard.url()}", "open that URL in a browser; press Ctrl+C to stop the server"]
    if guard.token is None:
        lines.append("no token (--no-token): any program on this machine can drive the app")
    if not guard.loopback:
        lines.append(f"warning: serving on {guard.host}, not only this machine: anyone on the network who has the "
                     "URL with its token can drive the app, and the connection is not encrypted (http)")
    return "\n".join(lines)

"""One line about the OpenAI-compatible API server: off, loading, or its URL, requests and tokens/s.

The server is ``carexpert serve`` started detached (its own session, like a training run),
so it keeps serving after the app or the SSH link closes, and a restarted app finds it
again. Everything shown comes from the ``status.json`` the server writes (read in a thread
worker once a second); starting and stopping go through the ``carexpert`` command.
"""

from __future__ import annotations

import time
from typing import Any

from textual import on, work
from textual.widgets import Static

from carexpert_tui.child_commands import start_server, stop_server
from carexpert_tui.messages import ServerSampled

POLL_SECONDS = 1.0


def describe_server(status: Any, starting: bool = False) -> str:
    """The bar's text for a ``ServerStatus`` (or None)."""
    if status is None or status.effective_state() not in ("starting", "loading", "ready", "stopping"):
        if starting:
            return "API ⟳ starting…"
        if status is not None and status.effective_state() in ("failed", "dead"):
            reason = f": {status.error.splitlines()[0]}" if status.error else ""
            return f"API ✗ {status.effective_state()}{reason} · ctrl+o starts it again"
        return "API off · ctrl+o serves the chosen model over an OpenAI-compatible API"
    state = status.effective_state()
    if state in ("starting", "loading"):
        return f"API ⟳ loading {status.model} · {status.url}"
    if state == "stopping":
        return f"API ⟳ stopping · {status.url}"
    parts = [f"API ● {status.url}", status.model, f"{status.requests} requests"]
    if status.running or status.waiting:
        parts.append(f"{status.running} answering, {status.waiting} waiting")
    if status.tokens_per_second:
        parts.append(f"{status.tokens_per_second:.0f} tok/s")
    if status.api_key_required:
        parts.append("key required")
    return " · ".join(parts)


class ServerBar(Static):
    """Shows the API server's state; ``start(model)``, ``stop()`` and ``toggle(model)`` steer it."""

    DEFAULT_CSS = """
    ServerBar { height: 1; padding: 0 1; color: $text-muted; }
    ServerBar.-live { color: $success; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", markup=False, **kwargs)
        self.status: Any = None
        self.starting_since: float | None = None

    def on_mount(self) -> None:
        self.show_status(None)
        self.poll()
        self.set_interval(POLL_SECONDS, self.poll)

    @property
    def live(self) -> bool:
        return self.status is not None and self.status.live

    @work(thread=True, exclusive=True, exit_on_error=False, group="serve-status", description="Reading the API status")
    def poll(self) -> None:
        services = self.app.services
        self.post_message(ServerSampled(services.server_status(services.serve_dir)))

    @on(ServerSampled)
    def server_sampled(self, message: ServerSampled) -> None:
        self.show_status(message.status)

    def show_status(self, status: Any) -> None:
        self.status = status
        if status is not None and status.live:
            self.starting_since = None
        elif self.starting_since is not None and time.monotonic() - self.starting_since > 30:
            self.starting_since = None  # it never came up: the log says why (see start())
        self.update(describe_server(status, starting=self.starting_since is not None))
        self.set_class(status is not None and status.live and status.state == "ready", "-live")

    def toggle(self, model_id: str | None) -> None:
        """Stop the server if it is live, else serve ``model_id`` (one key does both)."""
        if self.live:
            self.stop()
        else:
            self.start(model_id)

    def start(self, model_id: str | None) -> None:
        """Serve ``model_id`` (None: the base model) from a detached ``carexpert serve``."""
        if self.live or self.starting_since is not None:
            return
        self.starting_since = time.monotonic()
        self.update(describe_server(None, starting=True))
        self.run_server(model_id)

    @work(exclusive=True, exit_on_error=False, group="serve-run", description="Starting the API server")
    async def run_server(self, model_id: str | None) -> None:
        services = self.app.services
        proc = await start_server(services, self.app.config_path, model_id, services.serve_dir)
        code = await proc.wait()  # a server runs until stopped; an early exit is a failure to start
        self.starting_since = None
        if code not in (0, -15):
            log = services.serve_dir / "server.log"
            lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
                     if line.strip()] if log.is_file() else []
            said = services.sanitize(" ".join(lines[-2:]) if lines else f"exit status {code}")
            self.notify(f"The API server stopped: {said}", severity="error", timeout=10)
        self.poll()

    @work(exclusive=True, exit_on_error=False, group="serve-stop", description="Stopping the API server")
    async def stop(self) -> None:
        result = await stop_server(self.app.services, self.app.services.serve_dir)
        if not result.ok:
            self.notify(self.app.services.sanitize(result.last_line()), severity="error")
        self.poll()

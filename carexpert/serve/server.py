"""Start the HTTP server: check the bind, take the port, load the model, serve until SIGTERM/Ctrl+C.

Safe by default: it binds 127.0.0.1, and any other address refuses to start without an
API key (``--api-key`` or ``CAREXPERT_API_KEY``). The socket is bound before the model
loads, so a port in use fails at once and ``--port 0`` (any free port) shows its real URL
in ``status.json`` from the start. A status thread rewrites ``status.json`` about once a
second while anything changes; the final state (``stopped`` or ``failed``) is written on
the way out.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from carexpert.chat.sampling import SamplingSettings
from carexpert.config import Config
from carexpert.errors import UserError
from carexpert.serve.status import ServerStatus, read_server_status, status_path, write_server_status

API_KEY_ENV = "CAREXPERT_API_KEY"
STATUS_SECONDS = 1.0


@dataclass
class ServeOptions:
    model: str = "base"                # "base" or a run id
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    max_queue: int = 32                # requests waiting or running; more get 503
    max_tokens: int = 2048             # the most tokens one request may ask for
    max_body_bytes: int = 256 * 1024
    max_loaded: int = 1                # models kept loaded at once
    state_dir: Path = field(default_factory=lambda: Path("serve"))


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(options: ServeOptions) -> ServeOptions:
    """Refuse a non-loopback bind without a key; the key comes from the option or ``CAREXPERT_API_KEY``."""
    key = options.api_key or os.environ.get(API_KEY_ENV) or None
    if key is not None and len(key) < 8:
        raise UserError("the API key is too short (fewer than 8 characters)",
                        fix="use a long random key, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    if not is_loopback(options.host) and not key:
        raise UserError(f"refusing to listen on {options.host} without an API key: anyone who can reach this "
                        "address could use the model",
                        fix=f"pass --api-key KEY (or set {API_KEY_ENV}), or keep the default --host 127.0.0.1")
    for name, value, low in (("--port", options.port, 0), ("--max-queue", options.max_queue, 1),
                             ("--max-tokens", options.max_tokens, 1), ("--max-loaded", options.max_loaded, 1)):
        if value < low or (name == "--port" and value > 65535):
            raise UserError(f"{name} {value} is out of range")
    if options.max_body_bytes < 1024:
        raise UserError("--max-body-kb must be at least 1")
    return replace(options, api_key=key)


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is in use",
                            fix="pick another with --port, or stop that server") from None
        raise UserError(f"cannot listen on {host}:{port} ({error.strerror or error})",
                        fix="check --host names an address of this machine") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
    return f"http://{shown}:{port}/v1"


class StatusWriter:
    """Keeps ``status.json`` current from the scheduler's counters (a daemon thread)."""

    def __init__(self, state_dir: Path, status: ServerStatus):
        self.state_dir, self.status = state_dir, status
        self.scheduler: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="carexpert-serve-status", daemon=True)
        self._last: dict[str, Any] | None = None
        self._lock = threading.RLock()  # the status thread, the main thread and a signal handler all write

    def write(self, **changes: Any) -> None:
        with self._lock:
            self._write(changes)

    def _write(self, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            setattr(self.status, key, value)
        if self.scheduler is not None:
            for key, value in self.scheduler.snapshot().items():
                setattr(self.status, key, value)
        current = {k: v for k, v in self.status.to_dict().items() if k != "updated"}
        if current != self._last:
            self._last = current
            write_server_status(self.state_dir, self.status)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(STATUS_SECONDS):
            try:
                self.write()
            except OSError:
                pass  # a full disk must not stop the server; the next write tries again

    def stop(self) -> None:
        self._stop.set()


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, telling us the moment a stop signal arrives (cancel answers, say "stopping")."""

        on_exit: Callable[[], Any] = staticmethod(lambda: None)

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            self.on_exit()

    return Server


def run_server(config: Config, options: ServeOptions, say: Callable[[str], None] = print) -> int:
    """Serve until stopped; returns the exit status. UserError for anything the user can fix."""
    options = check_bind(options)
    try:
        import uvicorn

        from carexpert.serve.app import ServeSettings, build_app
    except ImportError as error:
        raise UserError(f"the web server is not installed ({error.name} is missing)",
                        fix="pip install 'carexpert[serve]'") from None
    from carexpert.serve.answer import answer_job
    from carexpert.serve.models import ModelRegistry
    from carexpert.serve.scheduler import Scheduler

    state_dir = Path(options.state_dir)
    previous = read_server_status(state_dir)
    if previous is not None and previous.live and previous.pid != os.getpid():
        raise UserError(f"a server is already running from this folder (pid {previous.pid}, {previous.url})",
                        where=str(status_path(state_dir)),
                        fix="stop it with 'carexpert serve --stop', or pass another --state-dir")
    registry = ModelRegistry(config, max_loaded=options.max_loaded, progress=say)
    registry.check(options.model)  # a run that does not exist fails before the port is taken
    sock = bind_socket(options.host, options.port)
    port = sock.getsockname()[1]
    url = url_of(options.host, port)
    writer = StatusWriter(state_dir, ServerStatus(state="loading", pid=os.getpid(), url=url, host=options.host,
                                                  port=port, model=options.model,
                                                  api_key_required=bool(options.api_key), capacity=options.max_queue))
    writer.write()
    scheduler = None
    try:
        say(f"loading {options.model}")
        registry.engine(options.model)
        scheduler = Scheduler(lambda job: answer_job(registry, job), capacity=options.max_queue).start()
        writer.scheduler = scheduler
        settings = ServeSettings(api_key=options.api_key, max_body_bytes=options.max_body_bytes,
                                 max_tokens=options.max_tokens, loopback_only=is_loopback(options.host),
                                 sampling=SamplingSettings.from_config(config.chat),
                                 system_prompt=config.chat.system_prompt or None,
                                 retrieval=bool(config.retrieval.enabled))
        app = build_app(registry, scheduler, settings)
        server = _server_class()(uvicorn.Config(
            app, log_level="info", timeout_graceful_shutdown=5, server_header=False,
            limit_concurrency=max(1024, options.max_queue * 8)))  # our queue answers 503 first
        def on_exit() -> None:
            scheduler.close()
            writer.write(state="stopping")

        server.on_exit = on_exit
        writer.write(state="ready")
        writer.start()
        say(f"serving {options.model} at {url}" + (" (API key required)" if options.api_key else ""))
        # uvicorn re-raises the signal that stopped it once it is done; with these handlers
        # that re-raise returns here, so the final status is written and the exit status is 0.
        handlers = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            server.run(sockets=[sock])
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        writer.stop()
        writer.write(state="stopped")
        return 0
    except UserError as error:
        writer.stop()
        writer.write(state="failed", error=error.render())
        raise
    except BaseException as error:
        writer.stop()
        writer.write(state="failed", error=f"{type(error).__name__}: {error}")
        raise
    finally:
        if scheduler is not None:
            scheduler.close()
        sock.close()

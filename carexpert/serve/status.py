"""A server's ``status.json``: what the app shows about a running ``carexpert serve``.

The server process writes it atomically (at start, about once a second while requests
come in, and when it stops), in a state folder (``serve/`` by default) beside its log
``server.log``; the app and ``carexpert serve --status`` read it, and a liveness check on the
pid tells a server that died from one that stopped. Like a training run, the server is
its own process in its own session, so it survives the app and the SSH link closing.
The API key is never written here, only whether one is required.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from carexpert.errors import UserError
from carexpert.fsutil import atomic_write_json
from carexpert.runs.status import pid_alive

DEFAULT_STATE_DIR = "serve"
STATUS_FILE = "status.json"
LOG_FILE = "server.log"
LIVE_STATES = ("starting", "loading", "ready", "stopping")


@dataclass
class ServerStatus:
    """The server's state and counters. ``state``: starting, loading, ready, stopping, stopped or failed."""

    state: str = "starting"
    pid: int | None = None
    url: str = ""
    host: str = ""
    port: int = 0
    model: str = ""                  # the model loaded at start (``base`` or a run id)
    api_key_required: bool = False
    requests: int = 0                # admitted to the queue
    completed: int = 0
    cancelled: int = 0               # the client went away or stopped reading
    rejected: int = 0                # answered 503: the queue was full
    failed: int = 0                  # answered with an error after admission
    running: int = 0
    waiting: int = 0
    capacity: int = 0
    tokens: int = 0                  # generated, all requests
    tokens_per_second: float | None = None  # decode rate over the answers of the last minute
    error: str | None = None
    started: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def live(self) -> bool:
        """The file says the server is up and its process exists."""
        return self.state in LIVE_STATES and pid_alive(self.pid)

    def effective_state(self) -> str:
        """``dead`` for a live state whose process is gone (killed, machine restarted)."""
        if self.state in LIVE_STATES and not pid_alive(self.pid):
            return "dead"
        return self.state


def status_path(state_dir: str | os.PathLike) -> Path:
    return Path(state_dir) / STATUS_FILE


def log_path(state_dir: str | os.PathLike) -> Path:
    return Path(state_dir) / LOG_FILE


def write_server_status(state_dir: str | os.PathLike, status: ServerStatus) -> None:
    status.updated = time.time()
    atomic_write_json(status_path(state_dir), status.to_dict())


def read_server_status(state_dir: str | os.PathLike) -> ServerStatus | None:
    """The status in ``state_dir``, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(status_path(state_dir).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        return ServerStatus(**{k: v for k, v in data.items() if k in ServerStatus.__dataclass_fields__})
    except TypeError:
        return None


def stop_server(state_dir: str | os.PathLike, wait_seconds: float = 15.0) -> ServerStatus:
    """Ask the server recorded in ``state_dir`` to stop (SIGTERM) and wait until it has; returns its last status."""
    status = read_server_status(state_dir)
    if status is None or not status.live or status.pid is None:
        raise UserError("no server is running here", where=str(status_path(state_dir)),
                        fix="start one with 'carexpert serve'")
    try:
        os.kill(int(status.pid), signal.SIGTERM)  # uvicorn finishes open responses, then exits
    except ProcessLookupError:
        return read_server_status(state_dir) or status
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline and pid_alive(status.pid):
        time.sleep(0.1)
    if pid_alive(status.pid):
        raise UserError(f"the server (pid {status.pid}) did not stop within {wait_seconds:.0f} s",
                        fix=f"kill it: kill {status.pid}")
    return read_server_status(state_dir) or status

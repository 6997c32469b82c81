"""Steering runs through the ``carexpert`` command, as child processes.

Training never runs in the app's process: ``carexpert train --detach`` starts the run
in its own session and returns its id; stop and resume are commands too. The
command's output goes to a temporary file rather than a pipe, because a detached
grandchild that inherited a pipe would keep it open and the app would wait on it
forever (the LLaMA-Factory web UI hang). Long jobs the app starts itself (a new
evaluation) get a log file in the run folder and their own session, so they outlive
the app just like a training run.

Named apart from ``carexpert.runs.control`` (the core's find/inspect/stop of run folders): this
module only builds command lines and runs them.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from carexpert.errors import UserError
from carexpert.runs import validate_run_id

COMMAND_TIMEOUT_S = 120.0


class Services(Protocol):
    """What running a command needs from the app's services (``carexpert_tui.services.Services``
    has both): the argv of the ``carexpert`` command and extra environment for the child."""

    env: dict[str, str]

    def command(self, *args: str) -> list[str]: ...


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def last_line(self) -> str:
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def child_env(services: Services) -> dict[str, str]:
    env = dict(os.environ)
    env.update(services.env)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


async def run_command(services: Services, *args: str, cwd: Path | None = None,
                      timeout: float = COMMAND_TIMEOUT_S) -> CommandResult:
    """Run ``carexpert ARGS`` to completion; output is captured through a file, not a pipe."""
    with tempfile.TemporaryFile() as out:
        proc = await asyncio.create_subprocess_exec(
            *services.command(*args), stdin=asyncio.subprocess.DEVNULL, stdout=out,
            stderr=asyncio.subprocess.STDOUT, cwd=cwd, env=child_env(services))
        try:
            returncode = await asyncio.wait_for(proc.wait(), timeout)
        except (TimeoutError, asyncio.CancelledError):
            proc.kill()
            await proc.wait()
            raise
        out.seek(0)
        return CommandResult(returncode, out.read().decode("utf-8", errors="replace"))


def run_id_from_output(result: CommandResult) -> str | None:
    """The run id ``train --detach`` printed: the last line that is nothing but a valid id."""
    for line in reversed(result.output.splitlines()):
        word = line.strip()
        if not word or " " in word:
            continue
        try:
            return validate_run_id(word)
        except UserError:
            continue
    return None


def config_args(config_path: Path | None) -> list[str]:
    """``--config FILE``, or nothing so the command uses its own default."""
    return ["--config", str(config_path)] if config_path is not None else []


async def start_training(services: Services, config_path: Path | None, *, quick: bool = False) -> CommandResult:
    """``train --detach --yes [--quick]``: the screen has shown the time estimate and asked already."""
    profile = ["--quick"] if quick else []
    return await run_command(services, "train", *config_args(config_path), *profile, "--detach", "--yes",
                             timeout=COMMAND_TIMEOUT_S * (4 if quick else 1))


async def resume_training(services: Services, config_path: Path | None, run_id: str, *,
                          force: bool = False) -> CommandResult:
    forced = ["--force"] if force else []
    return await run_command(services, "train", *config_args(config_path), "--resume", run_id, *forced, "--detach")


async def stop_run(services: Services, config_path: Path | None, run_id: str) -> CommandResult:
    return await run_command(services, "runs", "stop", run_id, *config_args(config_path))


# Make the child's rich progress bars render into the log file as they would on a terminal,
# so the app can read "37/120" from it.
LIVE_PROGRESS_ENV = {"TTY_INTERACTIVE": "1", "TTY_COMPATIBLE": "1", "COLUMNS": "100"}


async def start_detached(services: Services, log_path: Path, *args: str,
                         extra_env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    """Start ``carexpert ARGS`` in its own session with output written to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**child_env(services), **(extra_env or {})}
    with open(log_path, "wb") as log:
        return await asyncio.create_subprocess_exec(
            *services.command(*args), stdin=asyncio.subprocess.DEVNULL, stdout=log,
            stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True)


def last_progress_line(text: str, sanitize) -> str:
    """The newest line of a log that progress bars redraw with carriage returns (escapes removed)."""
    for segment in reversed(re.split(r"[\r\n]+", text)):
        clean = re.sub(r"[━╺╸─]+", " ", sanitize(segment)).strip()
        if clean:
            return clean
    return ""


_FRACTION = re.compile(r"(\d+)\s*/\s*(\d+)")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")


def progress_fraction(line: str) -> float | None:
    """How far along a progress line says it is ("37/120 items", "31%"), if it says."""
    if found := _PERCENT.search(line):
        return min(1.0, float(found.group(1)) / 100)
    if (found := _FRACTION.search(line)) and int(found.group(2)) > 0:
        return min(1.0, int(found.group(1)) / int(found.group(2)))
    return None


async def start_server(services: Services, config_path: Path | None, model_id: str | None,
                       state_dir: Path) -> asyncio.subprocess.Process:
    """Start ``carexpert serve`` detached (own session, output to ``state_dir/server.log``), like a run."""
    model = ["--base"] if model_id is None else [model_id]
    return await start_detached(services, state_dir / "server.log", "serve", *model, "--state-dir", str(state_dir),
                                *config_args(config_path))


async def stop_server(services: Services, state_dir: Path) -> CommandResult:
    return await run_command(services, "serve", "--stop", "--state-dir", str(state_dir))

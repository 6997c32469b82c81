"""What the app asks of the outside world, in one replaceable object.

The screens never import the heavy core directly: they call these, so tests can hand
the app doubles (a fixed GPU reading, a fake trainer command, a scripted chat session)
and the start-up path stays free of torch. Each default imports its core module only
when called, from a worker; the slow ones (environment checks, reading a GGUF header)
run as child processes so the app neither imports torch nor waits for them on quit.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carexpert.config import Config
from carexpert.errors import UserError
from carexpert_tui.child_commands import config_args, run_command


def real_gpu_snapshot() -> list[dict[str, Any]]:
    """Per-GPU NVML reading (no torch); [] without a GPU."""
    from carexpert.system import gpu_snapshot

    return gpu_snapshot()


def real_host_snapshot() -> dict[str, Any]:
    """RAM and CPU of this machine."""
    from carexpert.system import host_snapshot

    return host_snapshot()


async def real_run_checks(services: Services, config_path: Path | None) -> list[dict[str, Any]]:
    """The results of ``carexpert check --json``, run as a child process.

    The checks import torch and probe CUDA, which can take many seconds: in a child the app
    neither loads torch nor has to wait for it on quit (cancelling kills the child).
    """
    result = await run_command(services, "check", "--json", *config_args(config_path))
    try:
        return list(json.loads(result.output[result.output.index("{"):])["checks"])
    except (ValueError, KeyError, TypeError):
        raise UserError("carexpert check did not report its results",
                        details=result.output.strip().splitlines()[-5:]) from None


def real_chat_session(config: Config, run_id: str | None) -> Any:
    """A chat session over the base model (``run_id`` None) or a run's adapter; loads nothing yet."""
    from carexpert.chat import ChatSession
    from carexpert.chat.source import run_adapter

    if run_id is None:
        return ChatSession(config, base_only=True)
    found = run_adapter(config, run_id)  # the run's own [model] and [lora], so the adapter fits
    return ChatSession(found.config, adapter_dir=found.adapter_dir)


def real_add_eval_case(config: Config, question: str, reference: str, category: str) -> str:
    """Save a question (and a reference answer) as a user eval case; returns what was done, in words."""
    from carexpert.evaluation.cases import add_user_case, cases_file

    path = cases_file(config.data.data_dir)
    case, replaced = add_user_case(path, question, reference_text=reference, category=category)
    return f"{'updated' if replaced else 'added'} eval case {case.id} ({case.category}) in {path}"


# Run in a child: reading a GGUF header parses the whole vocabulary in Python (tens of seconds
# for Gemma's 262k tokens), which would hold the GIL and stall the UI if done in a thread.
SHAPE_SCRIPT = ("import dataclasses, json, sys; from carexpert_tui.derived import model_shape; "
                "shape = model_shape(sys.argv[1]); print(json.dumps(dataclasses.asdict(shape) if shape else None))")


async def real_model_shape(base_model: str) -> Any:
    """The base model's shape for the VRAM estimate, read in a child process; None when unknown."""
    import asyncio

    from carexpert.estimate import ModelShape

    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", SHAPE_SCRIPT, base_model,
                                                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await proc.communicate()
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        raise
    try:
        data = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return ModelShape(**data) if isinstance(data, dict) else None


_RETRIEVERS: dict[tuple, Any] = {}


def real_kb_search(config: Config, query: str, k: int) -> list[dict[str, Any]]:
    """The store's best passages for ``query`` (the retrieval prompts use), as plain dicts.

    The retriever (an open store and its entity index) is kept per store setting, so only the
    first search pays for opening or building it.
    """
    from carexpert.retrieval import open_retriever

    key = (config.data.data_dir, config.retrieval.store)
    if key not in _RETRIEVERS:
        _RETRIEVERS[key] = open_retriever(config)
    found = _RETRIEVERS[key].retrieve(query, k=k)
    return [{"id": hit.passage.id, "kind": hit.passage.kind, "title": hit.passage.title, "text": hit.passage.text,
             "score": float(hit.score), "how": hit.how} for hit in found.hits]


def real_server_status(state_dir: Path) -> Any:
    """The API server's status (``carexpert.serve.status``, no web stack imported), or None."""
    from carexpert.serve.status import read_server_status

    return read_server_status(state_dir)


ESTIMATE_TIMEOUT_S = 900.0  # the first probe of a config loads the model and trains a few steps


async def real_estimate_time(services: Services, config_path: Path | None, quick: bool) -> dict[str, Any]:
    """``carexpert estimate --json [--quick]`` in a child process: the time of the configured (or quick) run."""
    result = await run_command(services, "estimate", "--json", *(["--quick"] if quick else []),
                               *config_args(config_path), timeout=ESTIMATE_TIMEOUT_S)
    for line in reversed(result.output.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    raise UserError("carexpert estimate could not time the run",
                    details=[line for line in result.output.strip().splitlines() if line.strip()][-4:])


def real_sanitize(text: str) -> str:
    from carexpert.textsafe import strip_controls

    return strip_controls(text)


@dataclass
class Services:
    """The app's dependencies; every field has the real implementation as its default."""

    cli: tuple[str, ...] = (sys.executable, "-m", "carexpert.cli.main")
    """How to run the ``carexpert`` command as a child process."""
    gpu_snapshot: Callable[[], list[dict[str, Any]]] = real_gpu_snapshot
    host_snapshot: Callable[[], dict[str, Any]] = real_host_snapshot
    run_checks: Callable[[Services, Path | None], Awaitable[list[Any]]] = real_run_checks
    chat_session: Callable[[Config, str | None], Any] = real_chat_session
    add_eval_case: Callable[[Config, str, str, str], str] = real_add_eval_case
    sanitize: Callable[[str], str] = real_sanitize
    kb_search: Callable[[Config, str, int], list[dict[str, Any]]] = real_kb_search
    server_status: Callable[[Path], Any] = real_server_status
    serve_dir: Path = Path("serve")
    """Where the API server started from the app keeps status.json and server.log (as ``carexpert serve``)."""
    model_shape: Callable[[str], Awaitable[Any]] = real_model_shape
    estimate_time: Callable[[Services, Path | None, bool], Awaitable[dict[str, Any]]] = real_estimate_time
    gpu_poll_seconds: float = 2.0
    runs_poll_seconds: float = 1.0
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for child processes."""

    def command(self, *args: str) -> list[str]:
        """A full argv for ``carexpert ARGS...``."""
        return [*self.cli, *args]

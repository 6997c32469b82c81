"""What the app asks of the outside world, in one replaceable object.

The screens never import the heavy core directly: they call these, so tests can hand
the app doubles (a fixed GPU reading, a fake trainer command, a scripted chat session)
and the start-up path stays free of torch. Each default imports its core module only
when called, from a worker thread.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from carexpert.config import Config


def real_gpu_snapshot() -> list[dict[str, Any]]:
    """Per-GPU NVML reading (no torch); [] without a GPU."""
    from carexpert.system import gpu_snapshot

    return gpu_snapshot()


def real_host_snapshot() -> dict[str, Any]:
    """RAM and CPU of this machine."""
    from carexpert.system import host_snapshot

    return host_snapshot()


def real_run_checks(config: Config) -> list[Any]:
    """The `carexpert check` results (may import torch: call from a thread worker)."""
    from carexpert.system import run_checks

    return run_checks(config)


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


def real_model_shape(base_model: str) -> Any:
    """The base model's shape for the VRAM estimate (reads config.json / the GGUF header; can be slow)."""
    from carexpert_tui.derived import model_shape

    return model_shape(base_model)


def real_sanitize(text: str) -> str:
    from carexpert.chat.sanitize import sanitize_output

    return sanitize_output(text)


@dataclass
class Services:
    """The app's dependencies; every field has the real implementation as its default."""

    cli: tuple[str, ...] = (sys.executable, "-m", "carexpert.cli.main")
    """How to run the ``carexpert`` command as a child process."""
    gpu_snapshot: Callable[[], list[dict[str, Any]]] = real_gpu_snapshot
    host_snapshot: Callable[[], dict[str, Any]] = real_host_snapshot
    run_checks: Callable[[Config], list[Any]] = real_run_checks
    chat_session: Callable[[Config, str | None], Any] = real_chat_session
    add_eval_case: Callable[[Config, str, str, str], str] = real_add_eval_case
    sanitize: Callable[[str], str] = real_sanitize
    model_shape: Callable[[str], Any] = real_model_shape
    gpu_poll_seconds: float = 2.0
    runs_poll_seconds: float = 1.0
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for child processes."""

    def command(self, *args: str) -> list[str]:
        """A full argv for ``carexpert ARGS...``."""
        return [*self.cli, *args]

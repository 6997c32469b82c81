"""Test doubles for the app's outside world: fixed GPU readings, scripted checks, a fake chat.

Everything here is deterministic, so Pilot tests and snapshots see the same screen every run.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carexpert.chat.sampling import SamplingSettings
from carexpert.chat.transcript import Turn, save_transcript
from carexpert.estimate import ModelShape
from carexpert_tui.services import Services

HERE = Path(__file__).resolve().parent
FIXTURE_RUNS = HERE / "fixtures" / "runs"
GIB = 1024**3

FAKE_GPUS = [
    {"index": 0, "name": "NVIDIA H100 80GB HBM3", "mem_used": 31 * GIB, "mem_total": 80 * GIB, "util": 87,
     "temp": 64, "power": 512, "processes": [{"pid": 4242, "name": "carexpert", "mem_used": 30 * GIB}]},
    {"index": 1, "name": "NVIDIA H100 80GB HBM3", "mem_used": 1 * GIB, "mem_total": 80 * GIB, "util": 0,
     "temp": 33, "power": 71, "processes": []},
]
# A four-GPU server: rank r of a training run on GPU r, memory rising with the rank so every row differs.
FAKE_FOUR_GPUS = [
    {"index": i, "name": "NVIDIA H200", "mem_used": (40 + 9 * i) * GIB, "mem_total": 141 * GIB, "util": 90 - i,
     "temp": 60 + i, "power": 600 - 10 * i, "processes": [{"pid": 5000 + i, "name": "python", "mem_used": (39 + 9 * i) * GIB}]}
    for i in range(4)
]
FOUR_GPU_RUN = "run-20261125-170000-ef56"
# The embedded Gemma 3 270M's shape, as carexpert.estimate reads it from the GGUF header.
EMBEDDED_SHAPE = ModelShape(hidden=640, intermediate=2048, layers=18, heads=4, kv_heads=1, head_dim=256,
                            vocab=262144, tied_embeddings=True)
FAKE_HOST = {"ram_used": 21 * GIB, "ram_total": 128 * GIB, "cpu_percent": 12.5, "cpu_count": 16}


@dataclass
class FakeCheck:
    name: str
    status: str
    detail: str
    fix: str = ""


FAKE_CHECKS = [
    FakeCheck("python", "pass", "3.11.7"),
    FakeCheck("torch", "pass", "2.13.0, CUDA 12.8"),
    FakeCheck("bitsandbytes", "warn", "0.50.2 without a GPU: 4-bit needs CUDA", "train on a GPU for QLoRA"),
    FakeCheck("disk", "fail", "2.1 GiB free in runs/", "free 10 GiB or set train.runs_dir"),
]


async def fake_shape(base_model: str) -> ModelShape:
    return EMBEDDED_SHAPE


def time_report(line: str, *, long: bool = False, changes: list[str] | None = None) -> dict[str, Any]:
    """What ``carexpert estimate --json`` reports, reduced to the keys the app reads."""
    warning = "this run would take about 21 h 22 min on this machine; try the quick profile" if long else None
    return {"time": {"line": line, "long": long, "warning": warning}, "quick_changes": changes or []}


SHORT_RUN = time_report("60 steps x 16 sequences, 139.0 k tokens: about 4 min on NVIDIA H100 80GB HBM3 "
                        "(measured 9,800 tokens/s training)")


def fake_estimate(report: dict[str, Any] | None = None, quick: dict[str, Any] | None = None):
    """An ``estimate_time`` service answering ``report`` (or ``quick`` for the quick profile) at once."""
    calls: list[bool] = []

    async def estimate(services, config_path, is_quick: bool) -> dict[str, Any]:
        calls.append(is_quick)
        return (quick if is_quick else report) or SHORT_RUN

    estimate.calls = calls
    return estimate


async def fake_checks(services, config_path) -> list[FakeCheck]:
    return list(FAKE_CHECKS)


def fake_services(*, gpus: list[dict[str, Any]] | None = None, cli: tuple[str, ...] | None = None,
                  chat_session=None, estimate=None) -> Services:
    """Services that never touch NVML, torch or the network."""
    readings = FAKE_GPUS if gpus is None else gpus
    return Services(
        cli=cli or (sys.executable, str(HERE / "fake_carexpert.py")),
        gpu_snapshot=lambda: [dict(g) for g in readings],
        host_snapshot=lambda: dict(FAKE_HOST),
        run_checks=fake_checks,
        chat_session=chat_session or (lambda config, run_id: FakeChatSession()),
        add_eval_case=lambda config, question, reference, category: f"added eval case for {question!r}",
        sanitize=lambda text: text.replace("\x1b", ""),
        model_shape=fake_shape,
        estimate_time=estimate or fake_estimate(),
        gpu_poll_seconds=0.2,
        runs_poll_seconds=0.2,
    )


HOLD_CAP_SECONDS = 120


class FakeChatSession:
    """A ChatSession double with the real one's API: loads instantly, streams a scripted answer.

    With ``hold_after`` set, the stream pauses after that many chunks until ``cancel()`` (or
    ``release()``), so a test can stop the answer at a known point.
    """

    ANSWER = ("The **Toyota GR86** uses a 2.4-litre flat-four (FA24) making 228 hp and 184 lb-ft. "
              "It drives the rear wheels through a six-speed manual or automatic.")

    SOURCES = [{"id": "toyota-gr86-2024-base", "kind": "vehicle", "title": "2024 Toyota GR86"},
               {"id": "concept:boxer-engine", "kind": "concept", "title": "Boxer engine"}]

    def __init__(self, answer: str | None = None, hold_after: int | None = None, source: str = "base model embedded"):
        self.answer = answer or self.ANSWER
        self.hold_after = hold_after
        self.source = source
        self.gate = threading.Event()
        self.cancelled = threading.Event()
        self.history: list[Turn] = []
        self.sampling = SamplingSettings()
        self.last_stats = None
        self.loaded = False
        self.answering = False
        self.questions: list[str] = []
        self.retrieval_enabled = True

    def set_retrieval(self, enabled: bool) -> None:
        self.retrieval_enabled = enabled

    def load(self, progress=None):
        if progress:
            progress("loading tokenizer")
            progress("loading weights")
        self.loaded = True
        return self

    def release(self) -> None:
        self.gate.set()

    def stream(self, text: str):
        self.cancelled.clear()
        self.answering = True
        self.questions.append(text)
        said, reason = [], "eos"
        try:
            for number, word in enumerate(self.answer.split(" ")):
                if self.hold_after is not None and number == self.hold_after:
                    # held until the test releases or cancels it; the cap only keeps a broken test from
                    # hanging (10 s was too short for a loaded 2-core CI machine: the answer ran on)
                    self.gate.wait(HOLD_CAP_SECONDS)
                if self.cancelled.is_set():
                    reason = "cancelled"
                    break
                chunk = word if number == 0 else " " + word
                said.append(chunk)
                yield chunk
        finally:
            self.answering = False
            self.last_stats = _Stats({"finish_reason": reason, "new_tokens": len(said), "tokens_per_second": 42.0})
            self.history.append(Turn(question=text, answer="".join(said), finish_reason=reason,
                                     sources=list(self.SOURCES) if self.retrieval_enabled else [],
                                     retrieval=self.retrieval_enabled))

    def cancel(self) -> None:
        self.cancelled.set()
        self.gate.set()

    def reset(self) -> None:
        self.history.clear()

    def undo(self):
        return self.history.pop() if self.history else None

    def save_transcript(self, path):
        return save_transcript(path, list(self.history), {"model": self.source})


@dataclass
class _Stats:
    values: dict

    def as_dict(self) -> dict:
        return dict(self.values)


async def wait_until(pilot, predicate, timeout: float = 20.0, step: float = 0.05) -> bool:
    """Let the app run until ``predicate()`` holds (True) or ``timeout`` passes (False)."""
    waited = 0.0
    while waited < timeout:
        if predicate():
            return True
        await pilot.pause(step)
        waited += step
    return bool(predicate())


def write_four_gpu_run(runs_dir: Path, *, t0: float = 1_795_000_000.0, steps: int = 12) -> Path:
    """A finished run on 4 GPUs, as its rank 0 writes it: every step event lists each rank's GPU memory."""
    import json

    folder = runs_dir / FOUR_GPU_RUN
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text('[model]\nbase_model = "embedded"\n', encoding="utf-8")
    events = [{"v": 1, "type": "start", "time": t0, "run_id": FOUR_GPU_RUN, "config": {}, "pid": 0,
               "host": "fixture-host", "world_size": 4, "resumed_from": None}]
    for step in range(1, steps + 1):
        gpus = [{"rank": r, "index": r, "allocated": int((20 + 2 * r + step / 10) * GIB),
                 "reserved": int((24 + 2 * r) * GIB), "peak": int((26 + 2 * r + step / 10) * GIB)} for r in range(4)]
        events.append({"v": 1, "type": "step", "time": t0 + 2 * step, "step": step, "max_steps": steps,
                       "epoch": step / steps, "loss": 2.0 - step / 10, "lr": 2e-4, "grad_norm": 0.3,
                       "tokens_per_s": 41000.0, "samples_per_s": 80.0, "eta_s": 2.0 * (steps - step), "gpus": gpus,
                       "ram_bytes": 8 * GIB})
    events.append({"v": 1, "type": "status", "time": t0 + 2 * steps + 1, "state": "finished", "error": None,
                   "advice": []})
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    (folder / "status.json").write_text(json.dumps({
        "state": "finished", "pid": None, "host": "fixture-host", "step": steps, "max_steps": steps, "epoch": 1.0,
        "error": None, "advice": [], "started": t0, "updated": t0 + 2 * steps + 1}), encoding="utf-8")
    (folder / "train.log").write_text("", encoding="utf-8")
    return folder

"""A drill for several-GPU failure handling: make one rank fail or hang on purpose.

``CAREXPERT_FAULT="rank=1,step=2,mode=raise"`` makes rank 1 raise after optimizer step 2;
``mode=hang`` makes it stop answering (it sleeps, as a rank stuck in a driver call
would), so the others' collectives time out after ``train.dist_timeout_s``. Without the
variable nothing is added to the run. The tests use it on the CPU (gloo); on a GPU
server it checks that a run over NCCL ends as failed, naming the rank, instead of
hanging — see docs/training.md "When a rank fails".
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from transformers import TrainerCallback

from carexpert.errors import UserError

ENV = "CAREXPERT_FAULT"
MODES = ("raise", "hang")


class InjectedFault(RuntimeError):
    """The failure asked for by ``CAREXPERT_FAULT``."""


@dataclass(frozen=True)
class Fault:
    rank: int
    step: int
    mode: str

    @classmethod
    def parse(cls, text: str) -> Fault:
        fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        try:
            fault = cls(int(fields.get("rank", 0)), int(fields["step"]), fields.get("mode", "raise"))
        except (KeyError, ValueError):
            fault = None
        if fault is None or fault.mode not in MODES or fault.rank < 0 or fault.step < 1:
            raise UserError(f"{ENV}={text!r} is not a fault", where=ENV,
                            fix="use e.g. rank=1,step=2,mode=raise (mode: raise or hang), or unset it")
        return fault


def fault_callbacks(rank: int, environ: dict[str, str] | None = None) -> list[TrainerCallback]:
    """The drill's callback for this rank, or nothing (the normal case)."""
    text = (os.environ if environ is None else environ).get(ENV, "").strip()
    if not text:
        return []
    fault = Fault.parse(text)
    return [FaultCallback(fault)] if fault.rank == rank else []


class FaultCallback(TrainerCallback):
    def __init__(self, fault: Fault):
        self.fault = fault

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step != self.fault.step:
            return
        if self.fault.mode == "raise":
            raise InjectedFault(f"{ENV}: rank {self.fault.rank} fails at step {self.fault.step} on purpose")
        while True:  # a hang: only the launcher's kill ends it (signals set the stop flag, nothing more)
            time.sleep(3600)

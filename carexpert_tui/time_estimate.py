"""What the Train screen says about a run's time before starting it.

The numbers come from ``carexpert estimate --json [--quick]`` run as a child process
(``Services.estimate_time``): the timing probe loads the model and trains a few steps,
which must never happen in the app's process or on its UI thread. This module only
turns that report into the screen's line and the question asked before a long or a
quick run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from carexpert.errors import UserError


@dataclass(frozen=True)
class TimeReport:
    line: str
    long: bool
    warning: str | None
    quick: bool
    changes: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Any, *, quick: bool) -> TimeReport:
        try:
            time = data["time"]
            return cls(str(time["line"]), bool(time["long"]), time.get("warning"), quick,
                       [str(change) for change in data.get("quick_changes") or []])
        except (KeyError, TypeError) as error:
            raise UserError(f"carexpert estimate reported no time ({error})") from None

    def label(self) -> str:
        text = f"{'quick run' if self.quick else 'time'}: {self.line}"
        return f"{text}\n⚠ {self.warning}" if self.warning else text

    def question(self) -> str | None:
        """What to ask before starting; None when the run can just start."""
        if self.quick:
            changes = "\n".join(f"  {change}" for change in self.changes)
            return (f"Start a quick run?\n\n{self.line}\n\nFor this run only (your config file stays as it is):\n"
                    f"{changes}")
        if self.long:
            return f"⚠ {self.warning}\n\n{self.line}\n\nStart it anyway?"
        return None

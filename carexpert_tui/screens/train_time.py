"""The Train screen's time line, and the talk before a run starts (issue 16).

On a machine without a GPU the shipped config trains for many hours, so s (start), q (quick
run) and e (time only) all measure first: ``carexpert estimate --json [--quick]`` runs as a
child process (``Services.estimate_time``; the probe loads the model, which the app's
process never does), the line shows the result, and a run that would take over an hour,
or a quick run with the changes it makes, is started only once the user says yes.
``carexpert_tui.time_estimate`` reads the report; this module shows it and asks. Starting
is the screen's: ``time_then_ask`` only says which run to start.
"""

from __future__ import annotations

from pathlib import Path

from textual.reactive import reactive
from textual.widgets import Label

from carexpert.errors import UserError
from carexpert_tui.screens.confirm import ConfirmScreen
from carexpert_tui.time_estimate import TimeReport


class TimeLine(Label):
    """How long the configured run takes here: a hint, "measuring…", the report, or "not measured"."""

    measuring: reactive[bool] = reactive(False, bindings=True)  # s, q and e are off meanwhile

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("time: e measures it", id=id)

    def show_not_measured(self, reason: str = "") -> None:
        self.update(f"time: not measured{reason}")

    async def time_then_ask(self, config: Path | None, *, quick: bool, start: bool) -> str | None:
        """Measure and show the run's time; for a start, ask before a long or a quick run.

        Returns the run to start ("start" or "quick"), or None. Runs in the screen's worker:
        the confirmations wait for an answer there, never on the UI thread.
        """
        self.update("time: measuring a few training steps on this machine…")
        self.measuring = True
        services = self.app.services
        try:
            report = TimeReport.from_json(await services.estimate_time(services, config, quick), quick=quick)
        except UserError as error:
            if not start or quick:  # the quick profile is sized from the probe: nothing to start without it
                raise
            self.show_not_measured()
            question = f"The run's time could not be measured:\n{error.render()}\n\nStart it without an estimate?"
            return "start" if await self.confirm(question) else None
        finally:
            self.measuring = False
        self.update(report.label())
        self.set_class(report.long, "-long")
        if not start:
            return None
        question = report.question()
        if question and not await self.confirm(question):
            return None
        return "quick" if quick else "start"

    async def confirm(self, question: str) -> bool:
        return bool(await self.app.push_screen_wait(ConfirmScreen(question, yes="Start", no="Cancel")))

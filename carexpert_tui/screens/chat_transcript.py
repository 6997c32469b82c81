"""The Chat screen's conversation: each question, its answer streaming in, the notes under it.

An answer is written through a ``MarkdownStream`` (which batches what arrives between
frames) into a scroll anchored to its end, so a fast model costs a few redraws and the
newest text stays in view. The screen hands over what its answer worker posted; this
widget only shows it. Text from the model, the store or an error is shown as text, never
as markup.
"""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream

from carexpert_tui.messages import ReplyFinished
from carexpert_tui.screens.chat_notes import finish_note, sources_note


class Transcript(VerticalScroll):
    """One answer streams at a time: ``start_answer``, ``grow_answer``…, then ``finish_answer`` or ``end_stream``."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.stream: MarkdownStream | None = None

    async def start_answer(self, question: str) -> None:
        answer = Markdown("", classes="answer")
        await self.mount_all([Static(question, classes="question", markup=False), answer])
        self.anchor()
        self.stream = Markdown.get_stream(answer)

    async def grow_answer(self, text: str) -> None:
        if self.stream is not None:
            await self.stream.write(text)

    async def finish_answer(self, reply: ReplyFinished) -> str:
        """Close the answer and put how it ended and its sources under it; returns the first (for the status line)."""
        await self.end_stream()
        note = finish_note(reply.stats, reply.stopped)
        await self.mount(Static(note, classes="answer-note" + (" -stopped" * reply.stopped)))
        said = sources_note(reply.sources, reply.retrieval, reply.stats.get("finish_reason"), reply.retrieval_problem)
        await self.mount(Static(self.app.services.sanitize(said), classes="answer-sources", markup=False))
        return note

    async def end_stream(self) -> None:
        if self.stream is not None:
            stream, self.stream = self.stream, None
            await stream.stop()

    def add_note(self, text: str) -> None:
        """A line from the app itself (a failure, a model switch), set apart from the answers."""
        self.mount(Static(text, classes="note", markup=False))
        self.anchor()

"""Chat mode: talk to the base model or a run's adapter, answers streaming in as Markdown.

The model loads in a thread worker (progress shown) the first time it is needed; each
answer is generated in another thread worker that posts one message per chunk
(``carexpert_tui.screens.chat_workers``), and the conversation
(``carexpert_tui.screens.chat_transcript``) writes them through a ``MarkdownStream`` into an
anchored scroll, so the UI stays responsive however fast or slow the model is. Stopping is
the session's thread-safe ``cancel()``; the partial answer stays in the conversation, marked
as stopped. Model text is only ever shown as text (the session strips terminal escape sequences).

Under each answer: its sources (the knowledge-store passages it was given), or that it
was closed-book (``carexpert_tui.screens.chat_notes``); ctrl+r turns retrieval off and on to
compare. The model selector (``carexpert_tui.screens.chat_model_choice``) picks what answers
and what the bar above the prompt (``ServerBar``) serves as an OpenAI-compatible API (ctrl+o);
the sampling panel (``carexpert_tui.screens.chat_sampling``) sets how it answers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Label, Select

from carexpert_tui.messages import (
    ModelLoaded,
    ModelLoadFailed,
    ModelLoadProgressed,
    ReplyChunkReceived,
    ReplyFailed,
    ReplyFinished,
    ReplyStarted,
)
from carexpert_tui.screens.base import ModeScreen
from carexpert_tui.screens.case_prompt import CasePrompt
from carexpert_tui.screens.chat_model_choice import BASE, ModelChoice
from carexpert_tui.screens.chat_sampling import SamplingPanel
from carexpert_tui.screens.chat_transcript import Transcript
from carexpert_tui.screens.chat_workers import load_session, stream_answer
from carexpert_tui.widgets.prompt_input import PromptInput
from carexpert_tui.widgets.server_bar import ServerBar


class ChatScreen(ModeScreen):
    CSS_PATH = "chat.tcss"
    BINDING_GROUP_TITLE = "Chat"
    HELP_WIDGETS = (PromptInput,)
    BINDINGS = [
        Binding("ctrl+n", "new_chat", "New", id="new-chat", tooltip="Start a new conversation"),
        Binding("ctrl+s", "save_transcript", "Save", id="save-transcript",
                tooltip="Save the conversation (chats/*.jsonl and .md)"),
        Binding("ctrl+g", "save_case", "Eval case", id="save-eval-case",
                tooltip="Save the last question as an evaluation case"),
        Binding("ctrl+t", "toggle_sampling", "Sampling", id="toggle-sampling", tooltip="Show the sampling settings"),
        Binding("ctrl+r", "toggle_retrieval", "Retrieval", id="toggle-retrieval",
                tooltip="Ground answers in the knowledge store, or answer closed-book to compare"),
        Binding("ctrl+o", "toggle_server", "API", id="toggle-server",
                tooltip="Start or stop an OpenAI-compatible API server for the chosen model (keeps running "
                        "after the app closes)"),
    ]

    answering: reactive[bool] = reactive(False, bindings=True)
    loading: reactive[bool] = reactive(False, bindings=True)
    retrieval_on: reactive[bool] = reactive(True, bindings=True)

    def __init__(self) -> None:
        super().__init__()
        self.session: Any = None
        self.session_choice: str | None = None
        self.pending_question: str | None = None
        self.stop_requested = False

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="chat-top"):
            yield ModelChoice(id="model-choice")
            yield Label("", id="chat-status")
            yield Label("", id="retrieval-state")
        with Horizontal(id="chat-main"):
            yield Transcript(id="conversation")
            yield SamplingPanel(id="sampling", classes="box")
        yield ServerBar(id="server-bar")
        yield PromptInput(placeholder="Ask about cars… (enter sends, ↑↓ history, esc stops)", id="prompt")

    def on_mount(self) -> None:
        self.query_one(SamplingPanel).show_config(self.app.config.chat)
        self.retrieval_on = bool(self.app.config.retrieval.enabled)
        self.watch(self.app, "runs", self.query_one(ModelChoice).show_runs)
        self.show_status("Loads the model on your first question.")
        self.query_one(PromptInput).focus()

    def palette_commands(self):
        return [("chat: new chat", "Start a new conversation", self.action_new_chat),
                ("chat: save transcript", "Save the conversation", self.action_save_transcript),
                ("chat: save as eval case", "Save the last question as an eval case", self.action_save_case),
                ("chat: sampling settings", "Show or hide the sampling panel", self.action_toggle_sampling),
                ("chat: retrieval on/off", "Answer from the knowledge store or closed-book", self.action_toggle_retrieval),
                ("chat: start/stop the API server", "Serve the chosen model over an OpenAI-compatible API",
                 self.action_toggle_server)]

    def show_status(self, text: str) -> None:
        self.query_one("#chat-status", Label).update(text)

    # --- which model --------------------------------------------------------------------------------

    @on(Select.Changed, "#model-choice")
    def model_chosen(self, event: Select.Changed) -> None:
        if self.session is not None and event.value != self.session_choice and not self.answering:
            self.session = None
            chosen = "the base model" if event.value == BASE else event.value
            self.query_one(Transcript).add_note(f"Switched to {chosen}; the next question loads it.")

    def ensure_session(self) -> None:
        """Create the session for the chosen model and start loading it (once)."""
        choice = self.query_one(ModelChoice)
        if self.session is None:
            self.session = self.app.services.chat_session(self.app.config, choice.run_id)
            self.session_choice = str(choice.value)
            self.apply_sampling()
            self.apply_retrieval()
        if not self.session.loaded and not self.loading:
            self.load_model(self.session)

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-load", description="Loading the model")
    def load_model(self, session: Any) -> None:
        load_session(session, self.post_message)

    @on(ModelLoadProgressed)
    def loading_progressed(self, message: ModelLoadProgressed) -> None:
        self.loading = True
        self.show_status(f"⟳ {message.text}")

    @on(ModelLoaded)
    def model_loaded(self, message: ModelLoaded) -> None:
        self.loading = False
        self.show_status(f"● {message.label}")
        if self.pending_question:
            question, self.pending_question = self.pending_question, None
            self.answer(question)

    @on(ModelLoadFailed)
    def model_failed(self, message: ModelLoadFailed) -> None:
        self.loading = False
        self.session = None
        self.pending_question = None
        self.answering = False
        self.show_status("✗ the model did not load")
        self.query_one(Transcript).add_note(f"Loading failed:\n{message.error}")

    # --- asking and answering -----------------------------------------------------------------

    @on(PromptInput.Submitted, "#prompt")
    def ask(self, event: PromptInput.Submitted) -> None:
        question = event.value.strip()
        if not question or self.answering:
            return
        prompt = self.query_one(PromptInput)
        prompt.remember(question)
        prompt.value = ""
        self.answering = True
        self.ensure_session()
        if self.session.loaded:
            self.answer(question)
        else:
            self.pending_question = question

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-answer", description="Answering")
    def answer(self, question: str) -> None:
        self.stop_requested = False
        stream_answer(self.session, question, self.app.services.sanitize, self.post_message,
                      lambda: self.stop_requested)

    @on(ReplyStarted)
    async def reply_started(self, message: ReplyStarted) -> None:
        await self.query_one(Transcript).start_answer(message.prompt)
        self.show_status(f"● {self.session.source} · answering…")

    @on(ReplyChunkReceived)
    async def reply_grew(self, message: ReplyChunkReceived) -> None:
        await self.query_one(Transcript).grow_answer(message.text)

    @on(ReplyFinished)
    async def reply_finished(self, message: ReplyFinished) -> None:
        note = await self.query_one(Transcript).finish_answer(message)
        self.answering = False
        self.show_status(f"● {self.session.source if self.session else ''} · {note}")

    @on(ReplyFailed)
    async def reply_failed(self, message: ReplyFailed) -> None:
        transcript = self.query_one(Transcript)
        await transcript.end_stream()
        self.answering = False
        transcript.add_note(f"No answer: {message.error}")

    # --- actions ------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("new_chat", "save_case", "save_transcript", "toggle_retrieval"):
            return None if self.answering else True
        return True

    def action_stop_answer(self) -> None:
        if self.answering:
            self.stop_requested = True
            self.pending_question = None
            if self.session is not None:
                self.session.cancel()
            if self.loading or (self.session is not None and not self.session.loaded):
                self.answering = False  # nothing is being written yet: just drop the question
        else:
            self.set_focus(None)

    def action_leave_field(self) -> None:
        """Escape stops an answer being written; otherwise it leaves the field (as on every screen)."""
        self.action_stop_answer()

    def action_new_chat(self) -> None:
        if self.session is not None:
            self.session.reset()
        self.query_one(Transcript).remove_children()
        self.query_one(PromptInput).focus()

    def worker_failed(self, worker) -> None:
        if worker.group in ("chat-answer", "chat-load"):
            self.answering = self.loading = False

    def last_turn(self) -> Any:
        history = getattr(self.session, "history", None) or []
        return history[-1] if history else None

    def action_save_transcript(self) -> None:
        if self.last_turn() is None:
            self.notify("Nothing to save yet.", severity="warning")
            return
        self.save_transcript(Path("chats") / time.strftime("chat-%Y%m%d-%H%M%S"))

    @work(thread=True, exit_on_error=False, group="chat-save", description="Saving the transcript")
    def save_transcript(self, path: Path) -> None:
        written = self.session.save_transcript(path)
        self.app.call_from_thread(self.notify, "Saved " + " and ".join(str(p) for p in written))

    def action_save_case(self) -> None:
        turn = self.last_turn()
        if turn is None:
            self.notify("Ask something first; then save it as an eval case.", severity="warning")
            return

        def chosen(case: dict | None) -> None:
            if case:
                self.add_case(case)

        self.app.push_screen(CasePrompt(turn.question, turn.answer), callback=chosen)

    @work(thread=True, exit_on_error=False, group="chat-case", description="Saving the eval case")
    def add_case(self, case: dict) -> None:
        said = self.app.services.add_eval_case(self.app.config, case["question"], case["reference"], case["category"])
        self.app.call_from_thread(self.notify, said)

    def action_toggle_sampling(self) -> None:
        self.query_one(SamplingPanel).toggle()

    @on(SamplingPanel.Changed)
    def sampling_changed(self) -> None:
        self.apply_sampling()

    def watch_retrieval_on(self, on: bool) -> None:
        self.query_one("#retrieval-state", Label).update("retrieval on" if on else "closed-book")

    def action_toggle_retrieval(self) -> None:
        if self.answering:
            return
        self.retrieval_on = not self.retrieval_on
        self.apply_retrieval()
        self.notify("Retrieval on: answers read the knowledge store" if self.retrieval_on
                    else "Retrieval off: answers are closed-book", timeout=3)

    def apply_retrieval(self) -> None:
        """The toggle goes to the session for its next answer."""
        if self.session is not None and hasattr(self.session, "set_retrieval"):
            self.session.set_retrieval(self.retrieval_on)

    def action_toggle_server(self) -> None:
        self.query_one(ServerBar).toggle(self.query_one(ModelChoice).run_id)

    def apply_sampling(self) -> None:
        """The panel's values go to the session for its next answer."""
        if self.session is not None:
            self.query_one(SamplingPanel).apply_to(self.session.sampling)

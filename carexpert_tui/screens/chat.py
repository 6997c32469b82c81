"""Chat mode: talk to the base model or a run's adapter, answers streaming in as Markdown.

The model loads in a thread worker (progress shown) the first time it is needed; each
answer is generated in another thread worker that posts one message per chunk, and the
screen writes them through a ``MarkdownStream`` into an anchored scroll, so the UI stays
responsive however fast or slow the model is. Stopping is the session's thread-safe
``cancel()``; the partial answer stays in the conversation, marked as stopped. Model
text is only ever shown as text (the session strips terminal escape sequences).

Under each answer: its sources (the knowledge-store passages it was given), or that it
was closed-book; ctrl+r turns retrieval off and on to compare. The bar above the prompt
(``ServerBar``) starts and stops the chosen model as an OpenAI-compatible API server (ctrl+o).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.reactive import reactive
from textual.widgets import Label, Markdown, Select, Static

from carexpert.config import field_spec
from carexpert.errors import UserError
from carexpert_tui.messages import (
    ModelLoaded,
    ModelLoadFailed,
    ModelLoadProgressed,
    ReplyChunkReceived,
    ReplyFailed,
    ReplyFinished,
    ReplyStarted,
)
from carexpert_tui.run_rows import RunRow
from carexpert_tui.screens.base import ModeScreen
from carexpert_tui.screens.case_prompt import CasePrompt
from carexpert_tui.widgets.config_field import ConfigField
from carexpert_tui.widgets.prompt_input import PromptInput
from carexpert_tui.widgets.server_bar import ServerBar

BASE = "base"
SAMPLING_KEYS = ("temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens")


def sources_note(sources: list[dict[str, str]], retrieval: bool, finish_reason: str | None,
                 problem: str | None = None) -> str:
    """"sources: 2024 Toyota Camry LE · Turbocharger" under an answer (a passage retrieval computed for the
    question, a comparison or a fuel cost, is marked "(computed)")."""
    if finish_reason == "guard":
        return "refused by the retrieval guard: that vehicle is not in the knowledge store"
    if not retrieval:
        return "closed-book (retrieval off)"
    if not sources:
        return f"closed-book: retrieval is unavailable ({problem.splitlines()[0]})" if problem else "no passages found"
    return "sources: " + " · ".join(str(source.get("title") or source.get("id"))
                                    + (" (computed)" if source.get("kind") == "derived" else "") for source in sources)


def finish_note(stats: dict[str, Any], stopped: bool) -> str:
    """"stopped · 12 tokens · 41 tok/s" under an answer."""
    parts = ["stopped" if stopped else (stats.get("finish_reason") or "done")]
    if stats.get("new_tokens") is not None:
        parts.append(f"{stats['new_tokens']} tokens")
    if stats.get("tokens_per_second"):
        parts.append(f"{stats['tokens_per_second']:.0f} tok/s")
    return " · ".join(parts)


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
        self.sampling_values: dict[str, Any] = {}
        self.stream = None
        self.stop_requested = False
        self.model_options: list[tuple[str, str]] = []
        """The model choices last put in the selector (rebuilt only when they change)."""

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="chat-top"):
            yield Select([("base model", BASE)], value=BASE, allow_blank=False, id="model-choice", compact=True)
            yield Label("", id="chat-status")
            yield Label("", id="retrieval-state")
        with Horizontal(id="chat-main"):
            yield VerticalScroll(id="conversation")
            with VerticalScroll(id="sampling", classes="box"):
                for key in SAMPLING_KEYS:
                    spec = field_spec(f"chat.{key}")
                    yield ConfigField(spec, spec.default)
        yield ServerBar(id="server-bar")
        yield PromptInput(placeholder="Ask about cars… (enter sends, ↑↓ history, esc stops)", id="prompt")

    def on_mount(self) -> None:
        self.query_one("#sampling").border_title = "Sampling"
        self.query_one("#sampling").display = self.app.size.width >= 110
        self.sampling_from_config()
        self.retrieval_on = bool(self.app.config.retrieval.enabled)
        self.watch(self.app, "runs", self.list_models)
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

    def sampling_from_config(self) -> None:
        chat = self.app.config.chat
        for key in SAMPLING_KEYS:
            self.sampling_values[key] = getattr(chat, key)
            self.query_one(f"#field-chat-{key}", ConfigField).show_value(getattr(chat, key))

    def show_status(self, text: str) -> None:
        self.query_one("#chat-status", Label).update(text)

    # --- which model --------------------------------------------------------------------------------

    def list_models(self, rows: tuple[RunRow, ...]) -> None:
        choice = self.query_one("#model-choice", Select)
        options = [("base model", BASE)] + [(f"adapter of {row.run_id}", row.run_id) for row in rows if row.has_adapter]
        if options != self.model_options:
            self.model_options = options
            current = choice.value
            with self.prevent(Select.Changed):
                choice.set_options(options)
                choice.value = current if any(value == current for _, value in options) else BASE

    @on(Select.Changed, "#model-choice")
    def model_chosen(self, event: Select.Changed) -> None:
        if self.session is not None and event.value != self.session_choice and not self.answering:
            self.session = None
            self.conversation_note(f"Switched to {'the base model' if event.value == BASE else event.value}; "
                                   "the next question loads it.")

    def ensure_session(self) -> None:
        """Create the session for the chosen model and start loading it (once)."""
        choice = self.query_one("#model-choice", Select).value
        if self.session is None:
            self.session = self.app.services.chat_session(self.app.config, None if choice == BASE else str(choice))
            self.session_choice = str(choice)
            self.apply_sampling()
            self.apply_retrieval()
        if not self.session.loaded and not self.loading:
            self.load_model(self.session)

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-load", description="Loading the model")
    def load_model(self, session: Any) -> None:
        self.post_message(ModelLoadProgressed("loading…"))
        try:
            session.load(progress=lambda text: self.post_message(ModelLoadProgressed(str(text))))
        except UserError as error:
            self.post_message(ModelLoadFailed(error.render()))
            return
        except Exception as error:  # noqa: BLE001 - out of memory, a broken model folder: say so, keep the app alive
            self.post_message(ModelLoadFailed(f"{type(error).__name__}: {error}"))
            return
        self.post_message(ModelLoaded(session.source))

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
        self.conversation_note(f"Loading failed:\n{message.error}")

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
        session, sanitize = self.session, self.app.services.sanitize
        self.stop_requested = False
        self.post_message(ReplyStarted(question))
        parts: list[str] = []
        try:
            for chunk in session.stream(question):
                text = sanitize(chunk)
                parts.append(text)
                self.post_message(ReplyChunkReceived(text))
        except UserError as error:
            self.post_message(ReplyFailed(error.render()))
            return
        except Exception as error:  # noqa: BLE001 - a reply failure of any kind is shown in the chat
            self.post_message(ReplyFailed(f"{type(error).__name__}: {error}"))
            return
        stats = session.last_stats.as_dict() if getattr(session, "last_stats", None) else {}
        stopped = self.stop_requested or stats.get("finish_reason") == "cancelled"
        turn = session.history[-1] if session.history else None
        sources = [dict(source) for source in getattr(turn, "sources", [])] if turn is not None else []
        self.post_message(ReplyFinished("".join(parts), stopped, stats, sources,
                                        bool(getattr(turn, "retrieval", False)),
                                        getattr(session, "retrieval_problem", None)))

    @on(ReplyStarted)
    async def reply_started(self, message: ReplyStarted) -> None:
        conversation = self.query_one("#conversation", VerticalScroll)
        answer = Markdown("", classes="answer")
        await conversation.mount_all([Static(message.prompt, classes="question", markup=False), answer])
        conversation.anchor()
        self.stream = Markdown.get_stream(answer)
        self.show_status(f"● {self.session.source} · answering…")

    @on(ReplyChunkReceived)
    async def reply_grew(self, message: ReplyChunkReceived) -> None:
        if self.stream is not None:
            await self.stream.write(message.text)

    @on(ReplyFinished)
    async def reply_finished(self, message: ReplyFinished) -> None:
        await self.end_stream()
        note = finish_note(message.stats, message.stopped)
        conversation = self.query_one("#conversation")
        await conversation.mount(Static(note, classes="answer-note" + (" -stopped" * message.stopped)))
        said = sources_note(message.sources, message.retrieval, message.stats.get("finish_reason"),
                            message.retrieval_problem)
        await conversation.mount(Static(self.app.services.sanitize(said), classes="answer-sources", markup=False))
        self.answering = False
        self.show_status(f"● {self.session.source if self.session else ''} · {note}")

    @on(ReplyFailed)
    async def reply_failed(self, message: ReplyFailed) -> None:
        await self.end_stream()
        self.answering = False
        self.conversation_note(f"No answer: {message.error}")

    async def end_stream(self) -> None:
        if self.stream is not None:
            stream, self.stream = self.stream, None
            await stream.stop()

    def conversation_note(self, text: str) -> None:
        conversation = self.query_one("#conversation", VerticalScroll)
        conversation.mount(Static(text, classes="note", markup=False))
        conversation.anchor()

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
        self.query_one("#conversation").remove_children()
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
        panel = self.query_one("#sampling")
        panel.display = not panel.display
        if panel.display:
            panel.query(ConfigField).first().input.focus()

    @on(ConfigField.Edited)
    def sampling_edited(self, event: ConfigField.Edited) -> None:
        if event.problem is None:
            self.sampling_values[event.field.spec.name] = event.value
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
        bar = self.query_one(ServerBar)
        if bar.live:
            bar.stop()
        else:
            choice = self.query_one("#model-choice", Select).value
            bar.start(None if choice == BASE else str(choice))

    def apply_sampling(self) -> None:
        """The panel's values go to the session for its next answer."""
        if self.session is None:
            return
        for key, value in self.sampling_values.items():
            setattr(self.session.sampling, key, value)

"""``carexpert chat [RUN | --base | --merged DIR]``: a streaming chat in the terminal.

Answers are printed as they are generated. Ctrl+C stops the current answer (the
partial answer is kept); at the prompt, /quit or Ctrl+D leaves. Works with piped
stdin too: ``printf 'question\\n/quit\\n' | carexpert chat --base``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from carexpert.cli.main import add_config_option
from carexpert.errors import UserError

if TYPE_CHECKING:
    from carexpert.chat import ChatSession

HELP = """commands:
  /reset            forget the conversation
  /undo             remove the last question and answer
  /retry            ask the last question again
  /save [PATH]      save the transcript as PATH.jsonl and PATH.md
  /set KEY VALUE    change temperature, top_p, top_k, repetition_penalty or max_new_tokens
  /settings         show the sampling settings
  /sources          show the passages the last answer was given (retrieval)
  /retrieval on|off ground answers in the knowledge store, or answer closed-book to compare
  /help             this help
  /quit             leave (Ctrl+D too)
Ctrl+C stops the answer being written."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("chat", help="chat with a trained run (or the base model) in the terminal")
    parser.add_argument("run", nargs="?", metavar="RUN",
                        help="run id or run folder (default: the newest run with an adapter)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--base", action="store_true", help="chat with the base model, no adapter")
    which.add_argument("--merged", metavar="DIR", help="chat with a merged export ('carexpert export --merged')")
    add_config_option(parser)
    parser.set_defaults(func=run_chat)


def build_session(args: argparse.Namespace) -> tuple[ChatSession, Path]:
    """The session the arguments ask for and the folder transcripts go to."""
    from carexpert.chat import ChatSession
    from carexpert.chat.source import run_adapter
    from carexpert.config import load_or_default

    config = load_or_default(args.config)
    if (args.base or args.merged) and args.run:
        raise UserError("give a RUN or --base/--merged, not both")
    if args.base:
        return ChatSession(config, base_only=True), Path("chats")
    if args.merged:
        return ChatSession(config, merged_dir=args.merged), Path("chats")
    found = run_adapter(config, args.run)
    return ChatSession(found.config, adapter_dir=found.adapter_dir), found.run.chats


def run_chat(args: argparse.Namespace) -> int:
    from carexpert.chat import sanitize_output

    console = Console(highlight=False)
    require_stdin()  # before minutes of model loading, not after
    session, transcripts = build_session(args)
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the status line says what is loading
    with console.status("loading the model"):
        session.load(progress=lambda message: console.print(Text(sanitize_output(message), style="dim")))
    console.print(Text(f"chatting with {session.source}. /help for commands, Ctrl+C stops an answer.", style="bold"))
    if not session.retrieval_enabled:
        console.print(Text("retrieval is off (retrieval.enabled = false): answers are closed-book", style="dim"))
    while True:
        try:
            line = input("\nyou> ")
        except (EOFError, RuntimeError, OSError):  # end of input, or stdin closed or gone meanwhile
            console.print()
            return 0
        except KeyboardInterrupt:
            console.print("\n(Ctrl+C stops an answer; /quit or Ctrl+D leaves)")
            continue
        line = line.strip()
        if not line:
            continue
        try:
            if line.startswith("/"):
                if run_command(console, session, line, transcripts) == "quit":
                    return 0
            else:
                print_answer(console, session, session.stream(line))
        except UserError as error:
            console.print(Text(f"error: {error.render()}", style="red"))


def require_stdin() -> None:
    """A UserError when there is no standard input to read questions from (``0<&-``, a closed pipe)."""
    stream = sys.stdin
    usable = stream is not None and not stream.closed
    if usable:
        try:
            os.fstat(stream.fileno())
        except (OSError, ValueError):
            usable = False
    if not usable:
        raise UserError("standard input is closed, so chat has nowhere to read questions from",
                        fix="run 'carexpert chat' in a terminal, or pipe questions in: "
                            "echo 'What is a CVT?' | carexpert chat --base")


def run_command(console: Console, session: ChatSession, line: str, transcripts: Path) -> str | None:
    """Do one /command; returns "quit" to leave."""
    name, _, rest = line[1:].partition(" ")
    rest = rest.strip()
    if name in ("quit", "exit", "q"):
        return "quit"
    if name == "help":
        console.print(Text(HELP))
    elif name == "reset":
        session.reset()
        console.print("conversation cleared")
    elif name == "undo":
        turn = session.undo()
        console.print("removed the last turn" if turn else "nothing to undo")
    elif name == "retry":
        print_answer(console, session, session.retry())
    elif name == "save":
        target = Path(rest) if rest else transcripts / time.strftime("chat-%Y%m%d-%H%M%S")
        jsonl, markdown = session.save_transcript(target)
        console.print(Text(f"saved {jsonl} and {markdown}"))
    elif name == "set":
        key, _, value = rest.partition(" ")
        if not value.strip():
            raise UserError("usage: /set KEY VALUE", fix="e.g. /set temperature 0.2")
        session.sampling.set(key, value)
        console.print(f"{key} = {getattr(session.sampling, key)}")
    elif name == "settings":
        for key, value in session.sampling.as_dict().items():
            console.print(f"{key} = {value}")
    elif name == "sources":
        print_sources(console, session)
    elif name == "retrieval":
        if rest not in ("on", "off", ""):
            raise UserError("usage: /retrieval on|off", fix="e.g. /retrieval off to compare a closed-book answer")
        if rest:
            session.set_retrieval(rest == "on")
        console.print(f"retrieval {'on' if session.retrieval_enabled else 'off'}")
    else:
        raise UserError(f"unknown command /{name}", fix="type /help for the list")
    return None


def print_sources(console: Console, session: ChatSession) -> None:
    """The last answer's sources, one a line, or why there are none."""
    from carexpert.chat import sanitize_output

    turn = session.history[-1] if session.history else None
    if turn is None:
        console.print("no answer yet")
    elif not turn.retrieval:
        console.print("the last answer was closed-book (retrieval off)")
    elif not turn.sources:
        console.print("the last answer was given no passages" if not session.retrieval_problem
                      else f"no passages: {session.retrieval_problem}")
    else:
        for number, source in enumerate(turn.sources, 1):
            console.print(Text(f"[{number}] {sanitize_output(source['title'])}  ({sanitize_output(source['id'])}, "
                               f"{source['kind']})"))


def print_answer(console: Console, session: ChatSession, chunks: Iterator[str]) -> None:
    """Print chunks as they come; Ctrl+C cancels the answer instead of ending the program."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda *_: session.cancel()) if in_main else None
    try:
        console.print(Text("carexpert> ", style="bold cyan"), end="")
        for chunk in chunks:  # already sanitized by the session
            console.print(Text(chunk), end="", soft_wrap=True)
            console.file.flush()
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
    console.print()
    stats = session.last_stats
    if stats:
        parts = [f"{stats.new_tokens} tokens"]
        if stats.tokens_per_second:
            parts.append(f"{stats.tokens_per_second:.1f} tokens/s")
        if stats.time_to_first_token is not None:
            parts.append(f"first token {stats.time_to_first_token:.2f} s")
        if stats.dropped_turns:
            parts.append(f"{stats.dropped_turns} oldest turn(s) left out to fit the context")
        notes = {"cancelled": "stopped", "max_new_tokens": "cut at max_new_tokens"}
        if stats.finish_reason in notes:
            parts.append(notes[stats.finish_reason])
        if stats.finish_reason == "guard":
            parts.append("refused by the retrieval guard, nothing generated")
        turn = session.history[-1] if session.history else None
        if turn is not None and turn.sources:
            parts.append(f"{len(turn.sources)} source(s): /sources")
        console.print(Text("[" + ", ".join(parts) + "]", style="dim"))

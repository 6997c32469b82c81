"""A chat's turns and how they are saved: JSONL for programs, Markdown for people.

Both files are written atomically. The JSONL starts with one ``meta`` line (model,
system prompt, time) followed by one ``turn`` line per question and answer, so a
transcript can be read back with ``load_transcript``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from carexpert.chat.sanitize import sanitize_output
from carexpert.errors import UserError
from carexpert.fsutil import atomic_write_text

TRANSCRIPT_VERSION = 1


@dataclass
class Turn:
    """One question and the answer it got (possibly partial: ``stopped``)."""

    question: str
    answer: str
    finish_reason: str = ""          # eos | stop_string | max_new_tokens | cancelled | guard | error
    stats: dict[str, Any] = field(default_factory=dict)
    sampling: dict[str, Any] = field(default_factory=dict)
    sources: list[dict[str, str]] = field(default_factory=list)  # passages the answer was given: id, kind, title
    retrieval: bool = False          # whether the knowledge store was asked for this answer
    time: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    @property
    def stopped(self) -> bool:
        """True when the user stopped the answer before the model finished it."""
        return self.finish_reason == "cancelled"

    def to_json(self) -> dict[str, Any]:
        return {"type": "turn", **asdict(self), "stopped": self.stopped}


def transcript_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The ``.jsonl`` and ``.md`` files a transcript saved at ``path`` is written to."""
    target = Path(path)
    stem = target.with_suffix("") if target.suffix.lower() in (".jsonl", ".md", ".json") else target
    return stem.with_name(stem.name + ".jsonl"), stem.with_name(stem.name + ".md")


def transcript_jsonl(turns: list[Turn], meta: dict[str, Any]) -> str:
    lines = [json.dumps({"type": "meta", "version": TRANSCRIPT_VERSION, **meta}, ensure_ascii=True)]
    lines += [json.dumps(turn.to_json(), ensure_ascii=True) for turn in turns]
    return "\n".join(lines) + "\n"


def transcript_markdown(turns: list[Turn], meta: dict[str, Any]) -> str:
    """A readable transcript; text is sanitized so ``cat`` on it is safe too."""
    out = [f"# carexpert chat ({meta.get('created', '')})", ""]
    if meta.get("model"):
        out += [f"- model: {sanitize_output(str(meta['model']))}"]
    if meta.get("system_prompt"):
        out += [f"- system prompt: {sanitize_output(str(meta['system_prompt']))}"]
    out.append("")
    for number, turn in enumerate(turns, 1):
        out += [f"## {number}. You", "", sanitize_output(turn.question).strip(), "",
                "### carexpert", "", sanitize_output(turn.answer).strip() or "*(no answer)*", ""]
        if turn.sources:
            titles = ", ".join(sanitize_output(str(s.get("title") or s.get("id"))) for s in turn.sources)
            out += [f"*sources: {titles}*", ""]
        notes = []
        if turn.finish_reason == "guard":
            notes.append("refused before generating: the vehicle is not in the knowledge store")
        if turn.stopped:
            notes.append("stopped by the user")
        elif turn.finish_reason == "max_new_tokens":
            notes.append("cut at max_new_tokens")
        tokens, speed = turn.stats.get("new_tokens"), turn.stats.get("tokens_per_second")
        if tokens is not None and speed is not None:
            notes.append(f"{tokens} tokens, {speed:.1f} tokens/s")
        if notes:
            out += [f"*({'; '.join(notes)})*", ""]
    return "\n".join(out)


def save_transcript(path: str | os.PathLike, turns: list[Turn], meta: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``path``.jsonl and ``path``.md atomically; returns both paths."""
    jsonl_path, md_path = transcript_paths(path)
    meta = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), **meta}
    try:
        atomic_write_text(jsonl_path, transcript_jsonl(turns, meta))
        atomic_write_text(md_path, transcript_markdown(turns, meta))
    except OSError as exc:
        raise UserError(f"cannot save the transcript ({exc.strerror or exc})", where=str(jsonl_path.parent),
                        fix="pick a folder you can write to: /save PATH") from None
    return jsonl_path, md_path


def load_transcript(path: str | os.PathLike) -> tuple[dict[str, Any], list[Turn]]:
    """Read a transcript saved by ``save_transcript`` (the ``.jsonl`` file)."""
    jsonl_path = transcript_paths(path)[0]
    meta: dict[str, Any] = {}
    turns: list[Turn] = []
    known = set(Turn.__dataclass_fields__)
    try:
        lines = jsonl_path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read the transcript ({exc.strerror or exc})", where=str(jsonl_path)) from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"line {number} is not JSON ({exc.msg})", where=str(jsonl_path)) from None
        if record.get("type") == "meta":
            meta = {k: v for k, v in record.items() if k != "type"}
        elif record.get("type") == "turn":
            turns.append(Turn(**{k: v for k, v in record.items() if k in known}))
        else:
            raise UserError(f"line {number}: unknown record type {record.get('type')!r}", where=str(jsonl_path))
    return meta, turns

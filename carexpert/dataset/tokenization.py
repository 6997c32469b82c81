"""Tokenization with the loss on the answer only, ending in EOS so the tuned model stops.

The training text is the shared prompt (``carexpert.prompt.render_prompt``) followed by
the answer and the tokenizer's EOS. Prompt tokens get label -100, so the model is never
trained to write questions. The prompt and the full text are tokenized separately and
the prompt's tokens must be a prefix of the full text's; where a tokenizer merges across
the boundary, the two parts are tokenized apart and joined instead.

When an example is longer than ``max_length`` the prompt is kept whole and the answer is
cut (without EOS, so the model never learns to stop mid-sentence); an example whose
prompt alone does not fit is dropped, and the report says how many.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from carexpert.errors import UserError
from carexpert.prompt import SYSTEM_PROMPT, render_prompt

IGNORE_INDEX = -100


def prompt_for(record: Mapping[str, Any]) -> str:
    """The exact prompt the model sees for this record (system line, earlier turns, retrieved passages, this turn)."""
    history = [(str(q), str(a)) for q, a in record.get("history") or ()]
    system = record.get("system", SYSTEM_PROMPT)
    context = [str(text) for text in record.get("context") or ()]
    return render_prompt(str(record["instruction"]), str(record.get("input") or ""), system=system, history=history,
                         context=context)


@dataclass
class Encoded:
    """One tokenized example and what happened to it."""

    input_ids: list[int]
    labels: list[int]
    status: str  # "ok", "truncated" or "dropped"
    prompt_tokens: int
    full_length: int  # prompt + answer + EOS before any truncation

    def features(self) -> dict[str, list[int]]:
        return {"input_ids": self.input_ids, "attention_mask": [1] * len(self.input_ids), "labels": self.labels}


@dataclass
class TokenizeReport:
    kept: int = 0
    truncated: int = 0
    dropped: int = 0
    dropped_ids: list[str] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.kept} examples tokenized"
        if self.truncated:
            text += f", {self.truncated} answers cut to fit max_length"
        if self.dropped:
            text += f", {self.dropped} dropped because the prompt alone is longer than max_length"
        return text


def eos_id(tokenizer: Any) -> int:
    token_id = getattr(tokenizer, "eos_token_id", None)
    if token_id is None:
        raise UserError("the tokenizer has no end-of-sequence (EOS) token, so the model could not learn to stop",
                        fix="use a tokenizer with eos_token set (most chat and base models have one)")
    return int(token_id)


def encode_example(tokenizer: Any, record: Mapping[str, Any], max_length: int) -> Encoded:
    """Token ids and labels for one record, following the truncation rules above."""
    prompt = prompt_for(record)
    answer = str(record["output"]).strip()
    prompt_ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    full_ids = list(tokenizer(prompt + answer, add_special_tokens=True)["input_ids"])
    if full_ids[: len(prompt_ids)] == prompt_ids:
        answer_ids = full_ids[len(prompt_ids):]
    else:
        answer_ids = list(tokenizer(answer, add_special_tokens=False)["input_ids"])
    end = eos_id(tokenizer)
    full_length = len(prompt_ids) + len(answer_ids) + 1
    if len(prompt_ids) + 1 > max_length:
        return Encoded([], [], "dropped", len(prompt_ids), full_length)
    if full_length <= max_length:
        answer_part, status = answer_ids + [end], "ok"
    else:
        answer_part, status = answer_ids[: max_length - len(prompt_ids)], "truncated"
    return Encoded(prompt_ids + answer_part, [IGNORE_INDEX] * len(prompt_ids) + answer_part, status,
                   len(prompt_ids), full_length)


def tokenize_example(tokenizer: Any, record: Mapping[str, Any], max_length: int) -> dict[str, list[int]] | None:
    """``{"input_ids", "attention_mask", "labels"}`` for one record, or None when it had to be dropped."""
    encoded = encode_example(tokenizer, record, max_length)
    return None if encoded.status == "dropped" else encoded.features()


def tokenize_records(tokenizer: Any, records: Iterable[Mapping[str, Any]], max_length: int
                     ) -> tuple[list[dict[str, list[int]]], TokenizeReport]:
    """Tokenize many records; the report counts truncated and dropped ones and keeps full lengths."""
    report = TokenizeReport()
    rows = []
    for record in records:
        encoded = encode_example(tokenizer, record, max_length)
        report.lengths.append(encoded.full_length)
        if encoded.status == "dropped":
            report.dropped += 1
            report.dropped_ids.append(str(record.get("id", "?")))
            continue
        report.kept += 1
        report.truncated += encoded.status == "truncated"
        rows.append(encoded.features())
    return rows, report


def token_length(tokenizer: Any, record: Mapping[str, Any]) -> int:
    """Prompt + answer + EOS, in tokens, before truncation."""
    prompt = prompt_for(record)
    return len(tokenizer(prompt + str(record["output"]).strip(), add_special_tokens=True)["input_ids"]) + 1

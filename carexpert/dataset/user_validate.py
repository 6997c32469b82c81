"""Checking one user record and turning it into carexpert's record shape.

Two shapes are accepted. Alpaca: ``instruction`` and ``output`` (text, non-empty), with
optional ``input``, ``category`` and ``system``. Chat: ``messages``, a list of
``{"role", "content"}`` turns (an optional system turn first, then user and assistant
alternating, ending with the assistant), which becomes earlier turns (``history``) plus
the final question and answer. Each problem is returned as a short message; the caller
adds the file and line.
"""

from __future__ import annotations

from typing import Any

ALPACA_TEXT = ("instruction", "output")
ALPACA_OPTIONAL = ("input", "category", "system")
KNOWN_FIELDS = {"instruction", "input", "output", "category", "system", "messages", "id", "history",
                "fact_ids", "reference", "key_terms", "expect_refusal", "kind", "holdout"}
ROLES = ("system", "user", "assistant")


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def validate_record(value: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """(normalized record, []) for a good record, or (None, problems)."""
    if not isinstance(value, dict):
        return None, [f"expected a JSON object with instruction/output or messages, got {type_name(value)}"]
    if "messages" in value:
        return _chat(value)
    return _alpaca(value)


def unknown_fields(value: Any) -> set[str]:
    return set(value) - KNOWN_FIELDS if isinstance(value, dict) else set()


def _alpaca(value: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    problems = []
    if not any(k in value for k in ALPACA_TEXT):
        return None, ["missing fields 'instruction' and 'output' (or a chat 'messages' list)"]
    for key in ALPACA_TEXT:
        problems += _text_problems(value, key, required=True)
    for key in ALPACA_OPTIONAL:
        problems += _text_problems(value, key, required=False)
    if problems:
        return None, problems
    record = {"instruction": value["instruction"].strip(), "input": (value.get("input") or "").strip(),
              "output": value["output"].strip(), "category": (value.get("category") or "user").strip() or "user"}
    if value.get("system") is not None:
        record["system"] = value["system"].strip()
    return record, []


def _text_problems(value: dict[str, Any], key: str, *, required: bool) -> list[str]:
    if key not in value or (value[key] is None and not required):
        return [f"missing field '{key}'"] if required else []
    if not isinstance(value[key], str):
        return [f"field '{key}' must be text, got {type_name(value[key])}"]
    if required and not value[key].strip():
        return [f"field '{key}' is empty"]
    return []


def _chat(value: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    messages = value["messages"]
    if not isinstance(messages, list):
        return None, [f"field 'messages' must be a list of turns, got {type_name(messages)}"]
    if not messages:
        return None, ["field 'messages' is empty"]
    problems = []
    turns: list[tuple[str, str]] = []
    for index, message in enumerate(messages, start=1):
        if not isinstance(message, dict):
            problems.append(f"message {index} must be an object with 'role' and 'content', got {type_name(message)}")
            continue
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            problems.append(f"message {index}: role must be one of {list(ROLES)}, got {role!r}")
        if "content" not in message:
            problems.append(f"message {index}: missing field 'content'")
        elif not isinstance(content, str):
            problems.append(f"message {index}: 'content' must be text, got {type_name(content)}")
        elif not content.strip():
            problems.append(f"message {index}: 'content' is empty")
        if isinstance(role, str) and isinstance(content, str):
            turns.append((role, content.strip()))
    if problems:
        return None, problems
    system = None
    if turns[0][0] == "system":
        system = turns.pop(0)[1]
    expected = ["user", "assistant"] * (len(turns) // 2 + 1)
    for index, (role, _) in enumerate(turns):
        if role != expected[index]:
            offset = 2 if system is not None else 1
            return None, [(f"message {index + offset}: expected a {expected[index]} turn, got {role} "
                          "(after an optional system turn, user and assistant must alternate)")]
    if len(turns) < 2 or turns[-1][0] != "assistant":
        return None, ["the conversation must end with an assistant turn (the answer to learn)"]
    pairs = [(turns[i][1], turns[i + 1][1]) for i in range(0, len(turns) - 2, 2)]
    record: dict[str, Any] = {"instruction": turns[-2][1], "input": "", "output": turns[-1][1],
                              "category": str(value.get("category") or "user")}
    if pairs:
        record["history"] = [list(p) for p in pairs]
    if system is not None:
        record["system"] = system
    return record, []

"""The prompt template: one place, shared by training, evaluation and chat.

Alpaca-style sections, as in the seed recipe, with an optional system line,
earlier turns for multi-turn chat, and the passages retrieved from the knowledge
store for this turn (a ``### Context:`` section right before the question, one
numbered passage a line, so the model reads what the store says before it answers). A model is trained on exactly the text that
``render_prompt`` produces followed by the answer and the tokenizer's EOS, so the
tuned model learns to stop.
"""

from __future__ import annotations

from collections.abc import Sequence

SYSTEM_PROMPT = (
    "You are carexpert, a knowledgeable and friendly automotive expert. "
    "Answer questions about cars accurately and conversationally."
)

CONTEXT_HEADER = "### Context:\n"
INSTRUCTION_HEADER = "### Instruction:\n"
INPUT_HEADER = "### Input:\n"
RESPONSE_HEADER = "### Response:\n"


def render_context(passages: Sequence[str]) -> str:
    """The retrieved passages as the model sees them ('' when there are none)."""
    lines = [f"[{number}] {' '.join(text.split())}" for number, text in enumerate(passages, start=1) if text.strip()]
    return CONTEXT_HEADER + "\n".join(lines) + "\n\n" if lines else ""


def render_turn(instruction: str, input_text: str = "", context: Sequence[str] = ()) -> str:
    """One user turn (with its retrieved passages), ending with the response header the model continues from."""
    text = render_context(context) + INSTRUCTION_HEADER + instruction.strip() + "\n\n"
    if input_text and input_text.strip():
        text += INPUT_HEADER + input_text.strip() + "\n\n"
    return text + RESPONSE_HEADER


def render_prompt(
    instruction: str,
    input_text: str = "",
    *,
    system: str | None = SYSTEM_PROMPT,
    history: Sequence[tuple[str, str]] = (),
    context: Sequence[str] = (),
) -> str:
    """The full prompt for one answer: system line, earlier (question, answer) turns, this turn.

    ``context`` holds the passage texts retrieved for this turn (``carexpert.retrieval``);
    earlier turns are rendered without theirs, so a long conversation does not carry
    stale passages.
    """
    parts: list[str] = []
    if system:
        parts.append(system.strip() + "\n\n")
    for question, answer in history:
        parts.append(render_turn(question) + answer.strip() + "\n\n")
    parts.append(render_turn(instruction, input_text, context))
    return "".join(parts)


def stop_strings() -> list[str]:
    """Text that means the model started a new turn on its own: cut the answer there."""
    return ["\n### Instruction:", "\n### Input:", "\n### Response:", "\n### Context:"]

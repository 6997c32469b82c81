"""The prompt template: one place, shared by training, evaluation and chat.

Alpaca-style sections, as in the seed recipe, with an optional system line and
earlier turns for multi-turn chat. A model is trained on exactly the text that
``render_prompt`` produces followed by the answer and the tokenizer's EOS, so the
tuned model learns to stop.
"""

from __future__ import annotations

from collections.abc import Sequence

SYSTEM_PROMPT = (
    "You are carexpert, a knowledgeable and friendly automotive expert. "
    "Answer questions about cars accurately and conversationally."
)

INSTRUCTION_HEADER = "### Instruction:\n"
INPUT_HEADER = "### Input:\n"
RESPONSE_HEADER = "### Response:\n"


def render_turn(instruction: str, input_text: str = "") -> str:
    """One user turn, ending with the response header the model continues from."""
    text = INSTRUCTION_HEADER + instruction.strip() + "\n\n"
    if input_text and input_text.strip():
        text += INPUT_HEADER + input_text.strip() + "\n\n"
    return text + RESPONSE_HEADER


def render_prompt(
    instruction: str,
    input_text: str = "",
    *,
    system: str | None = SYSTEM_PROMPT,
    history: Sequence[tuple[str, str]] = (),
) -> str:
    """The full prompt for one answer: system line, earlier (question, answer) turns, this turn."""
    parts: list[str] = []
    if system:
        parts.append(system.strip() + "\n\n")
    for question, answer in history:
        parts.append(render_turn(question) + answer.strip() + "\n\n")
    parts.append(render_turn(instruction, input_text))
    return "".join(parts)


def stop_strings() -> list[str]:
    """Text that means the model started a new turn on its own: cut the answer there."""
    return ["\n### Instruction:", "\n### Input:", "\n### Response:"]

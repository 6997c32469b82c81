"""Does an exported model say what the adapter said? Greedy outputs, compared token by token.

The reference is the base model with the adapter applied (unmerged), the candidate
is the export loaded back with plain transformers. Greedy decoding is deterministic,
so the outputs should be identical. Merging rounds ``W + B·A`` to the export's dtype,
which can flip a choice between two tokens whose logits were practically equal; such a
divergence is reported as a ``near-tie`` (with both margins) rather than a mismatch
when both models rate the two tokens within ``TIE_FRACTION`` of the spread (standard
deviation) of that step's logits: rounding error scales with the logits, so the
tolerance does too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carexpert.prompt import render_prompt

VERIFY_QUESTIONS = (
    "How much horsepower does a Toyota Camry make?",
    "What is the difference between a turbocharger and a supercharger?",
    "How often should I change synthetic oil?",
    "Is adaptive cruise control the same as lane keeping assist?",
)
VERIFY_NEW_TOKENS = 32
TIE_FRACTION = 0.05


@dataclass
class Generated:
    """One greedy answer: its prompt ids, the new token ids and the logits at each step (on the CPU)."""

    question: str
    prompt_ids: list[int]
    token_ids: list[int]
    step_logits: list[Any]


@dataclass
class PromptCheck:
    question: str
    status: str                      # match | near-tie | mismatch
    reference_text: str
    candidate_text: str
    first_difference: int | None = None
    margins: tuple[float, float] | None = None  # (reference's, candidate's) at the first difference
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "mismatch"

    def describe(self) -> str:
        head = f"{self.status}: {self.question}"
        if self.first_difference is not None:
            head += f" (first difference at token {self.first_difference}"
            if self.margins:
                head += f"; margins {self.margins[0]:.3f} / {self.margins[1]:.3f} logits"
            head += ")"
        return head + (f" - {self.note}" if self.note else "")


def greedy_generate(model: Any, tokenizer: Any, system_prompt: str | None,
                    questions: tuple[str, ...] = VERIFY_QUESTIONS,
                    max_new_tokens: int = VERIFY_NEW_TOKENS) -> list[Generated]:
    """Greedy answers to ``questions`` in the chat template, with the logits of each step.

    No sampling knobs and no repetition penalty, whatever the model's generation config says.
    """
    import torch
    from transformers import GenerationConfig

    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos[0] if isinstance(eos, list) else eos)
    # generate() fills every unset field from model.generation_config (an export's carries the chat's
    # repetition penalty): swap in a bare one so both models decode with exactly the same rules.
    saved, model.generation_config = model.generation_config, GenerationConfig(eos_token_id=eos, pad_token_id=pad)
    results = []
    try:
        for question in questions:
            prompt = render_prompt(question, system=system_prompt)
            ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(model.device)
            with torch.inference_mode():
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=max_new_tokens, output_logits=True, return_dict_in_generate=True)
            new = out.sequences[0, ids.shape[1]:].tolist()
            results.append(Generated(question, ids[0].tolist(), new, [step[0].float().cpu() for step in out.logits]))
    finally:
        model.generation_config = saved
    return results


def compare(reference: list[Generated], candidate: list[Generated], tokenizer: Any,
            tie_fraction: float = TIE_FRACTION) -> list[PromptCheck]:
    """One check per prompt: identical, a near-tie flip, or a real mismatch."""
    checks = []
    for ref, cand in zip(reference, candidate, strict=True):
        texts = (tokenizer.decode(ref.token_ids, skip_special_tokens=True),
                 tokenizer.decode(cand.token_ids, skip_special_tokens=True))
        if ref.prompt_ids != cand.prompt_ids:
            checks.append(PromptCheck(ref.question, "mismatch", *texts, note="the tokenizers split the prompt differently"))
            continue
        if ref.token_ids == cand.token_ids:
            checks.append(PromptCheck(ref.question, "match", *texts))
            continue
        step = next((i for i, (a, b) in enumerate(zip(ref.token_ids, cand.token_ids)) if a != b),
                    min(len(ref.token_ids), len(cand.token_ids)))
        if step >= min(len(ref.token_ids), len(cand.token_ids)):
            checks.append(PromptCheck(ref.question, "mismatch", *texts, step, note="one answer stopped earlier"))
            continue
        a, b = ref.token_ids[step], cand.token_ids[step]
        margins = (float(ref.step_logits[step][a] - ref.step_logits[step][b]),
                   float(cand.step_logits[step][b] - cand.step_logits[step][a]))
        tolerance = tie_fraction * float(ref.step_logits[step].std())
        status = "near-tie" if max(margins) <= tolerance else "mismatch"
        checks.append(PromptCheck(ref.question, status, *texts, step, margins,
                                  note="two almost equally likely tokens swapped by rounding" if status == "near-tie"
                                  else ""))
    return checks

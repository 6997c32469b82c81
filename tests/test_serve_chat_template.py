"""The Jinja chat template for vLLM renders exactly what carexpert.prompt.render_prompt renders."""

from __future__ import annotations

import pytest

from carexpert.prompt import SYSTEM_PROMPT, render_prompt
from carexpert.serve.chat_template import chat_template


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.mark.parametrize("system, history, question", [
    (None, [], "How much torque does the 2024 Camry LE make?"),
    ("  Be brief.\n", [], "What is a turbo?"),
    ("Be brief.", [("What is ADAS?", " Driver assistance. "), ("Name one.", "Lane keeping assist.")], "Another?"),
    (None, [("Q1?", "A1.")], "  Q2?\n"),
])
def test_the_jinja_template_matches_render_prompt(tokenizer, system, history, question):
    messages = [{"role": "system", "content": system}] if system else []
    for asked, answered in history:
        messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
    messages.append({"role": "user", "content": question})
    rendered = tokenizer.apply_chat_template(messages, chat_template=chat_template(), tokenize=False,
                                             add_generation_prompt=True)
    expected = render_prompt(question, system=system.strip() if system else SYSTEM_PROMPT, history=history)
    assert rendered == expected

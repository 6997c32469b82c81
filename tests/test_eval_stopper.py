"""The evaluation's stopping criterion decodes a row's tail only when its newest token could end a
stop string, and stops every row at the very step that decoding every row at every step would."""

from __future__ import annotations

import random

import pytest

from carexpert.prompt import stop_strings

PIECES = ["The Camry makes 203 hp", " and 184 lb-ft", ".", "\n", "\n\n", "###", "### ", " Instruction", "Instruction",
          ":", ": ", " Response:", "Input:", "\n### Instruction:", "\n### Response:", "\n### Context:", "\n###",
          " Context", "Note:", "é", "0-60: 5.8 s", " ", "Honda", " N·m"]


def reference_stopper(tokenizer, prompt_length, eos_ids, stops):
    """The criterion as it was: every unfinished row's tail decoded at every step."""
    import torch

    tail_tokens = max(8, max(len(s) for s in stops) + 4)
    state = {"finished": None}

    def call(input_ids):
        new = input_ids[:, prompt_length:]
        if state["finished"] is None:
            state["finished"] = torch.zeros(input_ids.shape[0], dtype=torch.bool)
        done = state["finished"].clone()
        done |= torch.isin(new[:, -1:], torch.tensor(sorted(eos_ids))).any(dim=1)
        for row in (~done).nonzero().flatten().tolist():
            tail = tokenizer.decode(new[row, -tail_tokens:], skip_special_tokens=True)
            done[row] = any(stop in tail for stop in stops)
        state["finished"] = done
        return done

    return call


class CountingTokenizer:
    """The tokenizer, counting how many tails the criterion decodes (single-token decodes apart)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.tails = 0

    def decode(self, ids, **kwargs):
        if len(ids) > 1:
            self.tails += 1
        return self.tokenizer.decode(ids, **kwargs)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def random_rows(tokenizer, rng: random.Random, rows: int, length: int) -> list[list[int]]:
    """Token rows built from text pieces tokenized apart, so a turn marker is split many ways."""
    out = []
    for _ in range(rows):
        ids: list[int] = []
        while len(ids) < length:
            piece = rng.choice(PIECES)
            ids += tokenizer(piece, add_special_tokens=False)["input_ids"] if rng.random() < 0.9 \
                else [rng.randrange(len(tokenizer))]
        out.append(ids[:length])
    return out


def test_rows_stop_at_the_same_step_as_decoding_every_row_every_step(tokenizer):
    import torch

    from carexpert.evaluation.generate import _make_stopper

    stops = stop_strings()
    eos = {tokenizer.eos_token_id}
    rng = random.Random(0)
    stopped_at_turns = decoded = reference_decodes = 0
    for trial in range(12):
        rows = random_rows(tokenizer, rng, 16, 48)
        prompt = [[5, 6, 7]] * len(rows)
        counting = CountingTokenizer(tokenizer)
        mine = _make_stopper(counting, 3, eos, stops, None)
        counting_reference = CountingTokenizer(tokenizer)
        reference = reference_stopper(counting_reference, 3, eos, stops)
        for step in range(1, 49):
            ids = torch.tensor([p + r[:step] for p, r in zip(prompt, rows)])
            expected = reference(ids)
            assert mine(ids, None).tolist() == expected.tolist(), (trial, step)
        stopped_at_turns += int(expected.sum())
        decoded += counting.tails
        reference_decodes += counting_reference.tails
    assert stopped_at_turns > 50  # the rows do hit turn markers, split across tokens in many ways
    assert decoded < reference_decodes / 3


def test_a_row_without_a_colon_is_never_decoded(tokenizer):
    import torch

    from carexpert.evaluation.generate import _make_stopper

    counting = CountingTokenizer(tokenizer)
    stop = _make_stopper(counting, 1, {tokenizer.eos_token_id}, stop_strings(), None)
    text = tokenizer("The Camry makes 203 hp and 184 lb-ft. ### Instruction", add_special_tokens=False)["input_ids"]
    for step in range(1, len(text) + 1):
        assert stop(torch.tensor([[9] + text[:step]] * 4), None).tolist() == [False] * 4
    assert counting.tails == 0
    colon = tokenizer(":", add_special_tokens=False)["input_ids"]
    assert stop(torch.tensor([[9] + text + colon] * 4), None).tolist() == [False] * 4  # no newline: not a turn
    assert counting.tails == 4

"""Tokenization: loss on the answer only, EOS at the end, truncation and length stats."""

from __future__ import annotations

import pytest

from carexpert.dataset import (
    dataset_fingerprint,
    encode_example,
    tokenize_example,
    tokenize_records,
)
from carexpert.dataset.stats import length_stats, percentile, token_length_stats
from carexpert.dataset.tokenization import IGNORE_INDEX, prompt_for
from carexpert.errors import UserError
from carexpert.prompt import SYSTEM_PROMPT, render_prompt

RECORD = {"instruction": "How much torque does the 2024 Toyota Camry LE make?", "input": "",
          "output": "The 2024 Toyota Camry LE makes 184 lb-ft of torque, or 250 N·m."}


def tiny_tokenizer(eos: bool = True):
    """A byte-level BPE tokenizer trained in-process (no downloads) that adds a BOS token."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    corpus = [SYSTEM_PROMPT, render_prompt("What is a turbo?"), RECORD["output"], "Camry Accord torque hp mpg"]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(corpus * 3, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", pad_token="<pad>",
                                   eos_token="</s>" if eos else None)


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def test_labels_mask_the_prompt_and_the_answer_ends_with_eos(tokenizer):
    features = tokenize_example(tokenizer, RECORD, 512)
    prompt_ids = tokenizer(prompt_for(RECORD))["input_ids"]
    n = len(prompt_ids)
    assert prompt_ids[0] == tokenizer.bos_token_id
    assert features["input_ids"][:n] == prompt_ids
    assert features["labels"][:n] == [IGNORE_INDEX] * n
    assert features["labels"][n:] == features["input_ids"][n:]
    assert features["input_ids"][-1] == tokenizer.eos_token_id
    assert features["attention_mask"] == [1] * len(features["input_ids"])
    answer = tokenizer.decode(features["input_ids"][n:-1])
    assert answer == RECORD["output"]


def test_the_prompt_is_the_shared_template(tokenizer):
    assert prompt_for(RECORD) == render_prompt(RECORD["instruction"], "")
    chat = {"instruction": "And the Accord?", "output": "192 lb-ft.", "system": "Be brief.",
            "history": [["Camry torque?", "184 lb-ft."]]}
    assert prompt_for(chat) == render_prompt("And the Accord?", "", system="Be brief.",
                                             history=[("Camry torque?", "184 lb-ft.")])


def test_a_long_answer_is_cut_and_the_prompt_kept(tokenizer):
    long_record = dict(RECORD, output=" ".join([RECORD["output"]] * 40))
    prompt_len = len(tokenizer(prompt_for(long_record))["input_ids"])
    encoded = encode_example(tokenizer, long_record, prompt_len + 10)
    assert encoded.status == "truncated" and len(encoded.input_ids) == prompt_len + 10
    assert encoded.labels[:prompt_len] == [IGNORE_INDEX] * prompt_len
    assert encoded.input_ids[-1] != tokenizer.eos_token_id  # a cut answer must not teach "stop here"
    assert encoded.full_length > prompt_len + 10


def test_a_prompt_longer_than_max_length_is_dropped_and_reported(tokenizer):
    assert tokenize_example(tokenizer, RECORD, 8) is None
    rows, report = tokenize_records(tokenizer, [dict(RECORD, id="a"), dict(RECORD, id="b", output="x " * 400)], 60)
    assert report.dropped == 2 and report.dropped_ids == ["a", "b"]
    rows, report = tokenize_records(tokenizer, [dict(RECORD, id="a"), dict(RECORD, id="b", output="x " * 400)], 200)
    assert report.kept == 2 and report.truncated == 1 and len(rows) == 2
    assert "cut to fit" in report.summary()


def test_a_tokenizer_without_eos_is_a_user_error():
    with pytest.raises(UserError, match="EOS"):
        tokenize_example(tiny_tokenizer(eos=False), RECORD, 512)


def test_length_stats_exact_and_estimated(tokenizer):
    stats = token_length_stats([RECORD] * 3, tokenizer, max_length=512)
    assert stats.exact and stats.p50 == stats.max == encode_example(tokenizer, RECORD, 512).full_length
    estimate = token_length_stats([RECORD], None, 512)
    assert not estimate.exact and "estimate" in estimate.method
    assert percentile([5, 1, 3, 2, 4], 50) == 3 and percentile(list(range(1, 101)), 95) == 95
    summary = length_stats([10, 20, 600], 512)
    assert (summary.p50, summary.max, summary.over_max) == (20, 600, 1)


def test_fingerprint_tracks_what_tokenization_sees():
    base = dataset_fingerprint([RECORD], 512)
    assert dataset_fingerprint([dict(RECORD, id="other", category="x")], 512) == base
    assert dataset_fingerprint([dict(RECORD, output=RECORD["output"] + "!")], 512) != base
    assert dataset_fingerprint([RECORD], 256) != base
    assert dataset_fingerprint([RECORD, RECORD], 512) != base
    assert len(base) == 64

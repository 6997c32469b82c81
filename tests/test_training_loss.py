"""The speed levers change nothing the model learns: packed == padded, selective == standard."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from carexpert.training.collate import make_collator, real_token_count, sequence_count  # noqa: E402
from carexpert.training.loss import prediction_mask, selective_lm_loss, supports_selective_logits  # noqa: E402


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


def examples(tokenizer):
    """Three examples of different lengths, loss on the answer only."""
    out = []
    for prompt, answer in [("Q: Camry power?\nA:", " 203 hp."), ("Q: What does a turbocharger use?\nA:",
                           " Exhaust gas spins a turbine."), ("Q: EV?\nA:", " Electric vehicle, charged by plug.")]:
        p = tokenizer(prompt)["input_ids"]
        a = tokenizer(answer)["input_ids"] + [tokenizer.eos_token_id]
        out.append({"input_ids": p + a, "attention_mask": [1] * (len(p) + len(a)), "labels": [-100] * len(p) + a})
    return out


def standard_loss(model, batch):
    return model(**batch, use_cache=False).loss


def test_prediction_mask_marks_positions_whose_next_token_is_labelled():
    labels = torch.tensor([[-100, -100, 5, 6, -100]])
    assert prediction_mask(labels).tolist() == [[False, True, True, False, False]]


def test_packed_batch_gives_the_padded_loss(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    feats = examples(tokenizer)
    padded = make_collator(tokenizer, packed=False)(feats)
    packed = make_collator(tokenizer, packed=True)(feats)
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed
    assert packed["input_ids"].shape[1] == sum(len(f["input_ids"]) for f in feats) < padded["input_ids"].numel()
    with torch.no_grad():
        torch.testing.assert_close(standard_loss(model, packed), standard_loss(model, padded), rtol=1e-5, atol=1e-5)
    assert int(real_token_count(packed)) == int(real_token_count(padded))
    assert int(sequence_count(packed)) == int(sequence_count(padded)) == 3


def test_packing_leaks_without_position_ids_or_with_a_kv_cache(model_and_tokenizer):
    """Guards the test above: the block-diagonal mask comes from the position ids, and only
    without a cache (transformers skips packed detection when one exists, so training must
    run with use_cache=False)."""
    model, tokenizer = model_and_tokenizer
    packed = make_collator(tokenizer, packed=True)(examples(tokenizer))
    no_positions = {k: v for k, v in packed.items() if k != "position_ids"}
    with torch.no_grad():
        right = standard_loss(model, packed).item()
        assert abs(standard_loss(model, no_positions).item() - right) > 1e-4
        assert abs(model(**packed, use_cache=True).loss.item() - right) > 1e-4


@pytest.mark.parametrize("packed", [True, False])
def test_selective_logits_give_the_standard_loss_and_gradients(model_and_tokenizer, packed):
    model, tokenizer = model_and_tokenizer
    assert supports_selective_logits(model)
    batch = make_collator(tokenizer, packed=packed)(examples(tokenizer))
    model.zero_grad()
    expected = standard_loss(model, batch)
    expected.backward()
    expected_grad = model.model.layers[0].self_attn.q_proj.weight.grad.clone()
    model.zero_grad()
    loss, outputs = selective_lm_loss(model, batch)
    loss.backward()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.model.layers[0].self_attn.q_proj.weight.grad, expected_grad, rtol=1e-4, atol=1e-6)
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    assert outputs.logits.shape == (labelled, model.config.vocab_size)  # logits only where there is a label


def test_selective_loss_divides_by_the_accumulated_token_count(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    batch = make_collator(tokenizer, packed=True)(examples(tokenizer))
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    with torch.no_grad():
        mean, _ = selective_lm_loss(model, batch)
        over_two_batches, _ = selective_lm_loss(model, batch, num_items_in_batch=torch.tensor(2 * labelled))
    torch.testing.assert_close(over_two_batches, mean / 2)

"""The speed levers change nothing the model learns: packed == padded, selective == standard."""

from __future__ import annotations

import contextlib

import pytest

torch = pytest.importorskip("torch")

from carexpert.training.collate import make_collator, real_token_count, sequence_count
from carexpert.training.head_loss import default_chunk_rows, labelled_head_loss
from carexpert.training.loss import (
    chunked_lm_loss,
    prediction_mask,
    resolve_head_loss,
    selective_lm_loss,
    supports_chunked_head,
    supports_selective_logits,
)


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


@contextlib.contextmanager
def frozen_output_layer(model):
    """The tiny model's output layer (tied to the embeddings) frozen, as under LoRA."""
    weight = model.get_input_embeddings().weight
    weight.requires_grad_(False)
    try:
        yield
    finally:
        weight.requires_grad_(True)
        model.zero_grad()


def _grads(model):
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("chunk_rows", [1, 4, 10_000])
def test_chunked_labelled_loss_gives_the_standard_loss_and_gradients(model_and_tokenizer, packed, chunk_rows):
    """Value and every weight's gradient, packed and padded, one row per chunk up to one chunk for all."""
    model, tokenizer = model_and_tokenizer
    batch = make_collator(tokenizer, packed=packed)(examples(tokenizer))
    assert not supports_chunked_head(model)  # a trainable output layer: refused
    with frozen_output_layer(model):
        assert supports_chunked_head(model)
        model.zero_grad()
        expected = standard_loss(model, batch)
        expected.backward()
        expected_grads = _grads(model)
        model.zero_grad()
        loss, outputs = chunked_lm_loss(model, batch, chunk_rows=chunk_rows)
        loss.backward()
        grads = _grads(model)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert grads.keys() == expected_grads.keys() and len(grads) > 5
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    assert outputs.logits.shape[1] == 1  # no full logits were computed


def test_chunked_loss_divides_by_the_accumulated_token_count(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    batch = make_collator(tokenizer, packed=True)(examples(tokenizer))
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    with torch.no_grad(), frozen_output_layer(model):
        mean, _ = chunked_lm_loss(model, batch)
        over_two_batches, _ = chunked_lm_loss(model, batch, num_items_in_batch=torch.tensor(2 * labelled))
        selective, _ = selective_lm_loss(model, batch)
    torch.testing.assert_close(over_two_batches, mean / 2)
    torch.testing.assert_close(mean, selective, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("softcap", [None, 3.0])
def test_labelled_head_loss_matches_cross_entropy_of_the_capped_logits(softcap):
    """The hand-written gradient, softcapping's derivative included, against autograd."""
    torch.manual_seed(0)
    hidden = torch.randn(13, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 8, dtype=torch.float64)
    targets = torch.randint(0, 50, (13,))
    loss = labelled_head_loss(hidden, weight, targets, chunk_rows=5, softcap=softcap)
    loss.backward()
    got = hidden.grad.clone()
    hidden.grad = None
    logits = hidden @ weight.T
    if softcap:
        logits = softcap * torch.tanh(logits / softcap)
    expected = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
    expected.backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(got, hidden.grad)


def test_labelled_head_loss_refuses_a_trainable_output_layer_and_sizes_chunks_by_vocabulary():
    hidden = torch.randn(3, 4, requires_grad=True)
    with pytest.raises(ValueError, match="frozen"):
        labelled_head_loss(hidden, torch.randn(10, 4, requires_grad=True), torch.tensor([1, 2, 3]), chunk_rows=2)
    assert default_chunk_rows(262_144) == 256 and default_chunk_rows(32_000) == 2097
    empty = labelled_head_loss(hidden[:0], torch.randn(10, 4), torch.tensor([], dtype=torch.long), chunk_rows=2)
    assert float(empty) == 0.0


def test_head_loss_falls_back_where_the_model_does_more_to_its_logits(model_and_tokenizer, monkeypatch):
    from carexpert.training import loss as loss_module

    model, _ = model_and_tokenizer
    with frozen_output_layer(model):
        assert resolve_head_loss("chunked", model) == ("chunked", None)
        assert resolve_head_loss("full", model) == ("full", None)
    scaled = "logits = self.lm_head(hidden_states)\n        logits = logits * self.logit_scale\n        loss = None"
    monkeypatch.setattr(loss_module, "_forward_source", lambda m: "slice_logits_to_keep\n" + scaled)
    head, note = resolve_head_loss("chunked", model)
    assert head == "selective" and "chunked" in note


def test_compiling_wraps_every_decoder_layer_and_falls_back_to_eager_on_errors(tiny_model_dir):
    """Only the wrapping (compiling itself is measured on the GPU, benchmarks/embedded_levers.py)."""
    from transformers import AutoModelForCausalLM

    from carexpert.training.model_setup import compile_decoder_layers

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    before = torch._dynamo.config.suppress_errors
    try:
        assert compile_decoder_layers(model) == len(model.model.layers) == 2
        assert all(layer._compiled_call_impl is not None for layer in model.model.layers)
        assert torch._dynamo.config.suppress_errors
        batch = {"input_ids": torch.tensor([[1, 5, 9, 14]])}
        torch._dynamo.utils.counters.clear()
        with torch.no_grad():  # evaluation: eager, nothing compiled (the compiled path is measured on the GPU)
            model(**batch)
        assert torch._dynamo.utils.counters["stats"]["calls_captured"] == 0
    finally:
        torch._dynamo.config.suppress_errors = before


def test_a_compiled_run_gets_a_constant_flash_max_length():
    collator = make_collator(None, packed=True, flash_attention=True, constant_max_length=512)
    batch = collator([{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}, {"input_ids": [1, 4], "labels": [-100, 4]}])
    assert batch["max_length_q"] == batch["max_length_k"] == 512 and batch["cu_seq_lens_q"].tolist() == [0, 3, 5]
    plain = make_collator(None, packed=True, flash_attention=False, constant_max_length=512)
    assert "max_length_q" not in plain([{"input_ids": [1, 2], "labels": [-100, 2]}])


@pytest.mark.parametrize("softcap", [None, 0.3])
def test_chunked_loss_matches_gemma3s_own_loss_with_and_without_logit_softcapping(softcap):
    """Gemma 3's forward (the embedded model's class), its final-logit softcapping included."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=8,
                              layer_types=["sliding_attention", "full_attention"], final_logit_softcapping=softcap)
    config._attn_implementation = "sdpa"
    model = Gemma3ForCausalLM(config)
    model.get_output_embeddings().weight.requires_grad_(False)
    assert supports_chunked_head(model)
    features = [{"input_ids": list(range(5, 5 + n)), "labels": [-100] * 4 + list(range(9, 5 + n))} for n in (12, 9)]
    batch = make_collator(None, packed=True)(features)
    expected = model(**batch, use_cache=False).loss
    expected.backward()
    expected_grads = _grads(model)
    model.zero_grad()
    loss, _ = chunked_lm_loss(model, batch, chunk_rows=3)
    loss.backward()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    for name, grad in _grads(model).items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-4, atol=1e-6, msg=name)

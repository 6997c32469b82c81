"""The packed-training attention choice and its SDPA fallback (the varlen kernel itself is CUDA-only;
its numerics are checked on the GPU by benchmarks/gpu_env_check.py against per-example SDPA)."""

from __future__ import annotations

import pytest

from carexpert.config.schema import Config
from carexpert.modeling import attention
from carexpert.modeling.load import attention_implementation


def test_auto_picks_varlen_only_for_packed_training_on_a_gpu(monkeypatch):
    cfg = Config().model
    monkeypatch.setattr(attention, "varlen_available", lambda device: device.startswith("cuda"))
    assert attention_implementation(cfg, "cuda:0", packed_training=True) == attention.VARLEN
    assert attention_implementation(cfg, "cuda:0", packed_training=False) == "sdpa"
    assert attention_implementation(cfg, "cpu", packed_training=True) == "sdpa"


def test_explicit_setting_and_fp32_compute_keep_their_kernel(monkeypatch):
    monkeypatch.setattr(attention, "varlen_available", lambda device: True)
    cfg = Config().model
    cfg.attn_implementation = "eager"
    assert attention_implementation(cfg, "cuda:0", packed_training=True) == "eager"
    cfg = Config().model
    cfg.compute_dtype = "float32"
    assert attention_implementation(cfg, "cuda:0", packed_training=True) == "sdpa"


def test_varlen_is_unavailable_on_the_cpu():
    assert not attention.varlen_available("cpu")


def test_without_boundaries_the_registered_kernel_is_sdpa(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    name = attention.register_varlen()
    ids = torch.tensor([[1, 5, 9, 14, 3, 7, 2], [1, 8, 8, 4, 0, 0, 0]])
    mask = torch.tensor([[1] * 7, [1, 1, 1, 1, 0, 0, 0]])
    outputs = []
    for implementation in ("sdpa", name):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=implementation)
        with torch.no_grad():
            outputs.append(model(input_ids=ids, attention_mask=mask).logits)
    assert torch.allclose(outputs[0][mask.bool()], outputs[1][mask.bool()], atol=1e-5)


def test_a_packed_row_without_boundaries_stays_inside_each_example_on_the_cpu(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    name = attention.register_varlen()
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=name)
    first, second = [1, 5, 9, 14], [1, 8, 8]
    with torch.no_grad():
        packed = model(input_ids=torch.tensor([first + second]),
                       position_ids=torch.tensor([[0, 1, 2, 3, 0, 1, 2]])).logits
        alone = model(input_ids=torch.tensor([second])).logits
    assert torch.allclose(packed[0, 4:], alone[0], atol=1e-5)


def test_the_packing_collator_gives_the_boundaries_the_kernel_reads():
    from carexpert.training.collate import make_collator

    collator = make_collator(None, packed=True, flash_attention=True)
    batch = collator([{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]},
                      {"input_ids": [1, 4], "labels": [-100, 4]}])
    assert batch["cu_seq_lens_q"].tolist() == [0, 3, 5]
    assert batch["max_length_q"] == 3
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]


@pytest.mark.gpu
def test_varlen_matches_per_example_sdpa_on_a_gpu():
    import torch

    if not attention.varlen_available("cuda") or not torch.cuda.is_available():
        pytest.skip("needs CUDA and torch.nn.attention.varlen")
    lengths = [5, 11, 3]
    cu = torch.tensor([0, 5, 16, 19], device="cuda")
    q = torch.randn(1, 8, 19, 64, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, 2, 19, 64, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(1, 2, 19, 64, device="cuda", dtype=torch.bfloat16)
    out, _ = attention.varlen_attention_forward(None, q, k, v, None, scaling=64**-0.5, cu_seq_lens_q=cu,
                                                max_length_q=max(lengths))
    start = 0
    for length in lengths:
        part = slice(start, start + length)
        ref = torch.nn.functional.scaled_dot_product_attention(
            q[:, :, part].float(), k[:, :, part].float().repeat_interleave(4, 1),
            v[:, :, part].float().repeat_interleave(4, 1), is_causal=True).transpose(1, 2)
        assert ((out[:, part].float() - ref).norm() / ref.norm()) < 1e-2
        start += length


def _tiny_gemma(implementation: str):
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=4,
                              layer_types=["sliding_attention", "full_attention"], max_position_embeddings=64)
    config._attn_implementation = implementation
    return Gemma3ForCausalLM(config).eval()


@pytest.mark.parametrize("packed", [True, False])
def test_sliding_window_layers_keep_their_window_on_the_fallback_path(packed):
    """Examples longer than Gemma's window: packed or padded, the registered kernel's SDPA path
    gives what transformers' own sliding-window mask gives for each example alone."""
    import torch

    name = attention.register_varlen()
    reference, ours = _tiny_gemma("sdpa"), _tiny_gemma(name)
    ours.load_state_dict(reference.state_dict())
    first, second = list(range(3, 13)), list(range(20, 27))
    with torch.no_grad():
        alone = [reference(input_ids=torch.tensor([ids])).logits[0] for ids in (first, second)]
        if packed:
            logits = ours(input_ids=torch.tensor([first + second]),
                          position_ids=torch.tensor([list(range(10)) + list(range(7))])).logits[0]
            got = [logits[:10], logits[10:]]
        else:
            ids = torch.tensor([first, second + [0, 0, 0]])
            mask = torch.tensor([[1] * 10, [1] * 7 + [0] * 3])
            logits = ours(input_ids=ids, attention_mask=mask).logits
            got = [logits[0], logits[1, :7]]
        unbanded = _tiny_gemma("sdpa")
        unbanded.load_state_dict(reference.state_dict())
        unbanded.config.sliding_window = 64  # what ignoring the window would give
        wrong = unbanded(input_ids=torch.tensor([first])).logits[0]
    for expected, actual in zip(alone, got):
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(wrong, alone[0], atol=1e-3)  # the window matters for these lengths


def test_the_causal_band_matches_transformers_sliding_window_rule():
    band = attention._causal(5, 5, 2, "cpu").int().tolist()
    assert band == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]]
    assert attention._causal(2, 5, 2, "cpu").int().tolist() == [[0, 0, 1, 1, 0], [0, 0, 0, 1, 1]]


def test_packed_boundaries_measure_the_longest_example_when_the_caller_gives_only_the_boundaries():
    """The time-estimate probe's batches reached the kernel without ``max_length_q`` (a KeyError on an H200)."""
    import torch

    query = torch.zeros(1, 1, 10, 4)
    cu = torch.tensor([0, 3, 10, 12])
    given = attention._packed_boundaries(query, None, {"cu_seq_lens_q": cu, "max_length_q": 64})
    measured = attention._packed_boundaries(query, None, {"cu_seq_lens_q": cu})
    assert given[1] == 64 and measured[1] == 7
    assert measured[0].dtype == torch.int32 and measured[0].tolist() == [0, 3, 10, 12]


def test_the_probe_moves_tensors_and_keeps_the_kernel_s_python_ints():
    import torch

    from carexpert.training.probe import on_device

    batch = on_device({"input_ids": torch.ones(1, 3, dtype=torch.long), "max_length_q": 3}, "cpu")
    assert batch["max_length_q"] == 3 and batch["input_ids"].device.type == "cpu"

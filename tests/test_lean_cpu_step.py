"""The CPU decoding step: lean Gemma 3 layers (``lean_gemma3``) and the screened head (``screened_head``).

Greedy answers must equal ``generate``'s token for token (across the tiny Gemma 3's
8-token sliding window), the screen's error bound must hold for every row, and other
architectures, adapters and failures must fall back to the transformers forward and
say so. Speed is measured in benchmarks/decode_cpu.py, not here.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from carexpert.chat import lean_gemma3, screened_head
from carexpert.chat.decode_step import SamplingParams, penalize
from carexpert.chat.graph_decode import DecodeRequest, GraphDecoder

NEW_TOKENS = 40


def int8_exact_here() -> bool:
    """Whether this CPU's oneDNN int8 kernel sums exactly (AVX-512 VNNI / AMX do; AVX2 saturates int16 sums)."""
    try:
        screened_head.check_int8_kernel()
    except screened_head.ScreenUnavailable:
        return False
    return True


INT8_EXACT = int8_exact_here()
needs_exact_int8 = pytest.mark.skipif(not INT8_EXACT, reason="this CPU's int8 kernel is not exact: the screen is "
                                                              "refused here (the fallback is tested instead)")


@pytest.fixture(scope="module")
def gemma_dir(tmp_path_factory):
    from tiny_model import build_tiny_gemma3

    return build_tiny_gemma3(tmp_path_factory.mktemp("tiny-gemma3"), sliding_window=8)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


def load(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa", dtype=torch.float32).eval()


def prompt(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)("The Toyota Camry makes", return_tensors="pt")["input_ids"]


def reference(model, ids, penalty):
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS, do_sample=False,
                             repetition_penalty=penalty, eos_token_id=None, pad_token_id=0)
    return out[0, ids.shape[1]:].tolist()


def own(decoder, ids, params, seed=None):
    request = DecodeRequest(params, NEW_TOKENS, frozenset())
    return [token for token, _ in decoder.stream(ids, request, seed=seed)]


@pytest.mark.parametrize("penalty", [1.0, 1.1, 1.3])
def test_lean_step_and_screened_head_answer_like_generate_across_the_window(gemma_dir, penalty):
    model, ids = load(gemma_dir), prompt(gemma_dir)
    expected = reference(model, ids, penalty)
    assert ids.shape[1] + NEW_TOKENS > 3 * model.config.sliding_window and len(set(expected)) >= 8
    decoder = GraphDecoder(model, 256, graphs=False, compile_step=False)
    assert decoder.lean is not None and "lean Gemma 3 layers" in decoder.describe()
    if INT8_EXACT:
        assert decoder.screen is not None and decoder.cpu_note == ""
    else:  # a CPU whose int8 sums saturate keeps the fp32 head, and says so
        assert decoder.screen is None and decoder.cpu_note.startswith("full fp32 head (")
    assert own(decoder, ids, SamplingParams(True, repetition_penalty=penalty)) == expected
    if decoder.screen is not None:
        assert 1 <= decoder.screen.candidate_count < model.config.vocab_size  # the screen did leave tokens out
    assert own(decoder, ids, SamplingParams(True, repetition_penalty=penalty)) == expected  # cache reused


def test_lean_hidden_states_match_the_transformers_forward(gemma_dir):
    model, ids = load(gemma_dir), prompt(gemma_dir)
    decoder = GraphDecoder(model, 256, graphs=False, compile_step=False)
    with torch.inference_mode():
        tokens = torch.tensor([reference(model, ids, 1.0)])
        full = model.model(torch.cat([ids, tokens], 1)).last_hidden_state[0]
        list(decoder.stream(ids, DecodeRequest(SamplingParams(True), 1, frozenset())))  # prefill: the cache
        cache = decoder.live_cache
        for offset, token in enumerate(tokens[0, :-1]):
            position = ids.shape[1] + offset
            hidden = decoder.lean.hidden(token.view(1, 1), position, cache)
            torch.testing.assert_close(hidden[0], full[position], rtol=1e-5, atol=1e-5)


def test_sampling_with_top_k_draws_what_the_full_head_draws(gemma_dir):
    model, ids = load(gemma_dir), prompt(gemma_dir)
    lean = GraphDecoder(model, 256, graphs=False, compile_step=False)
    plain = GraphDecoder(model, 256, graphs=False, compile_step=False)
    plain.lean = plain.screen = None
    params = SamplingParams(False, temperature=0.9, top_p=0.95, top_k=40, repetition_penalty=1.1)
    for seed in (3, 4):
        assert own(lean, ids, params, seed) == own(plain, ids, params, seed)


@needs_exact_int8
def test_the_screen_bound_holds_for_every_row_and_keeps_the_true_top_k():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(3000, 64, generator=generator) * 0.05
    weight[7] *= 40  # a row with a large scale
    head = screened_head.ScreenedHead(weight)
    seen = torch.zeros(1, 3000, dtype=torch.bool)
    seen[0, ::7] = True
    banned = torch.zeros(1, 3000, dtype=torch.bool)
    banned[0, 11] = True
    for trial in range(40):
        hidden = torch.randn(1, 64, generator=generator) * 4
        hidden[0, trial % 64] = 60.0 * (-1) ** trial  # an outlier, as in Gemma's final hidden state
        if trial == 0:
            hidden = torch.zeros(1, 64)
        exact = F.linear(hidden, weight)
        approximate, error = head.screen(hidden)
        assert bool(((approximate - exact).abs() <= error).all())
        penalty = torch.tensor(1.3 if trial % 2 else 0.8)
        expected = penalize(exact, seen, penalty).masked_fill(banned, float("-inf"))
        for keep in (1, 5, 50):
            got = penalize(head.logits(hidden, seen, banned, penalty, keep), seen, penalty).masked_fill(
                banned, float("-inf"))
            top_expected, top_got = expected.topk(keep), got.topk(keep)
            assert top_got.indices.tolist() == top_expected.indices.tolist() or trial == 0  # zeros: all tie
            torch.testing.assert_close(top_got.values, top_expected.values, rtol=1e-6, atol=1e-6)


def test_other_architectures_keep_the_transformers_layers_and_say_so(llama_dir):
    model, ids = load(llama_dir), prompt(llama_dir)
    expected = reference(model, ids, 1.2)
    decoder = GraphDecoder(model, 256, graphs=False, compile_step=False)
    assert decoder.lean is None and "LlamaForCausalLM is not Gemma3ForCausalLM" in decoder.cpu_note
    assert (decoder.screen is not None) == INT8_EXACT  # any plain Linear head is screened where int8 is exact
    assert own(decoder, ids, SamplingParams(True, repetition_penalty=1.2)) == expected


def test_adapter_layers_keep_the_transformers_layers(gemma_dir):
    peft = pytest.importorskip("peft")
    model, ids = load(gemma_dir), prompt(gemma_dir)
    wrapped = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                         init_lora_weights=False))
    wrapped.eval()
    assert "an adapter not merged" in lean_gemma3.unsupported_reason(wrapped.get_base_model())
    decoder = GraphDecoder(wrapped, 256, graphs=False, compile_step=False)
    assert decoder.lean is None and "adapter" in decoder.cpu_note
    assert own(decoder, ids, SamplingParams(True, repetition_penalty=1.1)) == reference(wrapped, ids, 1.1)


def test_a_failing_lean_step_falls_back_at_warm_up_and_says_why(gemma_dir, monkeypatch):
    model, ids = load(gemma_dir), prompt(gemma_dir)

    def broken(self, token, position, cache):
        raise RuntimeError("simulated lean failure")

    monkeypatch.setattr(lean_gemma3.LeanGemma3Step, "hidden", broken)
    decoder = GraphDecoder(model, 256, graphs=False, compile_step=False)
    decoder.warm_up(ids, [DecodeRequest(SamplingParams(True), 4, frozenset())])
    assert decoder.lean is None and decoder.screen is None and "simulated lean failure" in decoder.cpu_note
    assert own(decoder, ids, SamplingParams(True)) == reference(model, ids, 1.0)


def test_an_inexact_int8_kernel_is_refused(gemma_dir, monkeypatch):
    def saturating():
        raise screened_head.ScreenUnavailable("not exact on this CPU (simulated)")

    monkeypatch.setattr(screened_head, "check_int8_kernel", saturating)
    decoder = GraphDecoder(load(gemma_dir), 256, graphs=False, compile_step=False)
    assert decoder.screen is None and "simulated" in decoder.cpu_note and decoder.lean is not None


def test_the_int8_check_refuses_exactly_the_kernels_that_do_not_sum_exactly():
    """Extreme values (255 x 127 in every pair) through the kernel itself, against integer arithmetic:
    the check passes where they agree and refuses the screen where they do not (AVX2's int16 sums)."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, "qlinear_pointwise")):
        with pytest.raises(screened_head.ScreenUnavailable):
            screened_head.check_int8_kernel()
        return
    weights = torch.full((8, 640), 127, dtype=torch.int8)
    x = torch.full((1, 640), 255, dtype=torch.uint8)
    got = screened_head._int8_product(x, 1.0, torch.ops.onednn.qlinear_prepack(weights, [1, 640]), torch.ones(8),
                                      torch.zeros(8, dtype=torch.long))
    exact = float(640 * (255 - screened_head.ZERO_POINT) * 127)
    if bool((got == exact).all()):
        screened_head.check_int8_kernel()
    else:
        with pytest.raises(screened_head.ScreenUnavailable, match="not exact"):
            screened_head.check_int8_kernel()


def test_a_lean_step_that_cannot_be_set_up_leaves_the_transformers_layers(gemma_dir, monkeypatch):
    def broken(self, model, max_len=4096):
        raise MemoryError("simulated: no room for the concatenated weights")

    monkeypatch.setattr(lean_gemma3.LeanGemma3Step, "__init__", broken)
    model, ids = load(gemma_dir), prompt(gemma_dir)
    decoder = GraphDecoder(model, 256, graphs=False, compile_step=False)
    assert decoder.lean is None and "setting up the lean step failed: MemoryError" in decoder.cpu_note
    assert (decoder.screen is not None) == INT8_EXACT  # screened through the model's own decoder where it can be
    assert own(decoder, ids, SamplingParams(True, repetition_penalty=1.1)) == reference(model, ids, 1.1)


def test_chat_on_a_cpu_names_its_step_in_the_plan(gemma_dir, llama_dir, monkeypatch):
    import dataclasses

    import carexpert.chat.engine as session_module
    from carexpert.chat import ChatSession
    from carexpert.chat.fast import DecodePlan
    from carexpert.config import Config

    monkeypatch.setattr(session_module, "plan_for",
                        lambda config, base_dir: DecodePlan("full", "cpu", False, False, "test", "loop"))
    reasons = {}
    for label, folder in (("gemma", gemma_dir), ("llama", llama_dir)):
        config = Config()
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, base_model=str(folder),
                                                                       quantization="none"),
                                     chat=dataclasses.replace(config.chat, temperature=0.0, max_new_tokens=8))
        messages = []
        chat = ChatSession(config, base_only=True).load(progress=messages.append)
        assert chat.ask("What is torque?") and chat.last_stats.new_tokens == 8
        reasons[label] = chat.plan.reason
        assert any(message.startswith("CPU decoding step:") for message in messages)
    if INT8_EXACT:
        assert reasons["gemma"] == "test; CPU step: lean Gemma 3 layers, screened int8/fp32 head"
        assert "screened int8/fp32 head; transformers layers (LlamaForCausalLM is not" in reasons["llama"]
    else:
        assert reasons["gemma"].startswith("test; CPU step: lean Gemma 3 layers; full fp32 head (")
        assert "transformers layers (LlamaForCausalLM is not" in reasons["llama"]

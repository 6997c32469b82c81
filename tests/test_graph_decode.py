"""carexpert's own decode loop (``carexpert.chat.graph_decode``) against transformers' ``generate``.

The tiny Gemma 3 has a sliding window of 8 tokens, so every answer here crosses it. On a
CPU the loop runs eagerly; the CUDA-graph recording runs in the ``gpu`` tests.
"""

from __future__ import annotations

import threading

import pytest
import torch

from carexpert.chat import graph_decode
from carexpert.chat.decode_request import DecodeRequest, request_from_generation_config
from carexpert.chat.decode_step import SamplingParams
from carexpert.chat.graph_decode import GraphDecoder

NEW_TOKENS = 40


@pytest.fixture(scope="module")
def gemma_dir(tmp_path_factory):
    from tiny_model import build_tiny_gemma3

    return build_tiny_gemma3(tmp_path_factory.mktemp("tiny-gemma3"), sliding_window=8)


def load(folder, attention="sdpa", device="cpu", **overrides):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, attn_implementation=attention, **overrides).to(device).eval()


def prompt(folder, device="cpu"):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    return tokenizer("The Toyota Camry makes", return_tensors="pt")["input_ids"].to(device)


def reference(model, ids, penalty=1.0):
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS, do_sample=False,
                             repetition_penalty=penalty, eos_token_id=None, pad_token_id=0)
    return out[0, ids.shape[1]:].tolist()


def own(decoder, ids, params, new_tokens=NEW_TOKENS, seed=None, **request):
    return [token for token, _ in decoder.stream(ids, DecodeRequest(params, new_tokens, frozenset(), **request),
                                                 seed=seed)]


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_greedy_equals_generate_token_for_token_across_the_sliding_window(gemma_dir, attention, penalty):
    model, ids = load(gemma_dir, attention), prompt(gemma_dir)
    expected = reference(model, ids, penalty)
    assert ids.shape[1] + NEW_TOKENS > 3 * model.config.sliding_window
    assert len(set(expected)) >= 8  # a varied answer, not one token repeated
    decoder = GraphDecoder(model, 256, graphs=False, compile_step=False)
    assert own(decoder, ids, SamplingParams(True, repetition_penalty=penalty)) == expected
    assert own(decoder, ids, SamplingParams(True, repetition_penalty=penalty)) == expected  # the cache is reused


def test_the_sliding_window_changes_this_answer(gemma_dir):
    """Guards the test above: without the window the same model answers differently, so the window is exercised."""
    ids = prompt(gemma_dir)
    assert reference(load(gemma_dir), ids) != reference(load(gemma_dir, sliding_window=512), ids)


def test_sampling_with_a_seed_is_deterministic(gemma_dir):
    decoder = GraphDecoder(load(gemma_dir), 256, graphs=False, compile_step=False)
    ids = prompt(gemma_dir)
    params = SamplingParams(False, temperature=0.9, top_p=0.95, top_k=40, repetition_penalty=1.1)
    first = own(decoder, ids, params, seed=3)
    assert own(decoder, ids, params, seed=3) == first
    assert own(decoder, ids, params, seed=4) != first


def test_top_k_one_or_a_tiny_nucleus_is_greedy(gemma_dir):
    decoder = GraphDecoder(load(gemma_dir), 256, graphs=False, compile_step=False)
    ids = prompt(gemma_dir)
    greedy = own(decoder, ids, SamplingParams(True, repetition_penalty=1.2))
    assert own(decoder, ids, SamplingParams(False, temperature=1.5, top_k=1, repetition_penalty=1.2), seed=0) == greedy
    assert own(decoder, ids, SamplingParams(False, temperature=1.5, top_p=1e-6, repetition_penalty=1.2),
               seed=0) == greedy


def test_eos_suppressed_tokens_and_the_stop_event_end_or_shape_the_answer(gemma_dir):
    decoder = GraphDecoder(load(gemma_dir), 256, graphs=False, compile_step=False)
    ids = prompt(gemma_dir)
    greedy = own(decoder, ids, SamplingParams(True))
    stop_at = greedy[5]
    request = DecodeRequest(SamplingParams(True), NEW_TOKENS, frozenset([stop_at]))
    assert [token for token, _ in decoder.stream(ids, request)] == greedy[:greedy.index(stop_at) + 1]
    suppressed = own(decoder, ids, SamplingParams(True), suppress_tokens=frozenset([stop_at]))
    assert stop_at not in suppressed and suppressed != greedy
    stop = threading.Event()
    seen = []
    for token, _ in decoder.stream(ids, DecodeRequest(SamplingParams(True), NEW_TOKENS, frozenset()), stop):
        seen.append(token)
        if len(seen) == 3:
            stop.set()
    assert seen == greedy[:3]


def test_generate_settings_map_to_a_request_or_to_generate():
    from transformers import GenerationConfig

    sampled = request_from_generation_config(GenerationConfig(
        do_sample=True, temperature=0.7, top_p=0.9, top_k=50, repetition_penalty=1.1, max_new_tokens=12,
        eos_token_id=[1, 106]))
    assert sampled == DecodeRequest(SamplingParams(False, 0.7, 0.9, 50, 1.1), 12, frozenset([1, 106]))
    greedy = request_from_generation_config(GenerationConfig(do_sample=False, max_new_tokens=5, eos_token_id=2))
    assert greedy.params.greedy and greedy.eos_token_ids == frozenset([2])
    assert request_from_generation_config(GenerationConfig(num_beams=2, max_new_tokens=5)) is None
    assert request_from_generation_config(GenerationConfig(no_repeat_ngram_size=3, max_new_tokens=5)) is None
    assert request_from_generation_config(GenerationConfig(max_length=50)) is None  # no max_new_tokens


def test_a_failing_compile_records_the_uncompiled_step_and_says_why(gemma_dir, monkeypatch):
    def broken_compile(fn, **kwargs):
        def call(*args, **kw):
            raise RuntimeError("inductor: simulated failure")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    model, ids = load(gemma_dir), prompt(gemma_dir)
    decoder = GraphDecoder(model, 256, graphs=False, compile_step=True)
    decoder.warm_up(ids, [DecodeRequest(SamplingParams(True), 4, frozenset())])
    assert not decoder.compile_step and "simulated failure" in decoder.compile_error
    assert own(decoder, ids, SamplingParams(True)) == reference(model, ids)


def chat_config(folder, **chat):
    import dataclasses

    from carexpert.config import Config

    config = Config()
    return dataclasses.replace(config, model=dataclasses.replace(config.model, base_model=str(folder),
                                                                 quantization="none"),
                               chat=dataclasses.replace(config.chat, **chat))


def test_chat_on_a_cpu_uses_the_own_loop_and_answers_like_generate(gemma_dir, monkeypatch):
    import carexpert.chat.engine as session_module
    from carexpert.chat import ChatSession
    from carexpert.chat.fast import DecodePlan

    answers = {}
    for decoder in ("loop", "generate"):
        plan = DecodePlan("full", "cpu", False, False, "test", decoder)
        monkeypatch.setattr(session_module, "plan_for", lambda config, base_dir, plan=plan: plan)
        chat = ChatSession(chat_config(gemma_dir, temperature=0.0, max_new_tokens=30), base_only=True).load()
        assert (graph_decode.decoder_for(chat.model) is not None) == (decoder == "loop")
        answers[decoder] = [chat.ask("What is torque?"), chat.ask("And horsepower?")]
        assert chat.last_stats.new_tokens >= 1
    assert answers["loop"] == answers["generate"]


def test_the_default_cpu_plan_decodes_with_the_own_loop():
    from carexpert.chat.fast import choose_decode_plan

    plan = choose_decode_plan("auto", device="cpu", quantization="nf4", weight_bytes_bf16=None, free_bytes=None)
    assert plan.decoder == "loop" and "own decode loop" in plan.describe()
    gpu = choose_decode_plan("merged", device="cuda", quantization="nf4", weight_bytes_bf16=1, free_bytes=10**12)
    assert gpu.decoder == "graph" and "CUDA graphs" in gpu.describe()


def test_when_the_loop_cannot_be_set_up_chat_falls_back_to_generate_and_says_so(gemma_dir, monkeypatch):
    import carexpert.chat.engine as session_module
    from carexpert.chat import ChatSession
    from carexpert.chat.fast import DecodePlan

    def failing_warm_up(self, ids, requests):
        raise RuntimeError("CUDA graph capture failed (simulated)")

    monkeypatch.setattr(GraphDecoder, "warm_up", failing_warm_up)
    monkeypatch.setattr(session_module, "plan_for",
                        lambda config, base_dir: DecodePlan("full", "cpu", False, False, "test", "loop"))
    messages = []
    chat = ChatSession(chat_config(gemma_dir, temperature=0.0, max_new_tokens=8), base_only=True)
    chat.load(progress=messages.append)
    assert chat.plan.decoder == "generate"
    assert "own decode loop failed" in chat.plan.reason and "simulated" in chat.plan.reason
    assert any("simulated" in message for message in messages)
    assert graph_decode.decoder_for(chat.model) is None
    assert chat.ask("What is torque?") and chat.last_stats.new_tokens == 8


@pytest.mark.gpu
@pytest.mark.parametrize("compile_step", [False, True])
def test_recorded_steps_on_a_gpu_equal_generate_and_replay_past_the_window(gemma_dir, compile_step):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    model, ids = load(gemma_dir, device="cuda"), prompt(gemma_dir, "cuda")
    expected = reference(model, ids, 1.3)
    decoder = GraphDecoder(model, 256, graphs=True, compile_step=compile_step)
    decoder.warm_up(ids, [DecodeRequest(SamplingParams(True, repetition_penalty=1.3), 4, frozenset())])
    for _ in range(2):
        assert own(decoder, ids, SamplingParams(True, repetition_penalty=1.3)) == expected
    params = SamplingParams(False, temperature=0.9, top_p=0.95, top_k=40, repetition_penalty=1.1)
    assert own(decoder, ids, params, seed=7) == own(decoder, ids, params, seed=7)
    assert len(decoder.recorded) == 2

"""Every generate call (warm-up and answers) runs on one decode thread: compiled CUDA graphs are per thread."""

from __future__ import annotations

import threading

import torch

from carexpert.chat.fast import DecodePlan, warm_up
from carexpert.chat.streaming import stream_token_ids


class RecordingModel:
    """Stands in for a transformers model: records the thread of each generate and streams three tokens."""

    device = torch.device("cpu")

    def __init__(self) -> None:
        self.threads: list[int] = []

    def generate(self, input_ids=None, streamer=None, **kwargs):
        self.threads.append(threading.get_ident())
        if streamer is not None:
            streamer.put(input_ids)
            for token in (5, 6, 7):
                streamer.put(torch.tensor([token]))
            streamer.end()


class Tokenizer:
    pad_token_id = 0
    eos_token_id = 2

    def __call__(self, text, return_tensors=None):
        return {"input_ids": torch.tensor([[1, 3, 4]])}


def test_answers_and_warm_up_share_one_thread_that_is_not_the_callers():
    model = RecordingModel()
    warm_up(model, Tokenizer(), DecodePlan("merged", "cuda", True, True, "test"))
    for _ in range(2):
        tokens = [token for token, _ in stream_token_ids(model, torch.tensor([[1, 2]]), None, threading.Event())]
        assert tokens == [5, 6, 7]
    assert len(model.threads) == 5  # three warm-up generates, two answers
    assert len(set(model.threads)) == 1
    assert model.threads[0] != threading.get_ident()


def test_an_error_inside_generate_reaches_the_consumer_and_the_thread_survives():
    class Failing(RecordingModel):
        def generate(self, **kwargs):
            raise RuntimeError("boom")

    try:
        list(stream_token_ids(Failing(), torch.tensor([[1]]), None, threading.Event()))
    except RuntimeError as error:
        assert str(error) == "boom"
    else:
        raise AssertionError("the error was swallowed")
    model = RecordingModel()
    assert [t for t, _ in stream_token_ids(model, torch.tensor([[1]]), None, threading.Event())] == [5, 6, 7]


def test_a_failed_compiled_warm_up_falls_back_to_eager_decoding():
    from types import SimpleNamespace

    class Broken(RecordingModel):
        generation_config = SimpleNamespace(cache_implementation="static", disable_compile=False)

        def generate(self, **kwargs):
            raise RuntimeError("backend cannot compile this")

    model = Broken()
    plan = warm_up(model, Tokenizer(), DecodePlan("4bit", "cuda", True, True, "chat.fast_path = '4bit'"))
    assert (plan.weights, plan.static_cache, plan.compile) == ("4bit", False, False)
    assert "compiling failed" in plan.reason
    assert model.generation_config.disable_compile and model.generation_config.cache_implementation is None


def test_only_this_models_quantizer_is_allowed_to_compile():
    from types import SimpleNamespace

    from carexpert.chat.fast import allow_compiling_quantized

    class Quantizer:
        @property
        def is_compileable(self):
            return False

    mine, other = Quantizer(), Quantizer()
    allow_compiling_quantized(SimpleNamespace(hf_quantizer=mine))
    assert mine.is_compileable and not other.is_compileable
    allow_compiling_quantized(SimpleNamespace(hf_quantizer=None))  # unquantized: nothing to do


def test_static_cache_caps_the_context_window(tiny_model_dir, monkeypatch):
    import carexpert.chat.engine as session_module
    from carexpert.chat import ChatSession
    from carexpert.config import Config

    config = Config()
    config.model.base_model = str(tiny_model_dir)
    config.model.quantization = "none"
    plan = DecodePlan("full", "cpu", static_cache=True, compile=False, reason="test")
    monkeypatch.setattr(session_module, "plan_for", lambda config, base_dir: plan)
    monkeypatch.setattr(session_module, "STATIC_CACHE_TOKENS", 256)
    chat = ChatSession(config, base_only=True).load()
    assert chat.context_window == 256
    assert chat.model.generation_config.max_cache_len == 256

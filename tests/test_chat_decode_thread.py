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

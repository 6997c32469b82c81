"""ChatSession on the tiny model: streaming, cancel, multi-turn template, trimming, history."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from carexpert.chat import ChatSession, Turn, load_transcript
from carexpert.chat.streaming import generation_in_progress
from carexpert.config import Config
from carexpert.errors import UserError
from carexpert.prompt import render_prompt


def tiny_config(model_dir, **chat) -> Config:
    config = Config()
    return dataclasses.replace(config, model=dataclasses.replace(config.model, base_model=str(model_dir)),
                               chat=dataclasses.replace(config.chat, **chat))


@pytest.fixture(scope="module")
def session(tiny_model_dir):
    """One loaded session for the module; each test starts from an empty history."""
    return ChatSession(tiny_config(tiny_model_dir), base_only=True).load()


@pytest.fixture
def chat(session):
    """The shared session, reset, with greedy decoding that never ends early and a slowed forward.

    EOS, the special tokens and whitespace-only tokens are suppressed so every token is
    visible text and an answer only ends when we say so; each forward sleeps 5 ms so
    "before the end" is observable.
    """
    session.reset()
    session.sampling.temperature = 0.0
    session.sampling.max_new_tokens = 40
    session.sampling.repetition_penalty = 1.3
    tok = session.tokenizer
    generation = session.model.generation_config
    saved = generation.suppress_tokens
    blank = [i for i in range(len(tok)) if not tok.decode([i]).strip()]
    generation.suppress_tokens = sorted({tok.eos_token_id, tok.bos_token_id, tok.pad_token_id, *blank})
    calls = {"forward": 0}

    def slow_forward(module, args):
        calls["forward"] += 1
        time.sleep(0.005)

    hook = session.model.get_decoder().register_forward_pre_hook(slow_forward)  # every CPU step runs the decoder stack
    session.forward_calls = calls
    yield session
    hook.remove()
    generation.suppress_tokens = saved


def generation_running() -> bool:
    return generation_in_progress()


def test_stream_yields_several_chunks_before_the_end(chat):
    while_running = 0
    chunks = []
    for chunk in chat.stream("How much horsepower does the Camry make?"):
        chunks.append(chunk)
        while_running += generation_running()
    assert while_running >= 3, "chunks should arrive while the model is still generating"
    assert not generation_running()
    turn = chat.history[-1]
    assert turn.answer == "".join(chunks).strip()
    stats = chat.last_stats
    assert stats.new_tokens == 40 and stats.finish_reason == "max_new_tokens"
    assert stats.time_to_first_token is not None and stats.time_to_first_token <= stats.seconds
    assert stats.tokens_per_second and stats.tokens_per_second > 0


def test_cancel_from_another_thread_stops_within_a_few_tokens_and_keeps_the_partial_answer(chat):
    chat.sampling.max_new_tokens = 500
    chunks, forwards_at_cancel = [], None
    for chunk in chat.stream("Compare the Camry and the Accord."):
        chunks.append(chunk)
        if len(chunks) == 3:
            forwards_at_cancel = chat.forward_calls["forward"]
            canceller = threading.Thread(target=chat.cancel)
            canceller.start()
            canceller.join()
    assert forwards_at_cancel is not None
    assert chat.forward_calls["forward"] - forwards_at_cancel <= 2
    assert chat.last_stats.new_tokens < 20
    turn = chat.history[-1]
    assert turn.stopped and turn.finish_reason == "cancelled"
    assert turn.answer == "".join(chunks).strip() and turn.answer
    assert not generation_running()


def test_abandoning_the_stream_stops_generation_and_records_a_stopped_turn(chat):
    chat.sampling.max_new_tokens = 500
    stream = chat.stream("What is a turbocharger?")
    first = next(stream)
    stream.close()
    assert not generation_running()
    assert chat.history[-1].stopped and chat.history[-1].answer == first.strip()
    assert not chat.answering


def test_multi_turn_prompt_uses_the_shared_template_with_history(chat):
    chat.history = [Turn("What is ADAS?", "Driver assistance."), Turn("Name one.", "Lane keeping assist.")]
    ids, dropped, budget = chat.prepare_prompt("And another?", 40)
    expected = render_prompt("And another?", system=chat.system_prompt,
                             history=[("What is ADAS?", "Driver assistance."), ("Name one.", "Lane keeping assist.")])
    assert dropped == 0 and budget == 40
    assert chat.tokenizer.decode(ids, skip_special_tokens=True) == expected
    assert expected.index("What is ADAS?") < expected.index("Name one.") < expected.index("And another?")


def test_history_is_trimmed_from_the_oldest_turn_to_fit_the_context(chat, monkeypatch):
    chat.history = [Turn(f"Question number {n} about engines?", "An answer about torque and horsepower. " * 4)
                    for n in range(12)]
    monkeypatch.setattr(chat.model.config, "max_position_embeddings", 400)
    ids, dropped, budget = chat.prepare_prompt("Final question?", 100)
    text = chat.tokenizer.decode(ids, skip_special_tokens=True)
    assert dropped > 0 and len(ids) + budget <= 400 and budget == 100
    assert "Question number 0 " not in text and "Question number 11 " in text and "Final question?" in text
    longer = chat.tokenizer(chat.render("Final question?", [(t.question, t.answer) for t in chat.history[dropped - 1:]]))
    assert len(longer["input_ids"]) > 300, "dropping one turn fewer would not have fitted"


def test_a_question_longer_than_the_context_is_a_user_error(chat, monkeypatch):
    monkeypatch.setattr(chat.model.config, "max_position_embeddings", 64)
    with pytest.raises(UserError, match="too long"):
        chat.prepare_prompt("horsepower " * 100, 10)


def test_reset_undo_retry_and_sampling_changes_between_turns(chat):
    chat.sampling.max_new_tokens = 5
    first = chat.ask("What is torque?")
    chat.sampling.max_new_tokens = 8
    chat.ask("And horsepower?")
    assert [t.question for t in chat.history] == ["What is torque?", "And horsepower?"]
    assert chat.history[0].sampling["max_new_tokens"] == 5 and chat.history[1].stats["new_tokens"] == 8
    assert chat.undo().question == "And horsepower?"
    chat.sampling.max_new_tokens = 5
    retried = "".join(chat.retry())
    assert [t.question for t in chat.history] == ["What is torque?"] and retried == first  # greedy: same answer
    chat.reset()
    assert chat.history == [] and chat.undo() is None
    with pytest.raises(UserError):
        chat.retry()
    with pytest.raises(UserError, match="chat.temperature"):
        chat.sampling.set("temperature", "hot")
    chat.sampling.temperature = -1  # assigned directly: caught when the next answer starts
    with pytest.raises(UserError, match="chat.temperature"):
        chat.ask("Why?")
    assert not chat.answering


def test_sampling_settings_reach_generate(chat):
    chat.sampling.set("temperature", "0.8")
    chat.sampling.set("top_k", "0")
    generation = chat._generation_config(chat.sampling, 12)
    assert generation.do_sample and generation.temperature == 0.8 and not generation.top_k
    assert generation.max_new_tokens == 12 and generation.repetition_penalty == 1.3
    chat.sampling.temperature = 0
    assert chat._generation_config(chat.sampling, 12).do_sample is False


def test_transcript_saved_as_jsonl_and_markdown(chat, tmp_path):
    chat.sampling.max_new_tokens = 6
    chat.ask("What is \x1b[31mtorque\x1b[0m?")
    jsonl, markdown = chat.save_transcript(tmp_path / "talk")
    assert jsonl.name == "talk.jsonl" and markdown.name == "talk.md"
    meta, turns = load_transcript(jsonl)
    assert meta["model"].startswith("base model") and len(turns) == 1
    assert turns[0].answer == chat.history[0].answer and turns[0].finish_reason == "max_new_tokens"
    text = markdown.read_text()
    assert "\x1b" not in text and "What is torque?" in text
    assert not list(tmp_path.glob("*.tmp"))


def test_static_cache_plan_gives_the_same_greedy_answers(tiny_model_dir, monkeypatch):
    """The GPU fast path's static KV cache (sized once for every turn), exercised on the CPU without compiling."""
    import carexpert.chat.engine as session_module
    from carexpert.chat.fast import DecodePlan

    answers = []
    for static in (False, True):
        plan = DecodePlan("full", "cpu", static_cache=static, compile=False, reason="test")
        monkeypatch.setattr(session_module, "plan_for", lambda config, base_dir, plan=plan: plan)
        chat = ChatSession(tiny_config(tiny_model_dir, temperature=0.0, max_new_tokens=8), base_only=True).load()
        assert (chat.model.generation_config.cache_implementation == "static") == static
        answers.append([chat.ask("What is torque?"), chat.ask("And horsepower?")])
        assert chat.last_stats.new_tokens == 8
    assert answers[0] == answers[1]

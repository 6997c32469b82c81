"""Retrieval in chat, with a fake retriever on the tiny model: the prompt, sources, the guard, on/off, HTTP."""

from __future__ import annotations

import dataclasses
import io
import json
import threading

import pytest
from rich.console import Console

import carexpert.retrieval as retrieval_module
from carexpert.chat import ChatEngine, ChatSession, chat_prompt
from carexpert.chat.grounding import open_configured_retriever
from carexpert.config import Config
from carexpert.errors import UserError
from carexpert.prompt import render_prompt
from carexpert.retrieval import Hit, Passage, Retrieval, UnknownVehicle

CAMRY = Passage("toyota-camry-2024-le", "vehicle", "2024 Toyota Camry LE",
                "2024 Toyota Camry LE: 203 hp (151 kW), 184 lb-ft (249 N·m).")
COROLLA = Passage("toyota-corolla-2024-le", "vehicle", "2024 Toyota Corolla LE",
                  "2024 Toyota Corolla LE: 169 hp (126 kW).")
TURBO = Passage("concept:turbocharger", "concept", "Turbocharger",
                "Turbocharger: a turbine driven by exhaust gas that compresses intake air.")


class FakeRetriever:
    """Knows the Camry and turbos; a question about a 'Zephyr' names a vehicle the store lacks."""

    def __init__(self):
        self.questions: list[str] = []
        self.threads: list[str] = []

    def retrieve(self, question: str) -> Retrieval:
        self.questions.append(question)
        self.threads.append(threading.current_thread().name)
        if "Zephyr" in question:
            return Retrieval(question, hits=(), unknown=UnknownVehicle("2024 Toyota Zephyr", (CAMRY, COROLLA)))
        return Retrieval(question, hits=(Hit(CAMRY, 9.5, "entity"), Hit(TURBO, 1.5, "text")))


def tiny_config(model_dir, **retrieval) -> Config:
    config = Config()
    return dataclasses.replace(
        config, model=dataclasses.replace(config.model, base_model=str(model_dir), quantization="none"),
        chat=dataclasses.replace(config.chat, temperature=0.0, max_new_tokens=6),
        retrieval=dataclasses.replace(config.retrieval, **retrieval))


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    """One loaded engine for the module, with a fake retriever; forwards are counted."""
    engine = ChatEngine(tiny_config(tiny_model_dir), base_only=True, retriever=FakeRetriever()).load()
    engine.forwards = 0

    def count(module, args):
        engine.forwards += 1

    engine.model.get_decoder().register_forward_pre_hook(count)  # the decoder stack: every CPU step runs it
    return engine


@pytest.fixture
def retriever(engine):
    engine.retriever = FakeRetriever()
    engine.config = tiny_config(engine.config.model.base_model)
    return engine.retriever


def test_one_prompt_function_puts_the_passages_before_the_question(engine, retriever):
    found = retriever.retrieve("How much torque does the 2024 Camry LE make?")
    history = [("What is a turbo?", "A compressor driven by exhaust gas.")]
    text = chat_prompt("And the Camry?", system="Be brief.", history=history, retrieval=found)
    assert text == render_prompt("And the Camry?", system="Be brief.", history=history,
                                 context=[CAMRY.text, TURBO.text])
    assert text.index("### Context:") < text.index(CAMRY.text) < text.index("And the Camry?")
    ids, dropped, _ = engine.prepare_prompt("And the Camry?", 6, history=history, system="Be brief.",
                                            retrieval=found)
    assert engine.tokenizer.decode(ids, skip_special_tokens=True) == text and dropped == 0
    assert chat_prompt("Q?", system=None) == render_prompt("Q?", system=None)  # closed-book: no context section


def test_each_answer_records_its_sources_and_retrieval_runs_on_the_decode_thread(engine, retriever):
    session = ChatSession(engine.config, engine=engine)
    session.ask("How much torque does the 2024 Camry LE make?")
    turn = session.history[-1]
    assert turn.retrieval and turn.finish_reason == "max_new_tokens"
    assert turn.sources == [{"id": CAMRY.id, "kind": "vehicle", "title": CAMRY.title},
                            {"id": TURBO.id, "kind": "concept", "title": TURBO.title}]
    assert session.last_sources == turn.sources
    assert retriever.questions == ["How much torque does the 2024 Camry LE make?"]
    assert all(name.startswith("carexpert-generate") for name in retriever.threads)


def test_the_guard_refuses_without_generating_and_retrieval_can_be_switched_off(engine, retriever):
    session = ChatSession(engine.config, engine=engine)
    before = engine.forwards
    chunks = list(session.stream("What horsepower does the 2024 Toyota Zephyr GT make?"))
    refusal = retrieval_module.guard_refusal("2024 Toyota Zephyr", (CAMRY, COROLLA))
    assert "".join(chunks) == refusal and len(chunks) > 3  # streamed word by word
    assert engine.forwards == before, "the guard answers without running the model"
    turn = session.history[-1]
    assert turn.finish_reason == "guard" and turn.answer == refusal and session.last_stats.prompt_tokens == 0

    session.set_retrieval(False)
    session.ask("What horsepower does the 2024 Toyota Zephyr GT make?")
    assert engine.forwards > before and session.history[-1].finish_reason == "max_new_tokens"
    assert session.history[-1].sources == [] and not session.history[-1].retrieval
    assert len(retriever.questions) == 1, "retrieval off: the store is not asked"


def test_with_the_guard_off_an_unknown_vehicle_is_answered_by_the_model(engine, retriever):
    engine.config = tiny_config(engine.config.model.base_model, guard=False)
    session = ChatSession(engine.config, engine=engine)
    before = engine.forwards
    session.ask("What horsepower does the 2024 Toyota Zephyr GT make?")
    assert engine.forwards > before and session.history[-1].finish_reason == "max_new_tokens"


def test_the_retriever_is_opened_once_lazily_through_open_retriever(tiny_model_dir, engine, monkeypatch):
    opened = []

    def open_retriever(config, count_tokens=None):
        opened.append(count_tokens("203 hp") if count_tokens else None)
        return FakeRetriever()

    monkeypatch.setattr(retrieval_module, "open_retriever", open_retriever, raising=False)
    assert open_configured_retriever(tiny_config(tiny_model_dir, enabled=False)) is None
    assert not opened
    lazy = ChatEngine(tiny_config(tiny_model_dir), base_only=True)
    lazy.model, lazy.tokenizer = engine.model, engine.tokenizer  # loaded: share the module's weights
    assert not opened
    assert lazy.retrieve("Camry torque?").passages == (CAMRY, TURBO)
    lazy.retrieve("Camry torque?")
    assert opened == [len(engine.tokenizer("203 hp", add_special_tokens=False)["input_ids"])]

    def missing_store(config, count_tokens=None):
        raise UserError("no knowledge store yet", fix="run 'carexpert kb build'")

    monkeypatch.setattr(retrieval_module, "open_retriever", missing_store)
    closed_book = ChatEngine(tiny_config(tiny_model_dir), base_only=True)
    closed_book.model, closed_book.tokenizer = engine.model, engine.tokenizer
    assert closed_book.retrieve("Camry torque?") is None
    assert "no knowledge store yet" in closed_book.retrieval_problem


def test_cli_sources_and_retrieval_commands(engine, retriever, tmp_path):
    from carexpert.cli.chat_cmd import print_answer, run_command

    session = ChatSession(engine.config, engine=engine)
    out = io.StringIO()
    console = Console(file=out, width=120, highlight=False)
    run_command(console, session, "/sources", tmp_path)
    print_answer(console, session, session.stream("Camry torque?"))
    run_command(console, session, "/sources", tmp_path)
    run_command(console, session, "/retrieval off", tmp_path)
    print_answer(console, session, session.stream("Camry torque?"))
    run_command(console, session, "/sources", tmp_path)
    with pytest.raises(UserError, match="/retrieval on"):
        run_command(console, session, "/retrieval maybe", tmp_path)
    text = out.getvalue()
    assert "no answer yet" in text and "2 source(s): /sources" in text
    assert "[1] 2024 Toyota Camry LE  (toyota-camry-2024-le, vehicle)" in text and "[2] Turbocharger" in text
    assert "retrieval off" in text and "closed-book (retrieval off)" in text


def test_the_server_returns_sources_and_refuses_through_the_guard(engine, retriever):
    from fastapi.testclient import TestClient

    from carexpert.chat.sampling import SamplingSettings
    from carexpert.serve.answer import answer_job
    from carexpert.serve.app import ServeSettings, build_app
    from carexpert.serve.models import ModelRegistry
    from carexpert.serve.scheduler import Scheduler

    registry = ModelRegistry(engine.config, make_engine=lambda config, run_id: engine)
    scheduler = Scheduler(lambda job: answer_job(registry, job), capacity=4).start()
    settings = ServeSettings(sampling=SamplingSettings(temperature=0.0, max_new_tokens=6), max_tokens=64)
    app = build_app(registry, scheduler, settings)
    question = {"model": "base", "messages": [{"role": "user", "content": "Camry torque?"}], "max_tokens": 4}
    try:
        with TestClient(app, base_url="http://localhost") as http:
            answer = http.post("/v1/chat/completions", json=question).json()
            assert [source["id"] for source in answer["sources"]] == [CAMRY.id, TURBO.id]
            streamed = http.post("/v1/chat/completions", json={**question, "stream": True}).text
            chunks = [json.loads(line[6:]) for line in streamed.splitlines() if line.startswith("data: {")]
            assert chunks[-1]["choices"][0]["finish_reason"] == "length"
            assert [source["id"] for source in chunks[-1]["sources"]] == [CAMRY.id, TURBO.id]
            closed = http.post("/v1/chat/completions", json={**question, "retrieval": False}).json()
            assert closed["sources"] == [] and len(retriever.questions) == 2
            zephyr = {**question, "messages": [{"role": "user", "content": "Zephyr GT horsepower?"}]}
            refused = http.post("/v1/chat/completions", json=zephyr).json()
            assert refused["choices"][0]["message"]["content"].startswith("I have no record of the 2024 Toyota Zephyr")
            assert refused["choices"][0]["finish_reason"] == "stop" and refused["usage"]["prompt_tokens"] == 0
        with TestClient(app, base_url="http://attacker.example") as http:  # DNS rebinding: a foreign Host name
            assert http.post("/v1/chat/completions", json=question).status_code == 403
        with TestClient(app, base_url="http://localhost") as http:
            cross_site = http.post("/v1/chat/completions", json=question, headers={"Origin": "https://evil.example"})
            assert cross_site.status_code == 403 and cross_site.json()["error"]["type"] == "permission_error"
    finally:
        scheduler.close()


def test_chat_on_the_real_store_cites_the_vehicle_and_refuses_a_made_up_one(engine, tmp_path):
    """The wiring end to end: open_retriever builds the store (in tmp), the answer cites the Camry row."""
    config = tiny_config(engine.config.model.base_model)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, data_dir=str(tmp_path)))
    real = ChatEngine(config, base_only=True)
    real.model, real.tokenizer = engine.model, engine.tokenizer  # loaded: share the module's weights
    session = ChatSession(config, engine=real)
    session.ask("2024 camry le horsepower")
    assert session.last_sources[0]["id"] == "toyota-camry-2024-le" and session.retrieval_problem is None
    answer = session.ask("What horsepower does the 2024 Toyota Zephyr GT make?")
    assert session.history[-1].finish_reason == "guard"
    assert answer.startswith("I have no record of the 2024 Toyota Zephyr GT")
    assert (tmp_path / "knowledge.sqlite").is_file()

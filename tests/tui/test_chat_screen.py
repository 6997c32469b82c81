"""Chat mode: the answer streams in, stops mid-way on escape, and the UI stays usable;
history, sampling, transcript and eval-case saving work on a session double."""

from __future__ import annotations

import time

import pytest
from textual.widgets import Input, Markdown, Static

from carexpert_tui.app import CarExpertApp
from carexpert_tui.messages import ModelLoaded, ModelLoadProgressed, ReplyChunkReceived
from carexpert_tui.screens.case_prompt import CasePrompt
from carexpert_tui.services import real_sanitize
from carexpert_tui.widgets.config_field import ConfigField
from carexpert_tui.widgets.prompt_input import PromptInput
from tests.tui.doubles import FakeChatSession, fake_services, wait_until


async def test_answer_streams_and_stops_mid_answer(project):
    session = FakeChatSession(hold_after=5)
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(chat_session=lambda c, r: session),
                       mode="chat")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await pilot.press(*"GR86 power?", "enter")
        assert await wait_until(pilot, lambda: screen.query(".answer") and "Toyota" in
                                screen.query_one(".answer", Markdown).source)
        assert screen.answering
        assert screen.query_one(PromptInput).check_action("stop_answer", ()) is True  # the footer offers Stop
        await pilot.press("escape")
        assert await wait_until(pilot, lambda: not screen.answering)
        answer = screen.query_one(".answer", Markdown).source
        assert answer.startswith("The **Toyota GR86**") and "six-speed" not in answer
        note = screen.query_one(".answer-note", Static)
        assert note.has_class("-stopped") and "stopped" in str(note.render())
        assert session.history[-1].finish_reason == "cancelled"
        # the prompt works again, and up recalls the question
        prompt = screen.query_one(PromptInput)
        prompt.focus()
        await pilot.press("up")
        assert prompt.value == "GR86 power?"


async def test_sampling_transcript_and_eval_case(project):
    session = FakeChatSession()
    cases = []
    services = fake_services(chat_session=lambda c, r: session)
    services.add_eval_case = lambda config, q, ref, cat: cases.append((q, ref, cat)) or "added"
    app = CarExpertApp(project / "carexpert.toml", services=services, mode="chat")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        temperature = screen.query_one("#field-chat-temperature", ConfigField).query_one(Input)
        temperature.value = "9"
        await pilot.pause()
        assert screen.query_one("#field-chat-temperature", ConfigField).has_class("-invalid")
        temperature.value = "0.2"
        screen.query_one(PromptInput).focus()
        await pilot.press(*"Miata weight?", "enter")
        assert await wait_until(pilot, lambda: session.history and not screen.answering)
        assert session.sampling.temperature == 0.2  # the valid value reached the session; 9 never did
        await pilot.press("ctrl+s")
        assert await wait_until(pilot, lambda: list((project / "chats").glob("*.md")) if (project / "chats").exists()
                                else False)
        md = next((project / "chats").glob("*.md")).read_text()
        assert "Miata weight?" in md and "GR86" in md
        await pilot.press("ctrl+g")
        assert await wait_until(pilot, lambda: isinstance(app.screen, CasePrompt))
        await pilot.press("ctrl+s")
        assert await wait_until(pilot, lambda: cases)
        assert cases[0][0] == "Miata weight?" and "GR86" in cases[0][1] and cases[0][2] == "user"
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert not screen.query(".answer") and session.history == []


@pytest.mark.slow
async def test_real_chat_session_on_the_tiny_model_streams_and_stops(project, tiny_model_dir):
    """The real ChatSession (tiny model, CPU), loaded in the app's worker: answer streams, escape stops it."""
    from carexpert.chat import ChatSession

    class PacedTinySession(ChatSession):
        """Never ends on its own (EOS and blank tokens suppressed) and takes 20 ms a token."""

        def load(self, progress=None):
            super().load(progress)
            tok, generation = self.tokenizer, self.model.generation_config
            blank = [i for i in range(len(tok)) if not tok.decode([i]).strip()]
            generation.suppress_tokens = sorted({tok.eos_token_id, tok.bos_token_id, tok.pad_token_id, *blank})
            # on the decoder stack, which every CPU step runs (a screened head skips the outer forward)
            self.model.get_decoder().register_forward_pre_hook(lambda module, args: time.sleep(0.02))
            return self

    config_file = project / "carexpert.toml"
    config_file.write_text(f'[model]\nbase_model = "{tiny_model_dir}"\nquantization = "none"\n\n'
                           '[chat]\ntemperature = 0.0\nmax_new_tokens = 400\n')
    services = fake_services(chat_session=lambda config, run_id: PacedTinySession(config, base_only=True))
    services.sanitize = real_sanitize
    app = CarExpertApp(config_file, services=services, mode="chat")
    messages = []
    async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
        screen = app.screen
        await pilot.press(*"What is a turbo?", "enter")
        assert await wait_until(pilot, lambda: any(isinstance(m, ModelLoaded) for m in messages), timeout=60)
        assert await wait_until(pilot, lambda: sum(isinstance(m, ReplyChunkReceived) for m in messages) >= 3,
                                timeout=30)
        await pilot.press("escape")
        assert await wait_until(pilot, lambda: not screen.answering, timeout=30)
        turn = screen.session.history[-1]
        assert turn.finish_reason == "cancelled" and turn.answer
        assert screen.session.last_stats.new_tokens < 400
        assert any(isinstance(m, ModelLoadProgressed) for m in messages)  # loading showed progress


async def test_sources_under_each_answer_and_retrieval_toggle(project):
    """Each answer shows its sources; ctrl+r switches to closed-book answers and back."""
    session = FakeChatSession(answer="The GR86 makes 228 hp.")
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(chat_session=lambda c, r: session),
                       mode="chat")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        assert str(screen.query_one("#retrieval-state").render()) == "retrieval on"
        await pilot.press(*"GR86 power?", "enter")
        assert await wait_until(pilot, lambda: screen.query(".answer-sources") and not screen.answering)
        assert str(screen.query(".answer-sources").last().render()) == "sources: 2024 Toyota GR86 · Boxer engine"
        await pilot.press("ctrl+r")
        assert not session.retrieval_enabled
        assert str(screen.query_one("#retrieval-state").render()) == "closed-book"
        await pilot.press(*"GR86 power?", "enter")
        assert await wait_until(pilot, lambda: len(screen.query(".answer-sources")) == 2 and not screen.answering)
        assert str(screen.query(".answer-sources").last().render()) == "closed-book (retrieval off)"
        assert session.history[-1].sources == [] and not session.history[-1].retrieval
        await pilot.press("ctrl+r")
        assert session.retrieval_enabled


def test_a_computed_source_is_marked_as_computed():
    from carexpert_tui.screens.chat_notes import sources_note

    sources = [{"id": "ram-1500-2019-tradesman", "kind": "vehicle", "title": "2019 Ram 1500 Tradesman"},
               {"id": "derived:compare:ram-1500-2019-tradesman:honda-ridgeline-2024-sport", "kind": "derived",
                "title": "2019 Ram 1500 Tradesman vs 2024 Honda Ridgeline Sport"}]
    assert sources_note(sources, True, "stop") == \
        "sources: 2019 Ram 1500 Tradesman · 2019 Ram 1500 Tradesman vs 2024 Honda Ridgeline Sport (computed)"


def test_the_sampling_panel_offers_every_setting_a_session_takes():
    from carexpert.chat import SAMPLING_KEYS
    from carexpert_tui.screens import chat_sampling

    assert chat_sampling.SAMPLING_KEYS == SAMPLING_KEYS


async def test_api_server_starts_detached_shows_its_numbers_and_stops(project):
    """ctrl+o starts `carexpert serve` for the chosen model (the fake command here) and ctrl+o stops it."""
    from carexpert.serve.status import read_server_status
    from carexpert_tui.widgets.server_bar import ServerBar

    services = fake_services()
    services.serve_dir = project / "serve"
    app = CarExpertApp(project / "carexpert.toml", services=services, mode="chat")
    async with app.run_test(size=(120, 36)) as pilot:
        bar = app.screen.query_one(ServerBar)
        assert str(bar.render()).startswith("API off")
        await pilot.press("ctrl+o")
        assert await wait_until(pilot, lambda: "requests" in str(bar.render()), timeout=30)
        shown = str(bar.render())
        assert shown.startswith("API ● http://127.0.0.1:8000/v1 · base · ") and "41 tok/s" in shown
        pid = read_server_status(services.serve_dir).pid
        assert pid and bar.live
        await pilot.press("ctrl+o")
        assert await wait_until(pilot, lambda: str(bar.render()).startswith("API off"), timeout=30)
        assert read_server_status(services.serve_dir).state == "stopped"


async def test_an_api_server_that_cannot_start_says_why(project, monkeypatch):
    monkeypatch.setenv("FAKE_SERVE_FAIL", "1")
    services = fake_services()
    services.serve_dir = project / "serve"
    app = CarExpertApp(project / "carexpert.toml", services=services, mode="chat")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("ctrl+o")
        assert await wait_until(pilot, lambda: any("port 8000" in str(n.message) for n in app._notifications),
                                timeout=30)

"""alt+number switches modes from a focused text field, keeps what was typed, and never stops an answer."""

from __future__ import annotations

from textual.widgets import Input, Markdown

from carexpert_tui.app import CarExpertApp
from carexpert_tui.screens.confirm import ConfirmScreen
from carexpert_tui.screens.registry import MODES, mode_bindings
from carexpert_tui.widgets.prompt_input import PromptInput
from tests.tui.doubles import FakeChatSession, fake_services, wait_until
from tests.tui.test_config_screen import field, type_into


def test_every_mode_has_a_number_and_an_alt_number_from_the_one_list():
    keys = {binding.key: binding for binding in mode_bindings()}
    for number, mode in enumerate(MODES, 1):
        assert keys[str(number)].action == keys[f"alt+{number}"].action == f"app.switch_mode('{mode.name}')"
        assert keys[f"alt+{number}"].priority and keys[f"alt+{number}"].show  # works while typing; in the footer
        assert not keys[str(number)].priority  # a digit typed into a field stays a digit
    assert set(CarExpertApp.MODES) == {mode.name for mode in MODES}


async def test_alt_number_leaves_the_chat_input_without_stopping_the_answer(project):
    session = FakeChatSession(hold_after=5)
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(chat_session=lambda c, r: session),
                       mode="chat")
    async with app.run_test(size=(110, 30)) as pilot:
        chat = app.screen
        await pilot.press(*"GR86 power?", "enter")
        assert await wait_until(pilot, lambda: chat.answering and chat.query(".answer"))
        await pilot.press(*"and 0-60")  # typing the next question while the answer streams
        assert isinstance(app.focused, PromptInput)
        await pilot.press("alt+3")
        assert app.current_mode == "train"
        await pilot.press("alt+5")
        assert app.current_mode == "chat" and chat.answering  # still answering: nothing stopped it
        assert chat.query_one(PromptInput).value == "and 0-60"  # the 3 and 5 were not typed, nothing lost
        session.release()
        assert await wait_until(pilot, lambda: not chat.answering)
        assert "six-speed" in chat.query_one(".answer", Markdown).source  # the whole answer
        assert session.history[-1].finish_reason == "eos"


async def test_alt_number_from_a_config_field_and_digits_still_type(project, services):
    app = CarExpertApp(project / "carexpert.toml", services=services, mode="config")
    async with app.run_test(size=(110, 32)) as pilot:
        await type_into(pilot, app, "train.batch_size", "12")
        batch = field(app, "train.batch_size").query_one(Input)
        assert app.focused is batch and batch.value == "12" and app.current_mode == "config"
        await pilot.press("alt+4")
        assert app.current_mode == "eval"
        await pilot.press("alt+2")
        assert app.current_mode == "config"
        assert field(app, "train.batch_size").query_one(Input).value == "12"  # the edit is still there


async def test_alt_number_waits_while_a_dialog_is_open(project, services):
    app = CarExpertApp(project / "carexpert.toml", services=services, mode="system")
    async with app.run_test(size=(110, 30)) as pilot:
        app.push_screen(ConfirmScreen("Really?"))
        await pilot.pause()
        await pilot.press("alt+3")
        assert isinstance(app.screen, ConfirmScreen) and app.current_mode == "system"

"""Train mode when things go wrong: one-key out-of-memory recovery, stalled runs, and runs
another process drives (read-only here, no second trainer)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import tomllib

from textual.widgets import Label

from carexpert.config import load_config, write_frozen_config
from carexpert.runs import RunPaths, read_status
from carexpert_tui.app import CarExpertApp
from carexpert_tui.widgets.run_list import RunList
from tests.tui.doubles import FIXTURE_RUNS, HERE, fake_services, wait_until

OOM_RUN = "run-20261125-160000-ef56"
STOPPED_RUN = "run-20261125-143000-cd34"


def label_text(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Label).render())


def footer_keys(app) -> set[str]:
    return {binding.id for _, binding, enabled, _ in app.active_bindings.values() if enabled and binding.id}


def copy_oom_run(project) -> RunPaths:
    """The failed-OOM fixture run, with the project's own config frozen into it (as the trainer does)."""
    shutil.copytree(HERE / "fixtures" / "oom_runs" / OOM_RUN, project / "runs" / OOM_RUN)
    paths = RunPaths(project / "runs" / OOM_RUN)
    write_frozen_config(paths.config, load_config(project / "carexpert.toml"))
    return paths


async def test_out_of_memory_advice_applies_with_one_key_and_resumes_with_force(project):
    paths = copy_oom_run(project)
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(), mode="train")
    async with app.run_test(size=(100, 32)) as pilot:
        assert await wait_until(pilot, lambda: app.screen.selected == OOM_RUN)
        problem = app.screen.query_one("#run-problem", Label)
        assert await wait_until(pilot, lambda: problem.display and "out of memory" in label_text(app, "#run-problem"))
        assert "batch_size 4 → 2" in label_text(app, "#run-problem")
        assert "apply-advice" in footer_keys(app)
        await pilot.press("a")
        resumed = paths.root / "fake_resume.json"
        assert await wait_until(pilot, resumed.exists, timeout=30)
        record = json.loads(resumed.read_text())
        # a checkpoint exists and batch_size is guarded: the resume must be forced, with the edited file
        assert record["force"] is True
        assert record["config"] == str(project / "carexpert.toml")
        text = (project / "carexpert.toml").read_text()
        assert "# my carexpert config: comments must survive the editor" in text
        train = tomllib.loads(text)["train"]
        assert (train["batch_size"], train["grad_accum"]) == (2, 8)
        assert (project / "carexpert.toml.bak").read_text().count("batch_size = 4") == 1
        assert await wait_until(pilot, lambda: read_status(paths.status).state in ("running", "finished"), timeout=30)
        assert await wait_until(pilot, lambda: "apply-advice" not in footer_keys(app), timeout=30)
        assert any("from its checkpoint at step 20" in str(n.message) and "--force" in str(n.message)
                   for n in app._notifications)


async def test_advice_is_not_applied_when_the_file_differs_from_the_run_in_more(project):
    paths = copy_oom_run(project)
    config = load_config(project / "carexpert.toml")
    config.train.learning_rate = config.train.learning_rate * 2  # a change the user did not pick here
    write_frozen_config(paths.config, config)
    before = (project / "carexpert.toml").read_text()
    app = CarExpertApp(project / "carexpert.toml", services=fake_services(), mode="train")
    async with app.run_test(size=(100, 32)) as pilot:
        assert await wait_until(pilot, lambda: "apply-advice" in footer_keys(app))
        await pilot.press("a")
        assert await wait_until(pilot, lambda: any("train.learning_rate" in str(n.message) for n in app._notifications))
    assert (project / "carexpert.toml").read_text() == before
    assert not (paths.root / "fake_resume.json").exists()


async def test_a_stalled_run_is_flagged_on_the_screen_and_in_the_list(project):
    services = fake_services()
    services.env.update(FAKE_STALL_AFTER="5", FAKE_STEP_DELAY="0.02")
    app = CarExpertApp(project / "carexpert.toml", services=services, mode="train")
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("s")
        warning = app.screen.query_one("#run-warning", Label)
        assert await wait_until(pilot, lambda: warning.display, timeout=30)
        assert await wait_until(pilot, lambda: "stalled: no step for 1m35s" in label_text(app, "#run-warning"))
        run_list = app.screen.query_one(RunList)
        assert await wait_until(pilot, lambda: app.runs and app.runs[0].stalled)
        assert await wait_until(pilot, lambda: "stalled" in str(run_list.get_option_at_index(0).prompt))
        assert any("stalled" in str(n.message) for n in app._notifications)
        run_id = app.runs[0].run_id
        assert await wait_until(pilot, lambda: app.screen.selected == run_id)
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("y")
        status_file = project / "runs" / run_id / "status.json"
        assert await wait_until(pilot, lambda: read_status(status_file).state == "stopped", timeout=30)


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from carexpert.runs.lock import RunLock
    RunLock(sys.argv[1]).acquire()
    print("held", flush=True)
    time.sleep(60)
""")


async def test_a_run_whose_lock_another_process_holds_is_read_only(project):
    shutil.rmtree(project / "runs")
    shutil.copytree(FIXTURE_RUNS, project / "runs")
    paths = RunPaths(project / "runs" / STOPPED_RUN)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(paths.lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        app = CarExpertApp(project / "carexpert.toml", services=fake_services(), mode="train")
        async with app.run_test(size=(100, 32)) as pilot:
            assert await wait_until(pilot, lambda: app.screen.selected == STOPPED_RUN)
            assert await wait_until(pilot, lambda: app.screen.query_one("#run-attached").display)
            assert f"pid {holder.pid}" in label_text(app, "#run-attached")
            assert app.screen.check_action("resume_training", ()) is None  # shown dimmed, off
            await pilot.press("r")
            await pilot.pause(0.5)
            assert not (paths.root / "fake_resume.json").exists()
            app.screen.action_resume_training()  # the palette path: refused with a message, no child
            await pilot.pause(0.3)
            assert any("only watches it" in str(n.message) for n in app._notifications)
            assert not (paths.root / "fake_resume.json").exists()
    finally:
        holder.kill()
        holder.wait()


async def test_a_second_app_sees_the_first_apps_run_live_and_cannot_resume_it(project):
    services = fake_services()
    services.env["FAKE_STEP_DELAY"] = "0.2"
    first = CarExpertApp(project / "carexpert.toml", services=services, mode="train")
    second = CarExpertApp(project / "carexpert.toml", services=fake_services(), mode="train")
    async with first.run_test(size=(100, 32)) as pilot:
        await pilot.press("s")
        assert await wait_until(pilot, lambda: first.runs and first.runs[0].live, timeout=30)
        run_id = first.runs[0].run_id
        async with second.run_test(size=(100, 32)) as viewer:
            assert await wait_until(viewer, lambda: second.screen.selected == run_id)
            assert await wait_until(viewer, lambda: second.screen.query_one("#run-attached").display)
            assert "read-only" in label_text(second, "#run-attached")
            assert second.screen.check_action("resume_training", ()) is None
            second.screen.action_resume_training()
            await viewer.pause(0.3)
            assert any("only watches it" in str(n.message) for n in second._notifications)
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("y")
        status_file = project / "runs" / run_id / "status.json"
        assert await wait_until(pilot, lambda: read_status(status_file).state == "stopped", timeout=30)

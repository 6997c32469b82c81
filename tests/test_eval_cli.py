"""The ``carexpert eval`` command: show saved results, add cases, refuse what is missing."""

from __future__ import annotations

import json

from test_eval_results import ITEM, ITEM_V1, SIDE, sample_summary, v1_summary, write_v1

from carexpert.cli.main import main
from carexpert.config import Config, config_to_toml
from carexpert.evaluation.cases import load_user_cases
from carexpert.evaluation.results import write_results
from carexpert.runs import RunPaths


def config_file(tmp_path):
    config = Config()
    config.train.runs_dir = str(tmp_path / "runs")
    config.data.data_dir = str(tmp_path / "data")
    path = tmp_path / "carexpert.toml"
    path.write_text(config_to_toml(config))
    return path


def test_show_renders_the_newest_result_and_a_named_one(tmp_path, capsys):
    """Results written by version 1 (base and tuned, closed-book) still show."""
    path = config_file(tmp_path)
    run = RunPaths.of(tmp_path / "runs", "r1")
    older = write_v1(run.eval, {**v1_summary(), "n_items": 7}, [ITEM_V1], name="20261125-100000")
    write_v1(run.eval, {**v1_summary(), "n_items": 9}, [ITEM_V1], name="20261126-100000")
    assert main(["eval", "show", "r1", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "accuracy, base→tuned" in out and "specs" in out and "overall" in out
    assert "0.50→0.50" in out and "100%→100%" in out and "2.50 → 1.50" in out  # score, numbers, val loss
    assert "20261126-100000" in out.replace("\n", "")
    assert main(["eval", "show", "r1", older.name, "--items", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "20261125-100000" in out.replace("\n", "") and "wrong 0.00" in out and "correct 1.00" in out


def test_show_without_base(tmp_path, capsys):
    path = config_file(tmp_path)
    run = RunPaths.of(tmp_path / "runs", "r1")
    summary = sample_summary()
    summary["overall"]["base_closed"] = None
    summary["categories"]["specs"]["base_closed"] = None
    summary["sides"] = ["tuned_closed"]
    summary["val_loss"]["base"] = summary["perplexity"]["base"] = None
    write_results(run.eval, summary, [{**ITEM, "base_closed": None, "base_closed_answer": None}])
    assert main(["eval", "show", "r1", "--items", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "no base comparison" in out and "→" not in out


def test_missing_run_results_or_adapter_exit_2(tmp_path, capsys):
    path = config_file(tmp_path)
    assert main(["eval", "show", "nope", "--config", str(path)]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
    RunPaths.of(tmp_path / "runs", "r2").root.mkdir(parents=True)
    assert main(["eval", "show", "r2", "--config", str(path)]) == 2
    assert "has no evaluation results" in capsys.readouterr().err
    assert main(["eval", "r2", "--config", str(path)]) == 2
    assert "has no trained adapter yet" in capsys.readouterr().err
    assert main(["eval", "../etc", "--config", str(path)]) == 2
    assert main(["eval", "show", "--config", str(path)]) == 2


def test_add_case_saves_a_case_later_evaluations_load(tmp_path, capsys):
    path = config_file(tmp_path)
    assert main(["eval", "add-case", "--question", "How much torque does the Camry make?",
                 "--reference", "184 lb-ft", "--category", "specs", "--config", str(path)]) == 0
    assert "added eval case" in capsys.readouterr().out
    assert main(["eval", "add-case", "-q", "Best first car?", "--key-terms", "reliability", "insurance|insure",
                 "--config", str(path)]) == 0
    cases = load_user_cases(tmp_path / "data" / "eval_cases.jsonl")
    assert [(c.category, c.reference_text, c.key_terms) for c in cases] == [
        ("specs", "184 lb-ft", []), ("user", "", ["reliability", "insurance|insure"])]
    assert main(["eval", "add-case", "--config", str(path)]) == 2
    assert "needs --question" in capsys.readouterr().err


def test_eval_run_end_to_end_on_the_tiny_model(tiny_model_dir, tmp_path, capsys):
    """`carexpert eval RUN --limit 2` with the builtin data and the knowledge store: held-out items, showcase, a
    user case, on the four sides (retrieval is on by default), then closed-book only with --sides."""
    import json

    from eval_fixtures import make_adapter_run

    from carexpert.config import load_config, write_frozen_config
    from carexpert.evaluation import load_results
    from carexpert.runs.artifacts import eval_results

    path = config_file(tmp_path)
    run, config = make_adapter_run(tiny_model_dir, tmp_path / "runs", run_id="r-e2e")
    config.data.data_dir = str(tmp_path / "data")
    config.data.num_examples = 200
    # the tiny tokenizer's 512-word vocabulary spends a token on every few characters: a validation record
    # with three retrieved passages runs past 1024 tokens and would be dropped from the loss
    config.data.max_length = 4096
    write_frozen_config(run.config, config)
    current = load_config(path)
    current.eval.max_new_tokens = 6
    path.write_text(config_to_toml(current))
    assert main(["eval", "add-case", "-q", "Is the Camry reliable?", "--key-terms", "reliability",
                 "--config", str(path)]) == 0
    assert main(["eval", "r-e2e", "--limit", "2", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "results saved in" in out and "overall" in out and "tuned+rag" in out
    grounded = load_results(eval_results(run)[0])
    assert grounded.summary["sides"] == ["base_closed", "base_rag", "tuned_closed", "tuned_rag"]
    camry = next(i for i in grounded.items if "2024 Toyota Camry LE" in i["question"])  # a showcase question
    assert camry["retrieved"][0]["id"] == "toyota-camry-2024-le" and camry["retrieved"][0]["how"] == "entity"
    assert all(item["tuned_rag"] is not None and "used" in item["tuned_rag"] for item in grounded.items)
    assert main(["eval", "r-e2e", "--limit", "2", "--sides", "tuned_closed,base_closed", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    result = load_results(eval_results(run)[0])
    sources = result.summary["sources"]
    assert sources["test"] == 2 and sources["showcase"] >= 10 and sources["user"] == 1
    assert result.summary["dataset_fingerprint"] and result.summary["val_loss"]["tuned"] is not None
    assert result.summary["config"]["eval"]["max_new_tokens"] == 6  # [eval] from the current config
    assert result.summary["config"]["model"]["base_model"] == str(tiny_model_dir)  # model as trained
    assert result.summary["sides"] == ["base_closed", "tuned_closed"]
    assert all(len(item["tuned_closed"]["verdict"]) and item["tuned_rag"] is None for item in result.items)
    assert json.loads((result.path / "summary.json").read_text())["n_items"] == len(result.items)


def test_show_four_sides(tmp_path, capsys):
    path = config_file(tmp_path)
    run = RunPaths.of(tmp_path / "runs", "r1")
    summary = sample_summary()
    rag = {**SIDE, "score": 0.9, "hallucination_rate": 0.05, "guard_refusal_rate": 0.1}
    summary["sides"] = ["base_closed", "base_rag", "tuned_closed", "tuned_rag"]
    summary["overall"].update(base_rag=rag, tuned_rag={**rag, "score": 0.95})
    summary["categories"]["specs"].update(base_rag=rag, tuned_rag={**rag, "score": 0.95})
    guarded = {"verdict": "correct", "score": 1.0, "guard": True}
    write_results(run.eval, summary, [{**ITEM, "base_rag": guarded, "tuned_rag": guarded,
                                       "base_rag_answer": "I have no record", "tuned_rag_answer": "I have no record"}])
    assert main(["eval", "show", "r1", "--items", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "score by side" in out and "tuned+rag" in out and "base+rag" in out
    assert "0.90→0.95" in out  # base + retrieval → tuned + retrieval, the headline pair
    assert "accuracy, base→tuned (with retrieval)" in out
    assert "grounding and refusals" in out and "5%" in out and "10%" in out
    assert "guard 1.00" in out


def test_bad_sides_exit_2(tmp_path, capsys):
    path = config_file(tmp_path)
    RunPaths.of(tmp_path / "runs", "r2").root.mkdir(parents=True)
    assert main(["eval", "r2", "--sides", "tuned_rag,nonsense", "--config", str(path)]) == 2
    assert "unknown evaluation side(s) nonsense" in capsys.readouterr().err


def test_rescore_writes_a_new_result_scored_with_the_current_metrics(tmp_path, capsys):
    """A version 1 result is rescored into a version 2 one."""
    path = config_file(tmp_path)
    run = RunPaths.of(tmp_path / "runs", "r1")
    stale = {**ITEM_V1, "tuned": {"verdict": "wrong", "score": 0.0, "stop_reason": "eos", "length_tokens": 5}}
    old = write_v1(run.eval, v1_summary(), [stale], name="20261125-100000")
    assert main(["eval", "rescore", "r1", "--config", str(path)]) == 0
    assert f"rescored {old.name}" in capsys.readouterr().out.replace("\n", "")
    from carexpert.evaluation import load_results
    from carexpert.runs.artifacts import eval_results

    new = load_results(eval_results(run)[0])
    assert new.summary["rescored_from"] == old.name
    assert new.summary["version"] == 2 and json.loads((new.path / "summary.json").read_text())["version"] == 2
    assert new.items[0]["tuned_closed"]["verdict"] == "correct"  # "203 hp" answers "Camry hp?" (expected hp 203)
    assert new.items[0]["base_closed"]["verdict"] == "wrong"
    assert main(["eval", "rescore", "r1", "nope", "--config", str(path)]) == 2

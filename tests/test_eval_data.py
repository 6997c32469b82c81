"""What an evaluation asks: limited held-out cases spread over categories, showcase, user cases."""

from __future__ import annotations

from carexpert.evaluation.cases import EvalCase
from carexpert.evaluation.data import eval_cases, spread_limit


def record(i, category, holdout="question"):
    return {"id": f"{category}-{i}", "instruction": f"Question {i} about {category}?", "input": "",
            "output": "An answer.", "category": category, "holdout": holdout}


TEST = [record(i, "specs", "fact") for i in range(5)] + [record(i, "engines") for i in range(3)] \
    + [record(i, "evs") for i in range(1)] + [dict(record(9, "engines", "showcase"), id="show-9")]


def test_limit_is_spread_over_categories_in_order():
    held = [r for r in TEST if r["holdout"] != "showcase"]
    assert [r["id"] for r in spread_limit(held, 5)] == ["specs-0", "engines-0", "evs-0", "specs-1", "engines-1"]
    assert spread_limit(held, 0) == held and spread_limit(held, 100) == held


def test_showcase_always_runs_and_user_cases_follow():
    user = [EvalCase(id="u1", category="user", question="My own question?", source="user", holdout="user")]
    cases = eval_cases(TEST, limit=2, user_cases=user)
    assert [(c.id, c.source, c.holdout) for c in cases] == [
        ("specs-0", "test", "fact"), ("engines-0", "test", "question"), ("show-9", "showcase", "showcase"),
        ("u1", "user", "user")]
    assert [c.source for c in eval_cases(TEST, include_showcase=False)].count("showcase") == 0


def test_showcase_from_outside_the_split_for_user_datasets():
    extra = [{"id": "show-1", "instruction": "Turbo or supercharger?", "category": "engines", "holdout": "showcase",
              "key_terms": ["exhaust gas"]}]
    plain = [r for r in TEST if r["holdout"] != "showcase"]
    cases = eval_cases(plain, limit=1, extra_showcase=extra)
    assert [(c.id, c.source) for c in cases] == [("specs-0", "test"), ("show-1", "showcase")]


def test_a_question_asked_twice_is_asked_once():
    duplicate = dict(record(0, "specs"), id="other", instruction="question 0 about SPECS?")
    cases = eval_cases([record(0, "specs"), duplicate])
    assert [c.id for c in cases] == ["specs-0"]


def test_the_default_answer_budget_covers_the_longest_builtin_reference(embedded_model_dir, tmp_path):
    """eval.max_new_tokens is longer than every reference answer of the default test set (plus EOS),
    in the embedded model's tokens, with a margin for an answer a little longer than its reference:
    a right answer cut at the limit would count as not stopping cleanly."""
    from tokenizers import Tokenizer  # the fast tokenizer alone: AutoTokenizer would take seconds more

    from carexpert.config import Config
    from carexpert.evaluation.data import load_eval_data

    config = Config()
    config.data.data_dir = str(tmp_path)  # no user cases
    config.retrieval.enabled = False  # the test split is the same; grounding the training split is not needed
    tokenizer = Tokenizer.from_file(str(embedded_model_dir / "tokenizer.json"))
    cases = load_eval_data(config).cases
    longest = max(len(tokenizer.encode(c.reference_text, add_special_tokens=False).ids) for c in cases)
    assert len(cases) > 300 and longest > 200  # the comparisons are long: the old 200 cut them
    assert config.eval.max_new_tokens >= 1.2 * (longest + 1)

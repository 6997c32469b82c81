"""Evaluation: held-out questions answered on up to four sides (base / tuned, closed-book / with
retrieval), scored with car-aware metrics.

- ``sides``: the four sides, which run by default, and ``--sides`` parsing
- ``units``: numbers with units in text, and conversions (hp/kW, lb-ft/N·m, mpg/L per 100 km, ...)
- ``concepts`` / ``metrics``: scoring one answer; aggregating per category
- ``figures``: hallucinated figures (stated for a made-up model, contradicting the store, or not published)
- ``retrieve`` / ``attribution``: one retrieval per question, the guard, and the passages an answer used
- ``generate``: batched, left-padded, length-sorted, greedy generation with the shared prompt
- ``loss``: validation loss and perplexity on answer tokens
- ``cases``: what is evaluated (held-out records, showcase questions, user-added cases)
- ``runner``: the whole evaluation of a run; ``results``: the files it writes and how to read them

Heavy libraries (torch, transformers, peft) are imported inside the functions that need them.
"""

from carexpert.evaluation.cases import EvalCase, add_user_case, cases_file, load_user_cases
from carexpert.evaluation.data import EvalData
from carexpert.evaluation.generate import EvaluationCancelled, Generation, generate_answers
from carexpert.evaluation.metrics import aggregate, score_answer
from carexpert.evaluation.results import EvalResults, find_result, load_results, write_results
from carexpert.evaluation.runner import EvalOutcome, evaluate_model, evaluate_run

__all__ = [
    "EvalCase", "EvalData", "EvalOutcome", "EvalResults", "EvaluationCancelled", "Generation", "add_user_case",
    "aggregate", "cases_file", "evaluate_model", "evaluate_run", "find_result", "generate_answers",
    "load_results", "load_user_cases", "score_answer", "write_results",
]

"""Q&A data for carexpert: the generated automotive set, user datasets, splits, tokenization.

Knowledge tables (``carexpert.knowledge``) become Alpaca records through a seeded
generator; records are split so the test set asks questions (and about facts) training
never saw; user files are validated line by line; tokenization puts the loss on the
answer only. Heavy libraries (``datasets``, ``transformers``) are imported only inside
the functions that need them.
"""

from carexpert.dataset.fingerprint import dataset_fingerprint
from carexpert.dataset.generator import (
    DEFAULT_MIX,
    DEFAULT_NUM_EXAMPLES,
    generate_examples,
)
from carexpert.dataset.pipeline import (
    BUILTIN,
    BuiltData,
    PreparedData,
    build_builtin,
    build_data,
    build_from_config,
    build_from_file,
    evaluation_records_from_config,
    fingerprint_from_config,
    prepare_training,
    training_data_from_config,
    write_data,
    write_from_config,
)
from carexpert.dataset.records import normalize_question
from carexpert.dataset.showcase import showcase_cases
from carexpert.dataset.splits import (
    build_splits,
    leakage,
    read_splits,
    split_summary,
    write_splits,
)
from carexpert.dataset.stats import category_mix, length_stats, token_length_stats
from carexpert.dataset.tokenization import (
    encode_example,
    prompt_for,
    tokenize_example,
    tokenize_records,
)
from carexpert.dataset.user_load import (
    LoadReport,
    check_user_dataset,
    load_user_dataset,
    load_user_records,
)

__all__ = [
    "BUILTIN", "DEFAULT_MIX", "DEFAULT_NUM_EXAMPLES", "BuiltData", "LoadReport", "PreparedData", "build_builtin",
    "build_data", "build_from_config", "build_from_file", "build_splits", "category_mix", "check_user_dataset",
    "dataset_fingerprint", "encode_example", "evaluation_records_from_config", "fingerprint_from_config",
    "generate_examples", "leakage", "length_stats", "load_user_dataset", "load_user_records", "normalize_question", "prepare_training",
    "prompt_for", "read_splits", "showcase_cases", "split_summary", "token_length_stats", "tokenize_example",
    "tokenize_records", "training_data_from_config", "write_data", "write_from_config", "write_splits",
]

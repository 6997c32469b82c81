"""Typed, validated TOML configuration (see ``schema`` for every setting)."""

from carexpert.config.io import (
    config_to_toml,
    default_config_path,
    diff_from_defaults,
    load_config,
    load_or_default,
    parse_config_text,
    parse_value,
    save_user_text,
    update_user_file,
    write_frozen_config,
)
from carexpert.config.schema import (
    SECTION_DOCS,
    SECTIONS,
    ChatConfig,
    RetrievalConfig,
    Config,
    DataConfig,
    EvalConfig,
    FieldSpec,
    LoraConfig,
    ModelConfig,
    TrainConfig,
    UiConfig,
    field_spec,
    field_specs,
)
from carexpert.config.validate import ConfigError, Problem, build_config

__all__ = [
    "SECTION_DOCS", "SECTIONS", "ChatConfig", "Config", "ConfigError", "DataConfig", "EvalConfig", "RetrievalConfig",
    "FieldSpec", "LoraConfig", "ModelConfig", "Problem", "TrainConfig", "UiConfig", "build_config",
    "config_to_toml", "default_config_path", "diff_from_defaults", "field_spec", "field_specs",
    "load_config", "load_or_default", "parse_config_text", "parse_value", "save_user_text",
    "update_user_file", "write_frozen_config",
]

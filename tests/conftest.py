"""Shared fixtures: a tiny model folder built once per test session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_model import build_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny Llama-shaped model + BPE tokenizer saved as safetensors (built once per session)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))

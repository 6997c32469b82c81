"""Shared fixtures: a tiny model folder built once per test session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_model import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny Llama-shaped model + BPE tokenizer saved as safetensors (built once per session)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    """The embedded Gemma 3 270M converted to safetensors, in the default user cache
    ($CAREXPERT_CACHE or ~/.cache/carexpert): converted from scratch on the first run
    (about a minute), reused by every later session."""
    from carexpert.modeling import ensure_embedded_model

    return ensure_embedded_model(progress=lambda message: print(f"[embedded model] {message}"))

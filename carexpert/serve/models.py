"""Which models a request may name, and the loaded engines behind them.

A request's ``model`` is an id from ``GET /v1/models``: ``base`` (the configured base
model, no adapter) or the id of a finished run (its adapter, loaded with the run's own
``[model]`` and ``[lora]`` sections, as the chat does). Ids are compared with that list and
never turned into a path, so no request can make the server open a file it names.

Engines load on first use and at most ``max_loaded`` stay loaded (least recently used goes
first). Loading happens on the scheduler's one worker thread, between answers, so no
engine is dropped while it is answering.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from carexpert.chat.engine import ChatEngine
from carexpert.chat.source import adapter_runs, run_adapter
from carexpert.config import Config
from carexpert.errors import UserError

BASE_ID = "base"


class UnknownModel(UserError):
    """A request named a model that is not served here."""


class ModelRegistry:
    def __init__(self, config: Config, *, max_loaded: int = 1, progress: Callable[[str], None] | None = None,
                 make_engine: Callable[[Any, str | None], ChatEngine] | None = None):
        self.config = config
        self.max_loaded = max(1, max_loaded)
        self.progress = progress
        self._make_engine = make_engine or self._default_engine
        self._loaded: OrderedDict[str, ChatEngine] = OrderedDict()
        self._lock = threading.Lock()

    def ids(self) -> list[str]:
        """``base`` then every finished run's id, newest first."""
        return [BASE_ID] + [run.run_id for run in adapter_runs(self.config) if run.run_id != BASE_ID]

    def check(self, model_id: Any) -> str:
        """``model_id`` if it is served here; UnknownModel otherwise."""
        if isinstance(model_id, str) and (model_id in self._loaded or model_id in self.ids()):
            return model_id
        raise UnknownModel(f"the model {str(model_id)[:80]!r} does not exist",
                           fix="use an id from GET /v1/models ('base' or a finished run's id)")

    def loaded_ids(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    def _default_engine(self, config: Config, run_id: str | None) -> ChatEngine:
        if run_id is None:
            return ChatEngine(config, base_only=True)
        found = run_adapter(config, run_id)
        return ChatEngine(found.config, adapter_dir=found.adapter_dir)

    def engine(self, model_id: str) -> ChatEngine:
        """The loaded engine for ``model_id``, loading it (and unloading the least recently used) if needed."""
        with self._lock:
            if model_id in self._loaded:
                self._loaded.move_to_end(model_id)
                return self._loaded[model_id]
        self.check(model_id)
        with self._lock:
            while len(self._loaded) >= self.max_loaded:
                self._loaded.popitem(last=False)
        _release_memory()
        engine = self._make_engine(self.config, None if model_id == BASE_ID else model_id)
        engine.load(self.progress)
        with self._lock:
            self._loaded[model_id] = engine
        return engine


def _release_memory() -> None:
    """Give the memory of an unloaded engine back (GPU memory to the driver too)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()

"""Sampling settings of a chat, changeable between turns.

Starts from the ``[chat]`` section of the config; the limits are the schema's, so a
value the config file would reject is rejected here too, with the same wording.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from carexpert.config.schema import ChatConfig, field_spec
from carexpert.config.validate import coerce
from carexpert.errors import UserError

SAMPLING_KEYS = ("temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens")


@dataclass
class SamplingSettings:
    """How the next answer is sampled. ``temperature == 0`` means greedy decoding."""

    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50
    repetition_penalty: float = 1.1
    max_new_tokens: int = 512

    @classmethod
    def from_config(cls, chat: ChatConfig) -> SamplingSettings:
        return cls(**{key: getattr(chat, key) for key in SAMPLING_KEYS})

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def set(self, key: str, value: Any) -> None:
        """Change one setting from a value or its text (``"0.2"``); UserError names the key and the range."""
        if key not in SAMPLING_KEYS:
            raise UserError(f"unknown sampling setting {key!r}", fix="use one of " + ", ".join(SAMPLING_KEYS))
        spec = field_spec(f"chat.{key}")
        if isinstance(value, str):
            try:
                value = spec.type(value.strip())
            except ValueError:
                raise UserError(f"chat.{key}: expected {spec.allowed()}, got {value!r}") from None
        coerced, problem = coerce(spec, value)
        if problem:
            raise UserError(f"chat.{key}: {problem}")
        setattr(self, key, coerced)

    def validate(self) -> SamplingSettings:
        """Check every value against the schema (the settings are plain attributes anyone may assign)."""
        for key in SAMPLING_KEYS:
            self.set(key, getattr(self, key))
        return self

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def generation_overrides(self) -> dict[str, Any]:
        """Keyword arguments for a ``GenerationConfig``: sampling knobs only when sampling."""
        overrides: dict[str, Any] = {"max_new_tokens": self.max_new_tokens,
                                     "repetition_penalty": self.repetition_penalty}
        if self.greedy:
            overrides.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            overrides.update(do_sample=True, temperature=self.temperature, top_p=self.top_p,
                             top_k=self.top_k)  # 0 = no limit (None would take the model's default)
        return overrides

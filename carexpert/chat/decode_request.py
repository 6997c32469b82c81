"""One answer's decoding settings for the own decode loop, read from a transformers ``GenerationConfig``,
and which settings send an answer to ``generate`` instead (the loop does not implement them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carexpert.chat.decode_step import SamplingParams

# generate settings this loop does not implement; any other value sends the answer to generate
_NEUTRAL = {"num_beams": (None, 1), "num_return_sequences": (None, 1), "no_repeat_ngram_size": (None, 0),
            "bad_words_ids": (None,), "begin_suppress_tokens": (None,),
            "forced_bos_token_id": (None,), "forced_eos_token_id": (None,), "sequence_bias": (None,),
            "min_length": (None, 0), "min_new_tokens": (None, 0), "typical_p": (None, 1.0), "min_p": (None, 0.0),
            "epsilon_cutoff": (None, 0.0), "eta_cutoff": (None, 0.0), "encoder_repetition_penalty": (None, 1.0),
            "guidance_scale": (None, 1.0), "watermarking_config": (None,), "exponential_decay_length_penalty": (None,),
            "stop_strings": (None,), "max_time": (None,), "assistant_model": (None,), "prompt_lookup_num_tokens": (None,),
            "top_h": (None,)}


@dataclass(frozen=True)
class DecodeRequest:
    """One answer's decoding settings, read from a transformers ``GenerationConfig``."""

    params: SamplingParams
    max_new_tokens: int
    eos_token_ids: frozenset[int]
    suppress_tokens: frozenset[int] = frozenset()


def request_from_generation_config(generation: Any) -> DecodeRequest | None:
    """The request ``generation`` describes, or None when it asks for something only ``generate`` does."""
    if generation is None or not generation.max_new_tokens:
        return None
    for name, neutral in _NEUTRAL.items():
        if getattr(generation, name, None) not in neutral:
            return None
    eos = generation.eos_token_id
    eos_ids = frozenset([] if eos is None else [eos] if isinstance(eos, int) else [int(e) for e in eos])
    penalty = generation.repetition_penalty or 1.0
    if generation.do_sample:
        params = SamplingParams(False, temperature=generation.temperature or 1.0,
                                top_p=1.0 if generation.top_p is None else generation.top_p,
                                top_k=generation.top_k or 0, repetition_penalty=penalty)
    else:
        params = SamplingParams(True, repetition_penalty=penalty)
    suppressed = frozenset(int(t) for t in (getattr(generation, "suppress_tokens", None) or []))
    return DecodeRequest(params, int(generation.max_new_tokens), eos_ids, suppressed)

"""Chat: a multi-turn session that streams tokens and can be cancelled.

Importing this package is cheap (no torch); ``ChatSession.load`` does the heavy work.
"""

from carexpert.chat.fast import DecodePlan, choose_decode_plan
from carexpert.chat.sampling import SAMPLING_KEYS, SamplingSettings
from carexpert.chat.sanitize import sanitize_output
from carexpert.chat.session import ChatSession, TurnStats
from carexpert.chat.transcript import Turn, load_transcript, save_transcript

__all__ = [
    "SAMPLING_KEYS", "ChatSession", "DecodePlan", "SamplingSettings", "Turn", "TurnStats", "choose_decode_plan",
    "load_transcript", "sanitize_output", "save_transcript",
]

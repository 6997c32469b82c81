"""Chat: a stateless engine that streams answers, and a conversation on top of it.

``ChatEngine`` holds the loaded model and answers one question (with any history and
retrieved passages) at a time; ``ChatSession`` keeps a conversation over an engine. The
CLI chat, the app and the HTTP server (``carexpert.serve``) all answer through the engine.
Importing this package is cheap (no torch); ``load()`` does the heavy work.
"""

from carexpert.chat.engine import ChatEngine, Reply, TurnStats
from carexpert.chat.fast import DecodePlan, choose_decode_plan
from carexpert.chat.grounding import chat_prompt, sources_of
from carexpert.chat.sampling import SAMPLING_KEYS, SamplingSettings
from carexpert.chat.sanitize import sanitize_output
from carexpert.chat.session import ChatSession
from carexpert.chat.transcript import Turn, load_transcript, save_transcript

__all__ = [
    "SAMPLING_KEYS", "ChatEngine", "ChatSession", "DecodePlan", "Reply", "SamplingSettings", "Turn", "TurnStats",
    "chat_prompt", "choose_decode_plan", "load_transcript", "sanitize_output", "save_transcript", "sources_of",
]

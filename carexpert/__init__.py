"""carexpert: turn an open LLM into a cars & automotive expert with QLoRA.

The headless core. Everything the terminal app does is importable from here, and
nothing in this package imports Textual: heavy libraries (torch, transformers,
peft, bitsandbytes, datasets) are imported inside the functions that need them so
``import carexpert`` stays fast.
"""

__version__ = "0.1.0"

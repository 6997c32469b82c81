"""Make text from disk or from a model safe to show: the one sanitizer.

Anything carexpert did not write itself in this process — a run's ``status.json``, its
event log, an eval category, a config key a user typed, a model's answer — may hold
terminal control sequences (ESC sequences that move the cursor, retitle the window,
write to the clipboard with OSC 52 or hide text) or, once it reaches Rich or Textual,
markup such as ``[/]`` that breaks rendering or restyles what follows. Every such
string passes through this module on its way to a terminal:

- ``strip_controls``: the text without control sequences (newlines and tabs kept);
  also safe on a sequence split across streamed chunks, so model output uses it;
- ``one_line``: the same, folded onto one line and shortened, for table cells and
  messages (a newline in a "state" field must not forge another row);
- ``escape_markup``: square brackets escaped the way Rich and Textual read them;
- ``safe_markup``: ``escape_markup(one_line(text))`` — what goes inside a markup string.

The rule for controls is simple: every ESC, every other C0 control except newline and
tab, DEL and every C1 control (U+0080..U+009F, which some terminals treat like ESC
sequences) is removed. Whole well-formed sequences (CSI, OSC, DCS/APC/PM/SOS strings,
two-byte escapes) go together with their parameters so no stray ``[31m`` is left.
"""

from __future__ import annotations

import re
from typing import Any

# Whole escape sequences first, so their parameters go too.
_SEQUENCES = re.compile(
    r"""
    (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]                      # CSI ... final byte
  | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])               # OSC / DCS / SOS / PM / APC opener
        [^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)              #   ... up to BEL or ST
  | \x1b[ -/]*[0-~]                                       # other ESC sequences (charset, keypad, ...)
    """,
    re.VERBOSE,
)
# Then any control character left over (a lone ESC, an unterminated sequence's opener, ...).
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Unicode line and paragraph separators and bidi overrides can also disguise text on screen.
_INVISIBLE = re.compile(r"[\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# The tag pattern Rich and Textual both use (rich.markup.escape, textual.markup.escape).
_TAG = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")

ONE_LINE_LIMIT = 200


def strip_controls(text: str) -> str:
    """``text`` without terminal control sequences; newlines and tabs are kept.

    Carriage returns become newlines when they end a line (``\\r\\n``) and are dropped
    otherwise, so output can never overwrite what is already on the screen.
    """
    if not text:
        return text
    text = text.replace("\r\n", "\n")
    text = _SEQUENCES.sub("", text)
    text = _CONTROLS.sub("", text)
    return _INVISIBLE.sub("", text)


def one_line(value: Any, limit: int = ONE_LINE_LIMIT) -> str:
    """``value`` as text on one line, controls removed, at most ``limit`` characters (then "…")."""
    text = strip_controls("" if value is None else str(value))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape_markup(text: str) -> str:
    """Escape ``text`` so Rich and Textual markup show it as written (same rule as theirs)."""
    text = _TAG.sub(lambda m: f"{m.group(1)}{m.group(1)}\\{m.group(2)}", text)
    if text.endswith("\\") and not text.endswith("\\\\"):
        text += "\\"
    return text


def safe_markup(value: Any, limit: int = ONE_LINE_LIMIT) -> str:
    """One line of untrusted text, ready to put inside a Rich or Textual markup string."""
    return escape_markup(one_line(value, limit))


def safe_block(value: Any) -> str:
    """Several lines of untrusted text (an error with its details) for a markup string."""
    return escape_markup(strip_controls("" if value is None else str(value)))

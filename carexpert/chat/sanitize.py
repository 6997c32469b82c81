"""Make model output safe to print in a terminal.

A language model can emit any character, including ESC sequences that move the
cursor, retitle the window, write to the clipboard (OSC 52) or hide text. Printing
that raw over SSH is a risk, so everything a model says passes through
``sanitize_output`` before the CLI, the TUI or a transcript shows it.

The rule is simple and holds even for a sequence split across two streamed chunks:
every ESC, every other C0 control except newline and tab, DEL and every C1 control
(U+0080..U+009F, which some terminals treat like ESC sequences) is removed. Whole
well-formed sequences (CSI, OSC, DCS/APC/PM/SOS strings, two-byte escapes) are
removed together with their parameters so no stray ``[31m`` is left behind.
"""

from __future__ import annotations

import re

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


def sanitize_output(text: str) -> str:
    """``text`` without terminal control sequences; newlines and tabs are kept.

    Carriage returns become newlines when they end a line (``\\r\\n``) and are dropped
    otherwise, so output can never overwrite what is already on the screen.
    """
    if not text:
        return text
    text = text.replace("\r\n", "\n")
    text = _SEQUENCES.sub("", text)
    return _CONTROLS.sub("", text)

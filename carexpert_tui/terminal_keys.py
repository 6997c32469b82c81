"""Make alt+1…alt+9 reach the app from classic terminals, so mode keys work while typing.

Measured in tmux (xterm-256color) with Textual 8.2: ctrl+digit sends nothing a terminal
can tell apart from the digit, and alt+digit arrives as ESC followed by the digit, which
Textual's sequence table turns into the characters macOS's Option key types ("¡", "™",
"£", "¢", "∞", ...) for WezTerm's sake. Those are keys a user types ("£" is shift+3 on a
UK keyboard), so they cannot be bound. Without those table entries the parser reports
ESC + digit as ``alt+<digit>`` (its generic meta handling), which a priority binding can
take. Terminals with the kitty keyboard protocol send alt+digit directly; nothing changes
for them. The table is private to Textual: if it moves, alt+digit keeps working on
kitty-protocol terminals and the number keys outside text fields everywhere.
"""

from __future__ import annotations

DIGITS = "123456789"


def deliver_alt_digits() -> bool:
    """Drop ESC+digit from Textual's sequence table; True when the table was found."""
    try:
        from textual._ansi_sequences import ANSI_SEQUENCES_KEYS
    except ImportError:
        return False
    for digit in DIGITS:
        ANSI_SEQUENCES_KEYS.pop(f"\x1b{digit}", None)
    return True

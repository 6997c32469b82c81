"""Desktop notifications that travel through SSH: terminal escape sequences.

A remote box cannot reach the user's desktop, but their terminal can: most terminal
emulators turn OSC 9 (iTerm2, Windows Terminal, WezTerm, kitty, foot, Ghostty) or
OSC 777 (rxvt-unicode, VTE/GNOME Terminal, Konsole) into a desktop notification,
and the bell (BEL) into a sound or an urgent window. Inside tmux the sequence must
be wrapped in a DCS passthrough to reach the outer terminal.

Only text we control goes into a sequence: control characters and the separator
``;`` are removed from the title and body first, so a run id can never inject escape
codes into the user's terminal.
"""

from __future__ import annotations

import os
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
NOTIFY_STATES = {"finished": "finished", "failed": "failed", "stalled": "stalled", "stopped": "stopped"}


def _clean(text: str, limit: int = 200) -> str:
    return _CONTROL.sub(" ", text).replace(";", ",")[:limit]


def osc9(body: str) -> str:
    """OSC 9 notification: ESC ] 9 ; body BEL."""
    return f"\x1b]9;{_clean(body)}\x07"


def osc777(title: str, body: str) -> str:
    """OSC 777 notification: ESC ] 777 ; notify ; title ; body BEL."""
    return f"\x1b]777;notify;{_clean(title, 80)};{_clean(body)}\x07"


def tmux_passthrough(sequence: str) -> str:
    """Wrap ``sequence`` so tmux forwards it to the outer terminal (ESCs doubled)."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def notification_sequence(title: str, body: str, *, desktop: bool, bell: bool, in_tmux: bool | None = None) -> str:
    """The bytes to write to the terminal for one notification (empty when both are off)."""
    if in_tmux is None:
        in_tmux = bool(os.environ.get("TMUX"))
    out = ""
    if desktop:
        for sequence in (osc777(title, body), osc9(f"{title}: {body}")):
            out += tmux_passthrough(sequence) if in_tmux else sequence
    if bell:
        out += "\x07"
    return out


def run_event_message(run_id: str, state: str, detail: str = "") -> tuple[str, str] | None:
    """(title, body) for a run event worth notifying, or None."""
    if state not in NOTIFY_STATES:
        return None
    body = f"run {run_id} {NOTIFY_STATES[state]}"
    if detail:
        body += f": {detail}"
    return "carexpert", body

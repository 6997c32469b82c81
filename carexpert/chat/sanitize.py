"""Model output made safe for a terminal: ``sanitize_output`` is ``carexpert.textsafe.strip_controls``.

The sanitizer has one owner, ``carexpert.textsafe``, used for every string from disk or a
model that reaches a terminal; this name stays for the chat code that imports it.
"""

from __future__ import annotations

from carexpert.textsafe import strip_controls as sanitize_output

__all__ = ["sanitize_output"]

"""The one error type users see.

A ``UserError`` is bad input or a bad environment that the user can fix: a malformed
TOML, a missing dataset, an out-of-memory run. It carries the thing at fault (a file,
key or record) and the fix. The CLI prints it without a traceback and exits 2;
anything else that escapes is a bug.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; printed as ``where: message`` plus a fix line."""

    exit_code = 2

    def __init__(self, message: str, *, where: str = "", fix: str = "", details: list[str] | None = None):
        self.message = message
        self.where = where
        self.fix = fix
        self.details = list(details or [])
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.where}: {self.message}" if self.where else self.message
        lines = [head, *(f"  - {d}" for d in self.details)]
        if self.fix:
            lines.append(f"fix: {self.fix}")
        return "\n".join(lines)

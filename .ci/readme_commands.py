"""The README's own install-and-test command, split into the commands CI runs.

CI must run what a newcomer copies from the README, not a retyped copy that can drift.
The README's "Install and run the tests" block holds one line of ``&&``-joined commands:
the set-up ones (``pip install ...``) and, last, the test command (``pytest``). This
script finds that line in the README's fenced code blocks and prints its commands one a
line, so ``.ci/run`` can run each as written. When the README no longer has such a line
it exits with status 2 and says what it looked for, so CI fails with a reason instead of
silently testing something else.

Usage: python3 .ci/readme_commands.py [README.md]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
TEST_EXTRA = '".[test]"'  # the install of the test extra marks the test command's line


class ReadmeError(Exception):
    """The README has no usable install-and-test command line."""


def fenced_lines(text: str) -> list[str]:
    """Every non-empty, non-comment line inside the text's fenced code blocks."""
    lines = []
    for block in FENCE.findall(text):
        lines += [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]
    return lines


def test_commands(text: str) -> list[str]:
    """The README's test line split on ``&&``: the set-up commands, then the test command last.

    The line is the one fenced line that installs the test extra; its last command must run
    pytest and every earlier one must be a ``pip install``.
    """
    candidates = [line for line in fenced_lines(text) if TEST_EXTRA in line]
    if len(candidates) != 1:
        found = "none" if not candidates else f"{len(candidates)}: " + " | ".join(candidates)
        raise ReadmeError(f"expected exactly one fenced command line that installs {TEST_EXTRA} "
                          f"(the install-and-test command), found {found}")
    commands = [part.strip() for part in candidates[0].split("&&")]
    *setup, test = commands
    if not setup or not all(command.startswith("pip install ") for command in setup):
        raise ReadmeError(f"the set-up commands before the test command should be 'pip install ...': {candidates[0]}")
    if not test.split()[0] == "pytest":
        raise ReadmeError(f"the last command of the test line should run pytest, not {test!r}")
    return commands


def main(argv: list[str]) -> int:
    readme = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parent.parent / "README.md")
    try:
        commands = test_commands(readme.read_text(encoding="utf-8"))
    except (OSError, ReadmeError) as error:
        print(f"{readme}: {error}", file=sys.stderr)
        print("fix: keep the README's 'Install and run the tests' block as one line, "
              'e.g. pip install torch==2.13.0 && pip install -e ".[test]" && pytest', file=sys.stderr)
        return 2
    print("\n".join(commands))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

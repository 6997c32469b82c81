"""``carexpert-tui`` entry point."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from carexpert_tui.app import CarExpertApp

    app = CarExpertApp()
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

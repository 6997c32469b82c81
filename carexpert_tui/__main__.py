"""``carexpert-tui`` entry point.

    carexpert-tui                      # uses ./carexpert.toml (or $CAREXPERT_CONFIG), defaults if absent
    carexpert-tui --config my.toml     # another config file
    carexpert-tui --mode train         # open on a mode: system, config, train, eval, chat
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

EXIT_GRACE_S = 2.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="carexpert-tui", description="The carexpert terminal app.")
    parser.add_argument("--config", "-c", metavar="FILE", help="config file (default: $CAREXPERT_CONFIG or ./carexpert.toml)")
    parser.add_argument("--mode", choices=["system", "config", "train", "eval", "chat"], default=None,
                        help="the mode to open on (default: system)")
    return parser.parse_args(argv)


def exit_now(code: int) -> None:
    """Exit without waiting for a worker thread still inside a long call (a model load).

    Training and evaluations run in their own processes and every file is written
    atomically, so nothing is lost; Python would otherwise join those threads at exit and
    the terminal would seem to hang after quitting.
    """
    deadline = time.monotonic() + EXIT_GRACE_S
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from carexpert_tui.app import CarExpertApp

    app = CarExpertApp(args.config, mode=args.mode)
    app.run()
    exit_now(app.return_code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``carexpert-tui`` entry point.

    carexpert-tui                      # uses ./carexpert.toml (or $CAREXPERT_CONFIG), defaults if absent
    carexpert-tui --config my.toml     # another config file
    carexpert-tui --mode train         # open on a mode: system, config, train, eval, chat
    carexpert-tui --serve --port 8000  # the same app in a browser tab: open the URL it prints (with its token)

Every browser tab runs its own app process; runs live in their own processes and files,
so a tab, a terminal and a re-opened app all watch the same runs. Browser mode checks
Host, Origin and a per-start token on every request (``carexpert_tui.serve``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import threading
import time

EXIT_GRACE_S = 2.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from carexpert_tui.screens.registry import MODE_SCREENS  # the one list of modes

    parser = argparse.ArgumentParser(prog="carexpert-tui", description="The carexpert terminal app.")
    parser.add_argument("--config", "-c", metavar="FILE", help="config file (default: $CAREXPERT_CONFIG or ./carexpert.toml)")
    parser.add_argument("--mode", choices=list(MODE_SCREENS), default=None,
                        help="the mode to open on (default: system)")
    parser.add_argument("--serve", action="store_true", help="serve the app to a web browser instead")
    parser.add_argument("--host", default="localhost",
                        help="address to serve on (default: localhost; another address exposes the app to the network)")
    parser.add_argument("--port", type=int, default=8000, help="port to serve on (default: 8000)")
    parser.add_argument("--no-token", action="store_true",
                        help="serve without the per-start token (localhost only; any local program could then "
                             "drive the app)")
    return parser.parse_args(argv)


def serve_command(args: argparse.Namespace) -> str:
    """The command each browser tab runs: this app with the same config and mode, in a terminal."""
    argv = [sys.executable, "-m", "carexpert_tui"]
    if args.config:
        argv += ["--config", os.path.abspath(args.config)]
    if args.mode:
        argv += ["--mode", args.mode]
    return shlex.join(argv)


def serve(args: argparse.Namespace) -> int:
    from carexpert_tui.serve import Guard, make_server, refusal

    guard = Guard(args.host, args.port, **({"token": None} if args.no_token else {}))
    problem = refusal(guard)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    make_server(serve_command(args), guard).serve()
    return 0


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
    if args.serve:
        return serve(args)
    from carexpert_tui.app import CarExpertApp

    app = CarExpertApp(args.config, mode=args.mode, freeze_gc=True)
    app.run()
    exit_now(app.return_code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())

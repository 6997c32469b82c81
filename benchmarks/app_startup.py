"""Time from starting ``carexpert-tui`` to its first frame, in a real pseudo-terminal.

The brief's bar is a first frame within a second. This starts the installed entry point (or
``python -m carexpert_tui``) in a pty of 80x24, exactly as a shell over SSH would, and times
from just before the process is spawned to the moment the terminal has received a frame that
shows ``--marker`` (the System screen's "carexpert check" box; escape sequences are stripped
before looking). The app is then sent ``ctrl+q``, and killed if it does not exit. Rounds run
back to back; the first round may pay for cold file caches and writing bytecode, so it is
reported apart from the rest.

    python benchmarks/app_startup.py --rounds 8 --out benchmarks/results/cpu-app-startup/startup.json

The project folder is a temporary one holding the shipped ``carexpert.toml`` (``--project``
picks another). Prints one line per round and a summary; writes the JSON.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ESCAPES = re.compile(rb"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|.)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--marker", default="carexpert check", help="text the first frame shows")
    parser.add_argument("--project", help="folder to start in (default: a temporary one with the shipped config)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for the marker")
    parser.add_argument("--out", help="JSON file to write")
    return parser.parse_args(argv)


def command() -> list[str]:
    installed = shutil.which("carexpert-tui")
    return [installed] if installed else [sys.executable, "-m", "carexpert_tui"]


def visible_text(raw: bytes) -> str:
    """What the terminal shows of ``raw``, roughly: escape sequences removed, the rest decoded."""
    return ESCAPES.sub(b"", raw).decode("utf-8", errors="replace")


def one_round(argv: list[str], cwd: Path, marker: str, timeout: float) -> float | None:
    """Seconds from spawn to the marker on screen (None on timeout)."""
    started = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the app in the pty
        os.chdir(cwd)
        os.environ.update(TERM="xterm-256color", COLUMNS="80", LINES="24")
        os.execvp(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    received = b""
    seen: float | None = None
    try:
        while time.perf_counter() - started < timeout:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            received += chunk
            if marker in visible_text(received):
                seen = time.perf_counter() - started
                break
    finally:
        stop(pid, fd)
    return seen


def stop(pid: int, fd: int) -> None:
    """ctrl+q, then SIGTERM and SIGKILL if the app lingers; the pty drained so it can exit."""
    try:
        os.write(fd, b"\x11")
    except OSError:
        pass
    deadline = time.monotonic() + 5
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                if select.select([fd], [], [], 0.05)[0]:
                    os.read(fd, 65536)
            except OSError:
                pass
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                os.close(fd)
                return
    os.close(fd)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    argv_app = command()
    with tempfile.TemporaryDirectory(prefix="carexpert-startup-") as scratch:
        project = Path(args.project) if args.project else Path(scratch)
        if not args.project:
            shutil.copy(ROOT / "carexpert.toml", project / "carexpert.toml")
        rounds = []
        for index in range(args.rounds):
            load = os.getloadavg()[0]
            seconds = one_round(argv_app, project, args.marker, args.timeout)
            rounds.append({"round": index + 1, "seconds": None if seconds is None else round(seconds, 3),
                           "load_1min": round(load, 2)})
            shown = "timed out" if seconds is None else f"{seconds * 1000:.0f} ms"
            print(f"round {index + 1}: first frame with {args.marker!r} after {shown} (load {load:.1f})", flush=True)
    warm = [r["seconds"] for r in rounds[1:] if r["seconds"] is not None]
    summary = {"command": " ".join(argv_app), "marker": args.marker, "terminal": "80x24 pty, TERM=xterm-256color",
               "first_round_s": rounds[0]["seconds"] if rounds else None,
               "later_rounds_median_s": round(statistics.median(warm), 3) if warm else None,
               "later_rounds_max_s": max(warm) if warm else None,
               "timed_out": sum(r["seconds"] is None for r in rounds), "cpu_count": os.cpu_count(),
               "python": sys.version.split()[0], "rounds": rounds}
    print(f"first round {summary['first_round_s']} s; later rounds median {summary['later_rounds_median_s']} s, "
          f"max {summary['later_rounds_max_s']} s; {summary['timed_out']} timed out")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return 0 if not summary["timed_out"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

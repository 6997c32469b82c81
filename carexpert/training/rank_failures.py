"""What each rank of a several-GPU run died of, so the run's status names the root cause.

When one rank fails, the others usually fail *because of it* a moment later (a peer
closed the connection, a collective timed out). Each failing rank writes one small
record, ``ranks/rank-<K>.json``, before it exits: its error, step and the time. The
root cause is the earliest record; the run's message leads with it and names the
ranks that followed or never reported (hung, or killed from outside).

Written by the ranks (``carexpert.training.entry``, ``worker``) and read by rank 0 and
by the supervisor (``carexpert.training.supervisor``), which clears the folder at each
launch so a resumed run does not inherit the last attempt's failures.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from carexpert.fsutil import atomic_write_json
from carexpert.runs.paths import RunPaths

# How gloo ("Timed out waiting 4000ms") and NCCL ("... before timing out") word a collective timeout.
TIMEOUT = re.compile(r"tim(ed|ing) ?out|timeout", re.IGNORECASE)


def ranks_dir(run: RunPaths) -> Path:
    return run.ranks


@dataclass
class RankFailure:
    rank: int
    world_size: int
    error: str
    step: int = 0
    time: float = field(default_factory=time.time)
    pid: int | None = None
    advice: list[dict[str, Any]] = field(default_factory=list)


def record_failure(run: RunPaths, failure: RankFailure) -> Path:
    """Write this rank's record (atomically: a reader never sees half of it)."""
    folder = ranks_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(folder / f"rank-{failure.rank}.json", asdict(failure))


def read_failures(run: RunPaths) -> list[RankFailure]:
    """Every rank's record, earliest first (unreadable files are skipped: they are being written)."""
    folder = ranks_dir(run)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob("rank-*.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            known = {k: v for k, v in data.items() if k in RankFailure.__dataclass_fields__}
            found.append(RankFailure(**known))
        except (OSError, ValueError, TypeError, AttributeError):
            continue
    return sorted(found, key=lambda f: (f.time, f.rank))


def clear(run: RunPaths) -> None:
    shutil.rmtree(ranks_dir(run), ignore_errors=True)


def describe(failures: list[RankFailure], world_size: int, *, ended: dict[int, str] | None = None) -> str:
    """One message for the run: the root cause first, then what the other ranks did.

    ``failures``: the records, earliest first. ``ended``: how ranks without a record
    ended, as the launcher saw it (``{1: "was killed by SIGKILL"}``).
    """
    ended = ended or {}
    reported = [f.rank for f in failures]
    silent = [rank for rank in range(world_size) if rank not in reported]
    if not failures:
        head = f"none of the {world_size} ranks recorded an error"
        tail = ["the end of train.log has each rank's exit"]
    elif not silent and len({f.error for f in failures}) == 1:
        return f"all {world_size} ranks failed at step {failures[0].step}: {failures[0].error}"
    elif silent and all(TIMEOUT.search(f.error) for f in failures):
        first = failures[0]
        who = f"rank{'s' * (len(silent) > 1)} {', '.join(map(str, silent))}"
        head = (f"{who} of {world_size} stopped answering (hung) after step "
                f"{first.step}: the collective of rank {first.rank} timed out — {first.error}")
        tail = [f"rank {f.rank} timed out too" for f in failures[1:]]
    else:
        first = failures[0]
        head = f"rank {first.rank} of {world_size} failed at step {first.step}: {first.error}"
        tail = [f"rank {f.rank} then failed too ({_short(f.error)})" for f in failures[1:]]
    for rank in silent:
        tail.insert(len(tail) - (0 if failures else 1), f"rank {rank} " + ended.get(
            rank, "gave no error (hung, or ended by the launcher once another rank had failed)"))
    return "; ".join([head, *tail])


def _short(error: str, limit: int = 120) -> str:
    line = error.splitlines()[0] if error else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"

"""Runs: a run is a folder and a process (see ``paths`` for the folder contract)."""

from carexpert.runs.events import SCHEMA_VERSION, EventFollower, EventWriter, make_event, read_events
from carexpert.runs.paths import RunPaths, list_run_paths, new_run_id, validate_run_id
from carexpert.runs.status import LIVE_STATES, STATES, RunStatus, effective_state, pid_alive, read_status, write_status

__all__ = [
    "LIVE_STATES", "SCHEMA_VERSION", "STATES", "EventFollower", "EventWriter", "RunPaths", "RunStatus",
    "effective_state", "list_run_paths", "make_event", "new_run_id", "pid_alive", "read_events",
    "read_status", "validate_run_id", "write_status",
]

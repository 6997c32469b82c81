"""QLoRA training runs: ``run(config, run_paths)`` trains in this process.

A run normally lives in its own process (``carexpert train``, or
``carexpert.runs.launch.start_training_process``); ``run`` is what that process
calls, and what a notebook can call directly. Heavy libraries are imported only
when a run starts.
"""

from carexpert.training.entry import RunOutcome, run

__all__ = ["RunOutcome", "run"]

"""Chart history stays bounded however long a run is, and keeps the curve's ends."""

import itertools

from carexpert_tui.child_commands import CommandResult, progress_fraction, run_id_from_output
from carexpert_tui.series import DecimatedSeries


def test_a_million_points_stay_under_the_bound_and_keep_first_and_newest():
    series = DecimatedSeries(max_points=500)
    for step in range(1, 1_000_001):
        series.append(step, 1.0 / step)
    xs, ys = series.points()
    assert len(series) < 500 and len(xs) <= 501
    assert xs[0] == 1 and xs[-1] == 1_000_000 and ys[-1] == 1e-6
    assert xs == sorted(xs)
    gaps = {b - a for a, b in itertools.pairwise(xs[:-1])}
    assert len(gaps) == 1  # evenly thinned: one stride across the whole run


def test_run_id_and_progress_are_read_from_command_output():
    output = ("started run run-20261125-101500-ab12 in runs/run-20261125-101500-ab12\n"
              "run-20261125-101500-ab12\nwatch: carexpert runs watch run-20261125-101500-ab12\n")
    assert run_id_from_output(CommandResult(0, output)) == "run-20261125-101500-ab12"
    assert run_id_from_output(CommandResult(2, "error: config file not found\n")) is None
    assert progress_fraction("tuned answers 37/148 0:00:12") == 0.25
    assert progress_fraction("loading model 31%") == 0.31
    assert progress_fraction("loading model") is None

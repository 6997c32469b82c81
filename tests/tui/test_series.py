"""Chart history stays bounded however long a run is, and keeps the curve's ends."""

import itertools
import random

from carexpert_tui.child_commands import CommandResult, progress_fraction, run_id_from_output
from carexpert_tui.series import DecimatedSeries, envelope


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


def test_the_drawn_envelope_keeps_every_columns_first_lowest_highest_and_last_point():
    rng = random.Random(7)
    xs = [float(step) for step in range(1, 1001)]
    ys = [2.0 / (1 + step / 300) + rng.gauss(0, 0.05) + (3.0 if step == 517 else 0.0) for step in range(1, 1001)]
    columns = 116  # a 60-cell chart in braille
    kept_x, kept_y = envelope(xs, ys, columns)
    assert len(kept_x) <= 4 * columns < len(xs)
    assert set(kept_x) <= set(xs) and kept_x == sorted(kept_x)  # real points, in order
    assert kept_x[0] == 1.0 and kept_x[-1] == 1000.0
    assert max(kept_y) > 3.0  # the one spike is drawn

    def by_column(px, py):
        columns_seen: dict[int, list[tuple[float, float]]] = {}
        for x, y in zip(px, py, strict=True):
            columns_seen.setdefault(min(columns - 1, int((x - 1) / 999 * columns)), []).append((x, y))
        return columns_seen

    everything, drawn = by_column(xs, ys), by_column(kept_x, kept_y)
    assert everything.keys() == drawn.keys()
    for column, points in everything.items():
        kept = drawn[column]
        assert kept[0] == points[0] and kept[-1] == points[-1]
        assert min(y for _, y in kept) == min(y for _, y in points)
        assert max(y for _, y in kept) == max(y for _, y in points)
    assert envelope(xs[:400], ys[:400], columns) == (xs[:400], ys[:400])  # fits already: unchanged
    assert envelope(xs, ys, 0) == (xs, ys)  # not laid out yet


def test_run_id_and_progress_are_read_from_command_output():
    output = ("started run run-20261125-101500-ab12 in runs/run-20261125-101500-ab12\n"
              "run-20261125-101500-ab12\nwatch: carexpert runs watch run-20261125-101500-ab12\n")
    assert run_id_from_output(CommandResult(0, output)) == "run-20261125-101500-ab12"
    assert run_id_from_output(CommandResult(2, "error: config file not found\n")) is None
    assert progress_fraction("tuned answers 37/148 0:00:12") == 0.25
    assert progress_fraction("loading model 31%") == 0.31
    assert progress_fraction("loading model") is None

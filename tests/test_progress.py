"""One progress aggregator: counted parts across threads, weighted phases on one scale."""

from __future__ import annotations

import threading

import pytest

from geoseg.progress import Parts


def test_counted_parts_sum_tiles_across_threads() -> None:
    calls: list[tuple[int, int, str]] = []
    parts = Parts(lambda d, t, p="": calls.append((d, t, p)), [10, 20, 5])

    def run(k: int, n: int) -> None:
        cb = parts.part(k)
        for i in range(1, n + 1):
            cb(i, n, f"map {k}")

    threads = [threading.Thread(target=run, args=(k, n)) for k, n in enumerate((10, 20, 5))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 35 and all(t == 35 for _, t, _ in calls)  # the total is right from the first tile on
    assert [d for d, _, _ in calls] == list(range(1, 36)) and calls[-1][0] == 35
    Parts(None, [3]).part(0)(1, 3)  # no callback: nothing to do


def test_weighted_parts_are_phases_on_one_scale() -> None:
    calls: list[tuple[int, int, str]] = []
    parts = Parts(lambda d, t, p="": calls.append((d, t, p)), weights=[2, 1, 1])
    parts.part(0, "blocks")(5, 10)
    parts.part(0, "blocks")(10, 10)
    # phase 1 had nothing to do and never reported: phase 2 starts at 75 %
    parts.part(2, "regrowth polygons")(1, 2, "12 polygons")
    parts.part(2, "done")(1, 1)
    assert calls == [(25, 100, "blocks"), (50, 100, "blocks"), (88, 100, "12 polygons"), (100, 100, "done")]
    with pytest.raises(ValueError, match="either totals"):
        Parts(None)

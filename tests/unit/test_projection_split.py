"""How `hub project --workers N` splits the views: each view in exactly one worker, by cost."""

from __future__ import annotations

from projections.runner import VIEW_NAMES
from projections.workers import VIEW_COSTS, partition


def test_every_view_goes_to_exactly_one_worker() -> None:
    for workers in range(1, 8):
        groups = partition(VIEW_NAMES, workers)
        assert len(groups) == min(workers, len(VIEW_NAMES))
        assert sorted(name for group in groups for name in group) == sorted(VIEW_NAMES)


def test_two_workers_share_the_cost_about_evenly() -> None:
    loads = [sum(VIEW_COSTS[name] for name in group) for group in partition(VIEW_NAMES, 2)]
    assert max(loads) - min(loads) <= min(VIEW_COSTS.values()) + 0.05


def test_a_subset_is_split_only_over_its_own_views() -> None:
    assert partition(["timeline", "analytics"], 3) == [["timeline"], ["analytics"]]

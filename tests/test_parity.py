"""The parity check's rule for overflowed Space-Saving lists (stream/parity.py): near-ties at
the head's edge may fall either way, a clear difference in the head may not."""

from __future__ import annotations

import math

from stream.parity import _overflowed_head_differs

WEAKEST = math.log(1.0)  # the table's weakest entry: 1.0 in linear space


def _list(*linear: tuple[str, float]) -> list[list[object]]:
    return [[item, math.log(score)] for item, score in linear]


def test_a_near_tie_at_the_edge_of_the_head_may_fall_either_way() -> None:
    a = _list(("x", 50.0), ("y", 40.0), ("p", 10.5), ("q", 10.0))
    b = _list(("x", 50.0), ("y", 40.0), ("q", 10.4), ("p", 10.0))
    assert not _overflowed_head_differs(a, b, 3, WEAKEST)


def test_an_entry_clearly_in_the_head_must_be_in_both() -> None:
    a = _list(("x", 50.0), ("y", 40.0), ("p", 30.0), ("q", 10.0))
    b = _list(("x", 50.0), ("y", 40.0), ("q", 31.0), ("p", 29.0))
    assert not _overflowed_head_differs(a, b, 2, WEAKEST)   # the head of 2 agrees
    assert _overflowed_head_differs(a, b, 3, WEAKEST)       # p beats q by 20 in a: not a tie
    assert _overflowed_head_differs(b, a, 3, WEAKEST)


def test_the_margin_grows_with_the_tables_weakest_score() -> None:
    a = _list(("x", 50.0), ("p", 30.0), ("q", 10.0))
    b = _list(("x", 50.0), ("q", 31.0), ("p", 29.0))
    assert _overflowed_head_differs(a, b, 2, math.log(1.0))
    assert not _overflowed_head_differs(a, b, 2, math.log(15.0))  # 2 x 15 covers 30 - 10


def test_short_lists_compare_whole() -> None:
    a = _list(("x", 5.0), ("y", 4.0))
    assert not _overflowed_head_differs(a, a, 5, WEAKEST)
    assert _overflowed_head_differs(a, _list(("x", 5.0), ("z", 4.0)), 5, WEAKEST)

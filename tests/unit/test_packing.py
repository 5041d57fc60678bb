"""The packed per-document columns: what goes in comes back, in a fixed small size."""

from __future__ import annotations

import math

import pytest

from lensbatch.store.packing import (
    pack_bits,
    pack_floats,
    pack_positions,
    unpack_bits,
    unpack_floats,
    unpack_heads,
    unpack_positions,
)


def test_head_scores_round_trip_as_float32_with_nulls() -> None:
    grid: list[list[float | None]] = [[0.5, None, 1e-3], [math.nan, math.inf, 0.123456789]]
    data = pack_floats(grid)
    assert len(data) == 4 * 6  # float32, layer-major
    values = unpack_floats(data)
    assert values[0] == 0.5 and values[1] is None
    assert values[3] is None and values[4] is None  # NaN and inf are stored as null
    assert values[2] == pytest.approx(1e-3, rel=1e-7)  # float32 precision
    assert values[5] == pytest.approx(0.123456789, rel=1e-7)
    heads = list(unpack_heads(3, [data, pack_floats([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])]))
    assert [(layer, head) for layer, head, _ in heads] == [(0, 0), (0, 1), (0, 2), (1, 0),
                                                           (1, 1), (1, 2)]
    assert heads[4][2] == [None, 5.0]


def test_hits_round_trip_in_four_bytes_and_a_bit_each() -> None:
    positions = [1, 7, 8, 1023, 70_000]
    novel = [True, False, False, True, True]
    assert unpack_positions(pack_positions(positions)) == positions
    assert len(pack_positions(positions)) == 20 and len(pack_bits(novel)) == 1
    assert unpack_bits(pack_bits(novel), len(novel)) == novel
    many = [i % 3 == 0 for i in range(17)]
    assert len(pack_bits(many)) == 3 and unpack_bits(pack_bits(many), 17) == many

"""One neuron's top activations as a row of packed arrays, and back.

`top_values` little-endian float32, `seqs` int32 (the job's document numbers), `positions`
int32, best first; `histogram` the lensbatch.top.BINS counts as uint16 when every
count fits, else uint32, else uint64 (the width follows from the length: BINS * 2, 4
or 8 bytes). Plain functions on numpy arrays and bytes: no SQL.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lensbatch.top import BINS

WIDTHS: dict[int, np.dtype[Any]] = {2: np.dtype("<u2"), 4: np.dtype("<u4"),
                                    8: np.dtype("<u8")}


def pack_histogram(counts: np.ndarray) -> bytes:
    """[BINS] non-negative counts in the narrowest width that holds them."""
    top = int(counts.max()) if counts.size else 0
    width = 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8
    return np.asarray(counts).astype(WIDTHS[width]).tobytes()


def unpack_histogram(data: bytes) -> np.ndarray:  # [BINS] int64
    if not data:
        return np.zeros(BINS, dtype=np.int64)
    return np.frombuffer(data, dtype=WIDTHS[len(data) // BINS]).astype(np.int64)


def pack_entries(values: np.ndarray, seqs: np.ndarray, positions: np.ndarray
                 ) -> dict[str, bytes]:
    """One neuron's [k] entries as the row's three binary columns."""
    return {"top_values": np.asarray(values, dtype="<f4").tobytes(),
            "seqs": np.asarray(seqs, dtype="<i4").tobytes(),
            "positions": np.asarray(positions, dtype="<i4").tobytes()}


def unpack_entries(row: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values float32, seqs int64, positions int32) of a row with those columns."""
    return (np.frombuffer(row.top_values, dtype="<f4").astype(np.float32),
            np.frombuffer(row.seqs, dtype="<i4").astype(np.int64),
            np.frombuffer(row.positions, dtype="<i4").astype(np.int32))


def packed_size(k: int, histogram: np.ndarray) -> int:
    """Bytes of one neuron's packed columns: k entries of 4 + 4 + 4, the histogram."""
    return k * 12 + len(pack_histogram(histogram))

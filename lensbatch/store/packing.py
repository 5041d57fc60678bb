"""Compact per-document rows: arrays packed into one binary column each.

Per-document head scores (a job's option, `--head-scores document`) are one row per
document with one column per HeadScore of the registry, each a little-endian float32
array over (layer, head), layer-major: value [l, h] at index l * n_heads + h. NaN
stands for a null (a score the document has no position for); a non-finite score is
stored as null, as before.

Induction hits are one row per document with hits: `positions` a little-endian int32
array (document positions, BOS included, ascending) and `novel` one bit per hit
(bit i of byte i // 8, least significant first). The token text is not stored: it is
the job's tokenizer's token at that position, which the report recovers by
re-tokenizing the document.

Plain functions on bytes: no SQL, no torch.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Sequence

NAN = float("nan")


def pack_floats(grid: Sequence[Sequence[float | None]]) -> bytes:
    """[layer][head] values (None or non-finite: null) -> float32 bytes, layer-major."""
    flat = [NAN if v is None or not math.isfinite(v) else v for row in grid for v in row]
    return struct.pack(f"<{len(flat)}f", *flat)


def unpack_floats(data: bytes) -> list[float | None]:
    """float32 bytes -> values in stored order, NaN back to None."""
    values = struct.unpack(f"<{len(data) // 4}f", data)
    return [None if math.isnan(v) else v for v in values]


def unpack_heads(n_heads: int, packed: Sequence[bytes]
                 ) -> Iterator[tuple[int, int, list[float | None]]]:
    """(layer, head, one value per packed score) for every head of one document."""
    columns = [unpack_floats(data) for data in packed]
    for index in range(len(columns[0]) if columns else 0):
        yield index // n_heads, index % n_heads, [column[index] for column in columns]


def pack_positions(positions: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(positions)}i", *positions)


def unpack_positions(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 4}i", data))


def pack_bits(flags: Sequence[bool]) -> bytes:
    """One bit per flag, least significant bit first."""
    out = bytearray((len(flags) + 7) // 8)
    for i, flag in enumerate(flags):
        if flag:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def unpack_bits(data: bytes, count: int) -> list[bool]:
    return [bool(data[i // 8] >> (i % 8) & 1) for i in range(count)]

"""Relative-index sparse storage of a shared-weight layer (Deep Compression, Fig. 2).

The non-zero codes are stored in column-major order (column by column, as EIE's compressed sparse column), each as
an entry (code, gap): ``gap`` counts the zeros since the previous entry, across column boundaries, in
``index_bits`` bits. A gap larger than ``2**index_bits - 1`` is bridged by padding entries of code 0 (the value
0.0) that each stand for ``2**index_bits - 1`` zeros and themselves. Zeros after the last non-zero need no entry.
This is the per-layer format whose size the compression report counts; EIE's per-PE layout is built separately.
"""

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, ShapeError

__all__ = ["RelativeIndex", "encode_relative", "decode_relative"]


@dataclass(eq=False)
class RelativeIndex:
    """Entries of a sparse layer: ``codes`` (uint8, 0 for padding) and ``gaps`` (uint8, zeros before each entry)."""

    codes: np.ndarray
    gaps: np.ndarray
    index_bits: int
    shape: tuple

    @property
    def n_padding(self):
        """Number of padding entries (code 0)."""
        return int(np.count_nonzero(self.codes == 0))


def encode_relative(codes, index_bits):
    """Relative-index entries of a code matrix whose zero code means a zero weight (``keep_zero`` sharing)."""
    if not (isinstance(index_bits, (int, np.integer)) and 1 <= index_bits <= 8):
        raise ConfigError(f"relative indices need 1 to 8 bits, got {index_bits!r}")
    codes = np.asarray(codes)
    flat = codes.reshape(len(codes), -1).T.ravel()  # a conv weight counts as (out_c, in_c * kh * kw)
    positions = np.flatnonzero(flat)
    span = 2 ** index_bits
    gaps = np.diff(positions, prepend=-1) - 1
    runs = gaps // span + 1                       # padding entries + the real entry
    last = np.cumsum(runs) - 1                    # index of each real entry among all entries
    entry_gaps = np.full(int(runs.sum()), span - 1, dtype=np.uint8)
    entry_gaps[last] = gaps % span
    entry_codes = np.zeros(len(entry_gaps), dtype=np.uint8)
    entry_codes[last] = flat[positions]
    return RelativeIndex(entry_codes, entry_gaps, int(index_bits), codes.shape)


def decode_relative(index):
    """The code matrix a :class:`RelativeIndex` stores."""
    positions = np.cumsum(index.gaps.astype(np.int64) + 1) - 1
    size = int(np.prod(index.shape))
    if len(positions) and positions[-1] >= size:
        raise ShapeError(f"relative indices run to position {positions[-1]}, past the {size} weights of shape "
                         f"{index.shape}; the entries are corrupt")
    rows = index.shape[0]
    flat = np.zeros(size, dtype=np.uint8)
    flat[positions] = index.codes
    return flat.reshape(-1, rows).T.reshape(index.shape)

"""Huffman coding (Deep Compression, step 3) of small-alphabet symbol streams: codebook indices and relative indices.

The code is canonical: it is fully described by the code length of each symbol, so a stream stores its bits, its
symbol count and one length byte per alphabet symbol. Encoding and decoding are vectorised:

* encoding gathers each symbol's code bits from a (alphabet x max length) bit table and packs them;
* decoding looks up, at every bit position, the codeword that would start there (canonical codewords are ordered,
  so one binary search of the window value does it), then keeps the positions reachable from bit 0 by following
  ``p -> p + length`` with pointer doubling: log2(symbols) vectorised rounds instead of a loop over symbols.
"""

import heapq
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, ModelFormatError

__all__ = ["code_lengths", "canonical_codes", "HuffmanStream", "huffman_encode", "huffman_decode"]

MAX_CODE_LENGTH = 57
"""Longest code the 64-bit decoder window handles (never reached by streams of fewer than 2**38 symbols)."""


def code_lengths(counts):
    """Huffman code length of each symbol given its count (0 for unused symbols; 1 if only one symbol is used).

    Ties are broken by symbol order, so the lengths are deterministic.
    """
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.zeros(len(counts), dtype=np.int64)
    used = np.flatnonzero(counts)
    if len(used) == 1:
        lengths[used] = 1
    heap = [(int(counts[s]), int(s), [int(s)]) for s in used]
    heapq.heapify(heap)
    while len(heap) > 1:
        count_a, order_a, group_a = heapq.heappop(heap)
        count_b, order_b, group_b = heapq.heappop(heap)
        lengths[group_a + group_b] += 1
        heapq.heappush(heap, (count_a + count_b, min(order_a, order_b), group_a + group_b))
    return lengths


def canonical_codes(lengths):
    """Canonical codeword of each symbol (uint64, read ``lengths[s]`` bits from the most significant end).

    Symbols are ordered by (length, symbol) and numbered consecutively, shifting left when the length grows.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(len(lengths), dtype=np.uint64)
    code, previous = 0, 0
    for symbol in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[symbol]) - previous
        codes[symbol], previous = code, int(lengths[symbol])
        code += 1
    return codes


@dataclass(eq=False)
class HuffmanStream:
    """A Huffman-coded stream: ``data`` (packed bits, MSB first), ``n_bits``, ``n_symbols`` and the canonical
    code ``lengths`` (one per alphabet symbol)."""

    data: np.ndarray
    n_bits: int
    n_symbols: int
    lengths: np.ndarray

    @property
    def bits_per_symbol(self):
        """Average coded bits per symbol (payload only)."""
        return self.n_bits / self.n_symbols if self.n_symbols else 0.0

    @property
    def table_bytes(self):
        """Bytes of the code table: one length byte per alphabet symbol."""
        return len(self.lengths)

    @property
    def total_bytes(self):
        """Bytes of the whole stream: the packed payload plus the code table."""
        return len(self.data) + self.table_bytes


def huffman_encode(symbols, alphabet_size):
    """Huffman-code ``symbols`` (integers in [0, ``alphabet_size``)) with the code built from their own counts."""
    symbols = np.asarray(symbols).ravel()
    if symbols.size and (symbols.min() < 0 or symbols.max() >= alphabet_size):
        raise ConfigError(f"Huffman symbols must lie in [0, {alphabet_size}), got the range "
                          f"[{symbols.min()}, {symbols.max()}]")
    symbols = symbols.astype(np.int64)
    lengths = code_lengths(np.bincount(symbols, minlength=alphabet_size))
    max_length = int(lengths.max(initial=0))
    if max_length > MAX_CODE_LENGTH:
        raise ConfigError(f"a Huffman code of {max_length} bits exceeds the {MAX_CODE_LENGTH}-bit limit; split the "
                          f"stream into smaller pieces")
    codes = canonical_codes(lengths)
    shifts = lengths[:, None] - 1 - np.arange(max(max_length, 1))
    table = ((codes[:, None] >> np.maximum(shifts, 0).astype(np.uint64)) & np.uint64(1)).astype(np.uint8)
    small = symbols.astype(np.uint8 if alphabet_size <= 256 else np.int64)
    bits = table[small][(shifts >= 0)[small]]
    return HuffmanStream(np.packbits(bits), int(bits.size), int(symbols.size), lengths.astype(np.uint8))


def huffman_decode(stream):
    """The symbols (int64) of a :class:`HuffmanStream`; a corrupt stream raises :class:`ModelFormatError`."""
    if stream.n_symbols == 0:
        return np.zeros(0, dtype=np.int64)
    lengths = np.asarray(stream.lengths, dtype=np.int64)
    bits = np.unpackbits(np.asarray(stream.data, dtype=np.uint8))[:stream.n_bits]
    if bits.size != stream.n_bits or not lengths.any():
        raise ModelFormatError("corrupt Huffman stream: fewer bits than recorded or an empty code table; "
                               "re-encode the data")
    max_length = int(lengths.max())
    order = np.array(sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)))
    starts = canonical_codes(lengths)[order] << (max_length - lengths[order]).astype(np.uint64)
    padded = np.concatenate([bits, np.zeros(max_length, np.uint8)]).astype(np.uint64)
    window = np.zeros(stream.n_bits, dtype=np.uint64)
    for i in range(max_length):
        window = (window << np.uint64(1)) | padded[i:i + stream.n_bits]
    entry = np.searchsorted(starts, window, side="right") - 1
    symbol_at, length_at = order[entry], lengths[order[entry]]
    # follow p -> p + length from 0 by pointer doubling; position n_bits is the sink
    jump = np.minimum(np.arange(stream.n_bits) + length_at, stream.n_bits)
    jump = np.append(jump, stream.n_bits)
    reached = np.zeros(stream.n_bits + 1, dtype=bool)
    reached[0] = True
    for _ in range(int(stream.n_symbols).bit_length()):
        reached[jump[reached]] = True
        jump = jump[jump]
    positions = np.flatnonzero(reached[:-1])
    ends = positions + length_at[positions]
    if len(positions) != stream.n_symbols or ends[-1] != stream.n_bits:
        raise ModelFormatError(f"corrupt Huffman stream: {len(positions)} codewords decode from {stream.n_bits} "
                               f"bits but {stream.n_symbols} symbols were recorded; re-encode the data")
    return symbol_at[positions]

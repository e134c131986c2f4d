"""How matrices, weight tiles and host words are laid out in the systolic accelerator's memories.

Data layout
-----------
A matrix ``X`` of ``M x K`` int8 is held as ``ceil(K / lanes)`` blocks of ``M`` words: word ``k * M + m`` holds
``X[m, k*lanes : (k+1)*lanes]``, zero-padded (:func:`pack_matrix`). A weight matrix ``W`` of ``K x N`` is cut into
``rows x cols`` tiles, each ``rows`` WB words (:func:`pack_weight_tile`). A host word is an integer with lane 0 in
the least significant byte (:func:`words_to_ints`).
"""

import math

import numpy as np

from .isa import FormatError
from .numerics import WINOGRAD_U_BITS

__all__ = ["pack_matrix", "unpack_matrix", "pack_weight_tile", "pack_wide_weight_tile", "unpack_wide_weight_tile",
           "words_to_ints", "ints_to_words"]


def pack_matrix(x, lanes: int) -> np.ndarray:
    """An ``M x K`` int8 matrix as ``ceil(K / lanes) * M`` words of ``lanes`` int8 (see Data layout)."""
    x = np.asarray(x)
    if x.ndim != 2 or x.dtype != np.int8:
        raise FormatError(f"pack_matrix takes a 2-D int8 matrix, got {x.dtype} of shape {x.shape}")
    m, k = x.shape
    blocks = math.ceil(k / lanes)
    padded = np.zeros((m, blocks * lanes), dtype=np.int8)
    padded[:, :k] = x
    return padded.reshape(m, blocks, lanes).transpose(1, 0, 2).reshape(blocks * m, lanes)


def unpack_matrix(words, m: int, k: int) -> np.ndarray:
    """Inverse of :func:`pack_matrix`: the ``m x k`` matrix held in ``ceil(k / lanes) * m`` words."""
    words = np.asarray(words, dtype=np.int8)
    lanes = words.shape[1]
    blocks = math.ceil(k / lanes)
    if words.shape[0] != blocks * m:
        raise FormatError(f"an {m} x {k} matrix takes {blocks * m} words of {lanes} lanes, got {words.shape[0]}")
    return words.reshape(blocks, m, lanes).transpose(1, 0, 2).reshape(m, blocks * lanes)[:, :k]


def pack_weight_tile(w, rows: int, cols: int) -> np.ndarray:
    """A weight tile (at most ``rows x cols``, int8, K by N) as ``rows`` words of ``cols`` lanes, zero-padded."""
    w = np.asarray(w)
    if w.ndim != 2 or w.dtype != np.int8 or w.shape[0] > rows or w.shape[1] > cols:
        raise FormatError(f"a weight tile is an int8 matrix of at most {rows} x {cols}, got {w.dtype} {w.shape}")
    tile = np.zeros((rows, cols), dtype=np.int8)
    tile[:w.shape[0], :w.shape[1]] = w
    return tile


def pack_wide_weight_tile(u, rows: int, cols: int) -> np.ndarray:
    """A Winograd weight tile (at most ``rows x cols`` integers of :data:`WINOGRAD_U_BITS` bits, K by N) as the
    ``2 * rows`` words a WIDE LOAD_WEIGHTS takes: word ``2r`` the low bytes of row ``r``, word ``2r + 1`` the high
    bytes (two's complement), zero-padded."""
    u = np.asarray(u)
    limit = 1 << (WINOGRAD_U_BITS - 1)
    if u.ndim != 2 or u.shape[0] > rows or u.shape[1] > cols or not np.issubdtype(u.dtype, np.integer):
        raise FormatError(f"a wide weight tile is an integer matrix of at most {rows} x {cols}, got {u.dtype} "
                          f"{u.shape}")
    if u.size and (u.min() < -limit or u.max() >= limit):
        raise FormatError(f"a wide weight tile holds {WINOGRAD_U_BITS}-bit weights, [{-limit}, {limit - 1}]; got "
                          f"[{u.min()}, {u.max()}]")
    tile = np.zeros((rows, cols), dtype=np.int64)
    tile[:u.shape[0], :u.shape[1]] = u
    raw = (tile & 0xFFFF).astype(np.uint16)
    words = np.empty((2 * rows, cols), dtype=np.uint8)
    words[0::2] = raw & 0xFF
    words[1::2] = raw >> 8
    return words.view(np.int8)


def unpack_wide_weight_tile(words) -> np.ndarray:
    """The ``rows x cols`` weights of a WIDE LOAD_WEIGHTS of ``2 * rows`` words: ``256 * high + low`` (``low``
    unsigned), wrapped to :data:`WINOGRAD_U_BITS` bits, as the hardware's weight registers hold them."""
    raw = np.asarray(words, dtype=np.int8)
    low, high = raw[0::2].view(np.uint8).astype(np.int64), raw[1::2].astype(np.int64)
    value = high * 256 + low
    half = 1 << (WINOGRAD_U_BITS - 1)
    return (value + half) % (1 << WINOGRAD_U_BITS) - half


def words_to_ints(words) -> list:
    """Host-port integers of int8 words (lane 0 in the least significant byte)."""
    raw = np.asarray(words, dtype=np.int8).view(np.uint8)
    return [int.from_bytes(row.tobytes(), "little") for row in raw]


def ints_to_words(values, lanes: int) -> np.ndarray:
    """Inverse of :func:`words_to_ints`: an ``(n, lanes)`` int8 array."""
    data = b"".join(int(v).to_bytes(lanes, "little") for v in values)
    return np.frombuffer(data, dtype=np.int8).reshape(len(values), lanes).copy()

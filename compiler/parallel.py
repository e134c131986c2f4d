"""Splitting a network across K accelerator instances: model parallel (output rows) and data parallel (batch).

Model parallel: every layer's output rows are dealt out round-robin, row ``i`` to instance ``i % K``, as EIE deals
rows to its PEs. Every instance needs the whole input vector of a layer, so after each layer the host gathers the
slices, interleaves them back into the full vector and broadcasts it to every instance (a barrier per layer).

* EIE (:func:`split_eie_rows`): the network is lowered once for ``K * n`` PEs and PE ``p`` goes to instance
  ``p % K``; instance ``i``'s PE ``j`` is PE ``j * K + i`` of the wide image. Row ``i`` of the wide image is in PE
  ``i % (K n)``, so instance ``i`` holds exactly the rows ``≡ i (mod K)``, laid out as an ``n``-PE image of that
  sub-matrix would lay them out, with the wide image's codebooks and ``w_frac`` (which do not depend on the PE
  count). Each instance gets one single-layer image per layer; their outputs, interleaved, are bit-exactly the
  unsplit network's.
* Systolic (:class:`SystolicModelParallel`): every GEMM's output columns (the output rows of ``Y^T``) are dealt
  out the same way, each slice keeping its own per-column bias, multiplier and shift, so the interleaved result is
  bit-exactly the unsplit one. Each instance runs one single-GEMM program per layer; host steps (im2col, pooling,
  reshapes) run on the host between device steps, as for one instance.

Data parallel (:func:`batch_shares`, :class:`SystolicDataParallel`): every instance holds the whole model and
runs a contiguous share of the batch; there is no barrier and nothing moves between instances.

Communication model (:class:`Link`): the host and the K instances form a star. Each instance has its own
full-duplex link to the host; links work in parallel and a link carries one transfer at a time. Moving ``b > 0``
bytes over a link costs ``latency + ceil(b / bytes_per_cycle)`` accelerator cycles. Transfers are store and forward:
an instance starts computing when its input has arrived and sends its output when it has finished (no overlap of
communication with computation). What crosses a link:

* EIE: the 16-bit input activations of each call (a layer's full input vector), and the 16-bit output rows back.
  The weights are loaded once and stay resident (EIE's premise); they are counted as setup bytes, not in the time.
* Systolic: everything the instance's program reads from its host port (instructions at 16 bytes each, the weight
  words of its READ_WEIGHTS and the input words of its READ_HOST, ``lanes`` bytes a word) and the output words it
  writes. The cycle model of the program counts the instance's own host-port time on top: the link and the port
  are successive stages.

Scaling efficiency for K instances is ``T(1) / (K * T(K))``, where ``T(1)`` is the unsplit network on one
instance (activations kept on chip between layers, nothing gathered) under the same link model.
"""

import math
from dataclasses import dataclass, replace

import numpy as np

from sparq.formats.eie import ENTRIES_PER_WORD, EieImage, LayerEntry
from sparq.formats.systolic import pack_matrix, unpack_matrix

from .eie import image_storage
from .errors import ConfigError
from .quantize import quantize_activation
from .systolic import GemmLayer, HostStep, SystolicNetwork, lower_gemm

__all__ = ["Link", "shard_rows", "gather_rows", "batch_shares", "split_eie_rows", "eie_image_bytes",
           "split_gemm_columns", "Call", "SystolicModelParallel", "SystolicDataParallel", "INSTRUCTION_BYTES"]

INSTRUCTION_BYTES = 16
"""Bytes of one encoded systolic instruction (128 bits)."""


@dataclass(frozen=True)
class Link:
    """A host-to-instance link: ``bytes_per_cycle`` of bandwidth and ``latency`` cycles per transfer."""

    bytes_per_cycle: float = 8.0
    latency: int = 100

    def __post_init__(self):
        if not self.bytes_per_cycle > 0 or self.latency < 0:
            raise ConfigError(f"a link needs bytes_per_cycle > 0 and latency >= 0, got {self.bytes_per_cycle!r} and "
                              f"{self.latency!r}")

    def cycles(self, nbytes):
        """Cycles to move ``nbytes`` over the link (0 for nothing)."""
        return 0 if nbytes <= 0 else self.latency + math.ceil(nbytes / self.bytes_per_cycle)


def _check_k(k):
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"the number of instances K must be a positive integer, got {k!r}")
    return int(k)


def shard_rows(n_rows, k):
    """The row indices of each of ``k`` instances: instance ``i`` gets rows ``i, i + k, i + 2k, ...``."""
    k = _check_k(k)
    return [np.arange(i, n_rows, k) for i in range(k)]


def gather_rows(parts, axis=-1):
    """Interleave ``parts`` (instance ``i``'s slice along ``axis`` holds rows ``i, i + k, ...``) back into one array."""
    parts = [np.asarray(p) for p in parts]
    axis = axis % parts[0].ndim
    total = sum(p.shape[axis] for p in parts)
    shape = list(parts[0].shape)
    shape[axis] = total
    out = np.empty(shape, dtype=parts[0].dtype)
    for i, part in enumerate(parts):
        index = [slice(None)] * len(shape)
        index[axis] = slice(i, total, len(parts))
        out[tuple(index)] = part
    return out


def batch_shares(n, k):
    """Contiguous near-equal shares of ``n`` samples for ``k`` instances (the first ``n % k`` get one more); an
    instance may get an empty share when ``k > n``."""
    k = _check_k(k)
    bounds = np.cumsum([0] + [n // k + (i < n % k) for i in range(k)])
    return [slice(int(a), int(b)) for a, b in zip(bounds, bounds[1:])]


# --- EIE ------------------------------------------------------------------------------------------------------------

def split_eie_rows(wide_image, k):
    """Deal the PEs of ``wide_image`` (lowered for ``K * n`` PEs) round-robin to ``k`` instances of ``n`` PEs.

    Returns ``images[l][i]``: instance ``i``'s single-layer image of layer ``l`` (its rows ``≡ i mod K``; the full
    input vector in). An instance that gets no row of a layer (``out_len < K``) has ``None`` there. The first
    layer's images keep the wide image's input scale and the last layer's its output scale.
    """
    k = _check_k(k)
    total = wide_image.config.n_pe
    if total % k:
        raise ConfigError(f"the wide image has {total} PEs, not a multiple of K={k}; lower it for K * n PEs")
    config = replace(wide_image.config, n_pe=total // k)
    images = []
    for l, entry in enumerate(wide_image.layers):
        per_instance = []
        for i in range(k):
            out_len = len(range(i, entry.out_len, k))
            if not out_len:
                per_instance.append(None)
                continue
            pes = np.arange(i, total, k)
            ptr = wide_image.pointers(l)[pes]
            words = max(1, -(-int(ptr[:, -1].max()) // ENTRIES_PER_WORD))
            spmat = wide_image.spmat[pes, entry.spmat_base:entry.spmat_base + words]
            spmat = np.pad(spmat, ((0, 0), (0, words - spmat.shape[1])))
            rows = config.rows_per_pe(out_len)
            bias = wide_image.bias[pes, entry.bias_base:entry.bias_base + rows]
            layer = LayerEntry(entry.in_len, out_len, 0, 0, 0, entry.w_frac, entry.relu)
            scales = (wide_image.input_scale if l == 0 else 1.0,  # the hidden layers' scales are in their codebooks
                      wide_image.output_scale if l == len(wide_image.layers) - 1 else 1.0)
            per_instance.append(EieImage(config, [layer], wide_image.codebooks[l:l + 1], ptr, spmat, bias, *scales))
        images.append(per_instance)
    return images


def eie_image_bytes(image):
    """Bytes an image loads into its instance: entries (8 per 64-bit word), pointers, biases, codebooks and the
    layer table (:func:`sparq.compiler.eie.image_storage`)."""
    return math.ceil(image_storage(image)["total_bits"] / 8)


# --- systolic --------------------------------------------------------------------------------------------------------

def split_gemm_columns(layer, k):
    """``layer`` (a :class:`~sparq.compiler.systolic.GemmLayer`) cut into ``k`` GEMMs by output column, column ``j`` to
    instance ``j % k``, each with its columns' bias, multiplier and shift (None for an instance with no column)."""
    return [GemmLayer(f"{layer.name}[{i}::{k}]", np.ascontiguousarray(layer.weight[:, cols]), layer.bias[cols],
                      layer.multiplier[cols], layer.shift[cols], layer.relu) if len(cols) else None
            for i, cols in enumerate(shard_rows(layer.n, k))]


@dataclass
class Call:
    """One device call on one instance: the program, its input words, and the link bytes each way."""

    instance: int
    program: object
    input_words: np.ndarray

    @property
    def bytes_in(self):
        """Bytes the host sends: instructions, weight words and input words."""
        program = self.program
        return len(program.instructions) * INSTRUCTION_BYTES + (len(program.weight_words) + program.input_words) * \
            program.config.lanes

    @property
    def bytes_out(self):
        """Bytes the instance sends back: its output words."""
        return self.program.output_words * self.program.config.lanes


class SystolicModelParallel:
    """A :class:`~sparq.compiler.systolic.SystolicNetwork` run model-parallel on ``k`` instances of its configuration.

    :meth:`execute` is a generator of *rounds*: it yields a list of :class:`Call` (at most one per instance, all
    running at once, followed by a barrier) and expects the list of their output words back; it returns the int8
    logits, bit-exactly those of the unsplit network.
    """

    barrier = True

    def __init__(self, network: SystolicNetwork, k):
        self.network, self.k = network, _check_k(k)
        self.shards = {}  # (step index, layer index) -> list of per-instance GemmLayer or None
        self._programs = {}

    def _shards(self, s, l, layer):
        if (s, l) not in self.shards:
            self.shards[(s, l)] = split_gemm_columns(layer, self.k)
        return self.shards[(s, l)]

    def _program(self, s, l, i, gemm, m):
        key = (s, l, i, m)
        if key not in self._programs:
            self._programs[key] = lower_gemm([gemm], m, self.network.config)
        return self._programs[key]

    def execute(self, images):
        """Rounds of calls for a run on float ``images``; returns the int8 logits."""
        lanes = self.network.config.lanes
        x = quantize_activation(images, self.network.input_scale)
        kept = {}
        for s, step in enumerate(self.network.steps):
            if isinstance(step, HostStep):
                x = step.host(x, kept)
                continue
            rows = step.batch * step.rows_per_image
            chunks = []
            for lo in range(0, len(x), rows):
                y = x[lo:lo + rows]
                for l, layer in enumerate(step.layers):
                    calls, parts = [], []
                    for i, gemm in enumerate(self._shards(s, l, layer)):
                        if gemm is not None:
                            calls.append(Call(i, self._program(s, l, i, gemm, len(y)), pack_matrix(y, lanes)))
                    outputs = yield calls
                    for call, words in zip(calls, outputs):
                        n = call.program.meta["layers"][0]["n"]
                        parts.append(unpack_matrix(words, len(y), n))
                    y = gather_rows(parts, axis=1)
                chunks.append(y)
            x = np.concatenate(chunks)
        return x


class SystolicDataParallel:
    """A :class:`~sparq.compiler.systolic.SystolicNetwork` run data-parallel on ``k`` instances: instance ``i`` runs the
    whole network on share ``i`` of the batch (:func:`batch_shares`). :meth:`execute` yields rounds (the next call
    of every instance still running; no barrier) and returns the int8 logits, bit-exactly the unsplit network's."""

    barrier = False

    def __init__(self, network: SystolicNetwork, k):
        self.network, self.k = network, _check_k(k)

    def execute(self, images):
        """Rounds of calls for a run on float ``images``; returns the int8 logits."""
        shares = batch_shares(len(images), self.k)
        running = {i: self.network.execute(images[share]) for i, share in enumerate(shares) if share.stop > share.start}
        pending, results = {}, {}
        for i, generator in running.items():
            pending[i] = next(generator)
        while pending:
            calls = [Call(i, program, words) for i, (program, words) in pending.items()]
            outputs = yield calls
            for call, words in zip(calls, outputs):
                try:
                    pending[call.instance] = running[call.instance].send(words)
                except StopIteration as done:
                    results[call.instance] = done.value
                    del pending[call.instance]
        return np.concatenate([results[i] for i in sorted(results)])


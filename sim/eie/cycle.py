"""Event-level cycle model of EIE: the central unit broadcasting non-zero activations to N PEs through FIFOs.

Timing contract, per layer (cycle 0 is the first broadcast):

* The central control unit (CCU) broadcasts the non-zero activations in index order, at most one per cycle, into
  every PE's FIFO at once; the leading non-zero detector always has the next one ready. It waits while any FIFO is
  full.
* A FIFO of depth D holds up to D activations, counting the one its PE is working on: the PE works on the oldest
  activation in place and removes it in its last cycle on it; the freed slot can be written from the next cycle.
  (So at depth 1 the broadcast waits for the slowest PE on every activation, and about half the cycles are idle,
  as the paper reports.)
* An activation written in cycle t can be started from cycle t + 1.
* A PE spends ``max(1, n)`` cycles on an activation, where ``n`` is the number of its entries (padding included) in
  that column: one entry per cycle into the arithmetic unit, or one cycle for the pointer read when its slice of
  the column is empty. It starts the next activation in the cycle after.
* ``total`` runs from cycle 0 until the last entry of the layer has been issued; the 4-stage arithmetic pipeline's
  drain and the write-back of the outputs are not counted.

Per PE: ``busy`` is the cycles spent on entries (or empty-column pointer reads); ``starve`` the other cycles of
``total``, in which the PE is idle because its FIFO is empty (a PE waits for nothing else); ``stall`` the cycles in
which the broadcast waited because this PE's FIFO was full. Load efficiency, as REFERENCE.md defines it, is
``1 - sum(starve) / (N * total)``.

The model is a recurrence over broadcast events, vectorised over the PEs: with ``f_e,k = s_e,k + c_e,k`` the cycle
after PE ``k`` finishes event ``e``, the broadcast cycle of event ``e`` is ``t_e = max(t_(e-1) + 1, max_k
f_(e-D),k)`` and PE ``k`` starts it at ``s_e,k = max(t_e + 1, f_(e-1),k)``.
"""

from dataclasses import dataclass

import numpy as np

from .golden import Golden

__all__ = ["CycleStats", "simulate", "column_costs", "layer_costs", "run", "RTL_START_LATENCY", "RTL_RELEASE_LATENCY",
           "RTL_LATENCY", "CLOCK_HZ"]

CLOCK_HZ = 800e6
"""EIE's clock (800 MHz), for converting cycles to time."""


@dataclass
class CycleStats:
    """One layer's timing: ``total`` cycles and, per PE (int64 arrays), ``busy``, ``starve`` and ``stall``."""

    total: int
    busy: np.ndarray
    starve: np.ndarray
    stall: np.ndarray

    @property
    def load_efficiency(self):
        """``1 - starvation cycles / compute cycles`` over all PEs, ``= busy / (N * total)`` (1.0 for an empty
        layer)."""
        return self.busy.sum() / (len(self.busy) * self.total) if self.total else 1.0

    def seconds(self, clock_hz=CLOCK_HZ):
        """``total`` as time at ``clock_hz``."""
        return self.total / clock_hz


RTL_START_LATENCY = 6
"""sparq's EIE RTL's queue latency in :func:`simulate`'s terms (``start_latency``), at any FIFO depth
(``hw/eie/README.md`` deviation 8): 2 for the broadcast (the CCU's register, then the PE's copy of it), 2 through
the queue's ``SyncFIFOBuffered``, 2 for the pointer read and its register."""

RTL_RELEASE_LATENCY = 2
"""sparq's EIE RTL's credit latency in :func:`simulate`'s terms (``release_latency``): a PE's freed slot reaches
the CCU's decision two cycles late (the PE's ``freed`` register, the CCU's)."""

RTL_LATENCY = {"start_latency": RTL_START_LATENCY, "release_latency": RTL_RELEASE_LATENCY}
"""Both, as keywords of :func:`simulate` and :func:`run`: the model of sparq's RTL."""


def simulate(costs, fifo_depth, start_latency=1, release_latency=0):
    """Run the broadcast model on ``costs`` (int, events x PEs: cycles each PE spends on each broadcast activation,
    in broadcast order) with FIFOs of ``fifo_depth``; return :class:`CycleStats`.

    ``start_latency``: an activation written in cycle ``t`` can be started from cycle ``t + start_latency`` (1 in
    the model above). sparq's RTL takes 6 (:data:`RTL_START_LATENCY`; ``hw/eie/README.md``, deviation 8); with it
    and ``release_latency``, this model gives the RTL's compute cycles exactly unless the scan's group queue runs dry
    (deviation 6).
    ``release_latency``: a slot freed when its PE finishes in cycle ``f - 1`` can be broadcast into from cycle
    ``f + release_latency`` (0 in the model above; the RTL's is :data:`RTL_RELEASE_LATENCY`: use
    ``**RTL_LATENCY``)."""
    costs = np.asarray(costs, dtype=np.int64)
    if costs.ndim != 2 or costs.shape[1] < 1 or np.any(costs < 1):
        raise ValueError(f"costs must be (events, PEs) of positive cycle counts, got shape {costs.shape}")
    if fifo_depth < 1:
        raise ValueError(f"the FIFO depth must be at least 1, got {fifo_depth}")
    n_events, n_pe = costs.shape
    done = np.zeros((fifo_depth, n_pe), dtype=np.int64)  # ring: f of the last fifo_depth events
    idle_from = np.zeros(n_pe, dtype=np.int64)
    stall = np.zeros(n_pe, dtype=np.int64)
    t = -1
    for e in range(n_events):
        t += 1
        if e >= fifo_depth:
            room_from = done[e % fifo_depth] + release_latency  # event e - D leaves FIFO k in its last cycle
            stall += np.maximum(room_from - t, 0)
            t = max(t, int(room_from.max()))
        idle_from = np.maximum(idle_from, t + start_latency) + costs[e]
        done[e % fifo_depth] = idle_from
    total = int(idle_from.max()) if n_events else 0
    busy = costs.sum(axis=0)
    return CycleStats(total, busy, total - busy, stall)


def column_costs(counts, columns):
    """Costs for ``simulate`` from per-PE entry counts ``counts`` (PEs x columns) and the broadcast ``columns``."""
    return np.maximum(np.asarray(counts)[:, columns].T, 1)


def layer_costs(image, l, a):
    """Costs of layer ``l`` of ``image`` on its integer input ``a``: the non-zero activations, in index order."""
    return column_costs(np.diff(image.pointers(l), axis=1), np.flatnonzero(a))


def run(image, a, fifo_depth=None, golden=None, start_latency=1, release_latency=0):
    """Per-layer :class:`CycleStats` of ``image`` on integer input ``a`` (each layer's input from the golden model).

    ``fifo_depth`` defaults to ``image.config.fifo_depth``; pass ``golden`` to reuse a decoded :class:`Golden`;
    ``start_latency`` and ``release_latency`` as :func:`simulate` takes them (1 and 0: the paper's machine;
    ``**RTL_LATENCY``: sparq's RTL).
    """
    trace = (golden or Golden(image)).run(a)
    depth = image.config.fifo_depth if fifo_depth is None else fifo_depth
    return [simulate(layer_costs(image, l, trace.acts[l]), depth, start_latency, release_latency)
            for l in range(len(image.layers))]

"""Functional coverage of the regression: what each case made the accelerators do, binned by cocotb-coverage.

A verification engineer signs off on a regression by its coverage model: the situations the design must have met,
each a bin that the regression must hit. sparq's model is below; each bin says where its samples come from. Three
sources, all of them the DUT's own behaviour on the case:

* **the DUT's counters and events**: the EIE's per-PE ``starve_cycles`` and ``stall_cycles`` (a PE's activation queue
  refused a broadcast: full), the systolic array's ``stall_cycles``, the native runner's per-stream stall and
  starve counts, and the ``Cover`` statements of the RTL (Verilator's user coverage in a coverage build, one count
  per PE and case; :class:`~sparq.hw.eie.arith.ArithmeticUnit`'s "bypass back to back");
* **what the DUT processed**, read from the image or program it ran and the golden model's trace of the run (the
  regression has already checked every output word of the case against that golden model, bit for bit): the
  columns the EIE's PEs walked (only broadcast columns, the non-zero activations), their lengths and padding
  entries, the all-zero layer inputs; the instructions the systolic controller executed with their flags;
* **the requantizer's results**: an ACTIVATE saturates at either end when the golden model's value before the clip
  is outside int8 (the RTL's outputs equal the golden model's, so it saturated there too).

The extraction (:func:`eie_observations`, :func:`systolic_observations`) runs next to the simulation, on a Dask
worker, and returns plain counts of ``(point, bin)``; :class:`FunctionalCoverage` feeds them to cocotb-coverage's
:class:`~cocotb_coverage.coverage.CoverPoint` samplers in the process that collects the results, so the database
(``coverage_db``, a process-wide singleton) lives in one place whatever runs the cases.

Bins (``sparq.<target>.<point>``; :data:`EIE_POINTS`, :data:`SYSTOLIC_POINTS`), one sample per:

========================================  =====================================  ================================
point                                     bins                                   sample
========================================  =====================================  ================================
``eie.column_length``                     0, 1, 2-7, 8+ entries                  broadcast column, per PE
``eie.column_padding``                    none, 1, 2+ padding entries            broadcast column, per PE
``eie.layer_input``                       all zero, some non-zero                layer run
``eie.bypass_back_to_back``               none, hit                              PE and case
``eie.queue_full``                        none, hit                              PE and run
``eie.pe_starvation``                     none, hit                              PE and run
``eie.host_pressure``                     load gaps, output stalls               case with that pressure
``systolic.opcode``                       each opcode a regression build runs    executed instruction
``systolic.accumulate``                   off, on                                MATMUL
``systolic.bank``                         first MATMUL, same bank, switched      MATMUL
``systolic.relu``                         off, on                                ACTIVATE
``systolic.saturation``                   low (-128), high (127)                 ACTIVATE that clipped there
``systolic.stall``                        array stalled, output back-pressure,   case where it happened
                                          input starved
========================================  =====================================  ================================
"""

import re
from collections import Counter

import numpy as np

from sparq.formats.systolic import Flag, Opcode
from sparq.formats.systolic.numerics import PARAM_WORDS, rescale, unpack_params

from ..systolic.golden import SystolicGolden
from .structural import parse_key

__all__ = ["EIE_POINTS", "SYSTOLIC_POINTS", "POINTS", "FunctionalCoverage", "ClipRecorder", "eie_observations",
           "systolic_observations", "user_events"]

EIE_POINTS = {
    "column_length": ("0", "1", "2-7", "8+"),
    "column_padding": ("none", "1", "2+"),
    "layer_input": ("all zero", "some non-zero"),
    "bypass_back_to_back": ("none", "hit"),
    "queue_full": ("none", "hit"),
    "pe_starvation": ("none", "hit"),
    "host_pressure": ("load gaps", "output stalls"),
}
"""The EIE's cover points and their bins (see the module docstring)."""

REGRESSED_OPCODES = tuple(op.name for op in Opcode if op not in (Opcode.TRANSFORM_IN, Opcode.TRANSFORM_OUT))
"""The opcodes of the regression's builds: all but Winograd's transforms (no regression configuration is a
Winograd build; ``tests/systolic`` covers those)."""

SYSTOLIC_POINTS = {
    "opcode": REGRESSED_OPCODES,
    "accumulate": ("off", "on"),
    "bank": ("first", "same", "switched"),
    "relu": ("off", "on"),
    "saturation": ("low", "high"),
    "stall": ("array stalled", "output back-pressure", "input starved"),
}
"""The systolic array's cover points and their bins (see the module docstring)."""

POINTS = {"eie": EIE_POINTS, "systolic": SYSTOLIC_POINTS}

USER_EVENTS = {"arith": "bypass_back_to_back"}
"""The RTL's ``Cover`` statements by the last name of the module that holds them: the cover point they sample."""


def _binned(seen: Counter, point: str, values, edges):
    """Add each of ``values`` to the EIE bin of ``point`` it falls in, the bins split at ``edges`` (ascending; the
    bins in :data:`EIE_POINTS` order)."""
    labels = EIE_POINTS[point]
    for label, n in zip(labels, np.bincount(np.digitize(np.ravel(values), edges), minlength=len(labels))):
        if n:
            seen[point, label] += int(n)


def _some(n: int) -> str:
    return "hit" if n else "none"


def user_events(counts: dict) -> dict[str, list[int]]:
    """The ``Cover`` counts of one job's coverage ``counts`` (:func:`~.structural.read_counts`) by cover point, one
    per instance in hierarchy order (``top.pe0.arith``, ``top.pe1.arith``, ... for the EIE's PEs)."""
    events = {}
    for key, count in counts.items():
        if "\x01t\x02user" not in key:  # a quick test first: a job has tens of thousands of points, a few of them user
            continue
        hierarchy = parse_key(key)["h"]
        point = USER_EVENTS.get(hierarchy.rsplit(".", 1)[-1])
        if point:
            events.setdefault(point, []).append((hierarchy, count))
    return {point: [c for _, c in sorted(items, key=lambda item: _natural(item[0]))] for point, items in events.items()}


def _natural(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def eie_observations(image, traces, counters, events, *, streams, gap_probability=0.0) -> Counter:
    """The ``(point, bin)`` counts of one EIE case: ``image`` ran on each golden ``trace`` (one per input), with the
    RTL's per-input ``counters`` (:func:`sparq.sim.tb.eie.counters`: ``starve``, ``stall`` per PE), the job's
    ``events`` (:func:`user_events`), the native runner's per-stream counts ``streams`` and the host's valid-gap
    probability (a load stream's "starved" cycles also count the cycles before the host starts sending, so a load
    had gaps only where the host was asked for them and the design waited)."""
    seen = Counter()
    # Per layer, PE and column: the entries and the padding entries (value 0) among them.
    lengths, padding = [], []
    for l in range(len(image.layers)):
        pointers = image.pointers(l)
        lengths.append(np.diff(pointers, axis=1))
        zeros = [np.r_[0, np.cumsum(image.entries(l, k)[0] == 0)] for k in range(image.config.n_pe)]
        padding.append(np.stack([np.diff(z[p]) for z, p in zip(zeros, pointers)]))
    for trace, counter in zip(traces, counters):
        for l in range(len(image.layers)):
            a = np.asarray(trace.acts[l])
            seen["layer_input", "some non-zero" if a.any() else "all zero"] += 1
            columns = np.flatnonzero(a)
            if len(columns):
                _binned(seen, "column_length", lengths[l][:, columns], (1, 2, 8))
                _binned(seen, "column_padding", padding[l][:, columns], (1, 2))
        for k in range(image.config.n_pe):
            seen["queue_full", _some(counter["stall"][k])] += 1
            seen["pe_starvation", _some(counter["starve"][k])] += 1
    for count in events.get("bypass_back_to_back", []):
        seen["bypass_back_to_back", _some(count)] += 1
    if gap_probability and streams.get("load", {}).get("starved"):
        seen["host_pressure", "load gaps"] += 1
    if streams.get("out", {}).get("stalled"):
        seen["host_pressure", "output stalls"] += 1
    return seen


def systolic_observations(program, clipped, counters, streams) -> Counter:
    """The ``(point, bin)`` counts of one systolic case: ``program`` (its instructions) executed, with the golden
    model's ``clipped`` (:attr:`ClipRecorder.clipped`), the RTL's ``counters`` (``stall_cycles``) and the native
    runner's per-stream counts ``streams`` (``{"stalled", "starved"}`` by port)."""
    seen = Counter()
    bank = None
    for ins in program.instructions:
        seen["opcode", ins.opcode.name] += 1
        if ins.opcode == Opcode.MATMUL:
            seen["accumulate", "on" if ins.flags & Flag.ACCUMULATE else "off"] += 1
            this = int(ins.flags & Flag.BANK)
            seen["bank", "first" if bank is None else "same" if this == bank else "switched"] += 1
            bank = this
        elif ins.opcode == Opcode.ACTIVATE:
            seen["relu", "on" if ins.flags & Flag.RELU else "off"] += 1
    for low, high in clipped:
        if low:
            seen["saturation", "low"] += 1
        if high:
            seen["saturation", "high"] += 1
    if counters.get("stall_cycles"):
        seen["stall", "array stalled"] += 1
    if streams.get("host_out", {}).get("stalled"):
        seen["stall", "output back-pressure"] += 1
    if streams.get("host_in", {}).get("starved"):
        seen["stall", "input starved"] += 1
    return seen


class ClipRecorder(SystolicGolden):
    """The golden model, recording in ``clipped``, per ACTIVATE it executes, whether the requantizer clipped some
    value at -128 and some at 127 (pass it as ``run_program``'s ``state``)."""

    def __init__(self, config):
        super().__init__(config)
        self.clipped = []

    def execute(self, ins, host_in, host_out):
        if ins.opcode == Opcode.ACTIVATE and not self.halted:
            bias, multiplier, shift = unpack_params(self.wb[ins.wb:ins.wb + PARAM_WORDS])
            x = rescale(self.acc[ins.acc:ins.acc + ins.count], bias, multiplier, shift, bool(ins.flags & Flag.RELU))
            self.clipped.append((bool((x < -128).any()), bool((x > 127).any())))
        super().execute(ins, host_in, host_out)


class FunctionalCoverage:
    """cocotb-coverage's cover points of ``target`` (``sparq.<target>.<point>``, bins :data:`POINTS`), freshly
    registered in ``coverage_db`` (sparq's earlier points, of any target, are dropped: one target at a time): :meth:`sample` them with
    observation counts, read :meth:`bins` and :meth:`missed`, :meth:`export` them as cocotb-coverage's YAML."""

    def __init__(self, target: str):
        from cocotb_coverage.coverage import CoverPoint, coverage_db

        self.target, self.prefix = target, f"sparq.{target}"
        for name in [n for n in coverage_db if n == "sparq" or n.startswith("sparq.")]:
            del coverage_db[name]
        self._db = coverage_db
        self._samplers = {}
        for point, bins in POINTS[target].items():
            @CoverPoint(f"{self.prefix}.{point}", bins=list(bins))
            def sampler(value):
                return value
            self._samplers[point] = sampler

    def sample(self, observations: Counter):
        """Add ``observations`` (``(point, bin)`` counts)."""
        for (point, value), count in observations.items():
            if point not in self._samplers:
                raise KeyError(f"no cover point {self.prefix}.{point}")
            if value not in POINTS[self.target][point]:
                raise KeyError(f"{self.prefix}.{point} has no bin {value!r}")
            for _ in range(count):
                self._samplers[point](value)

    def bins(self) -> dict[str, dict[str, int]]:
        """Hits per bin, per cover point (its short name)."""
        return {point: dict(self._db[f"{self.prefix}.{point}"].detailed_coverage) for point in POINTS[self.target]}

    def missed(self) -> list[str]:
        """``point: bin`` of every bin not hit."""
        return [f"{point}: {label}" for point, hits in self.bins().items() for label, n in hits.items() if not n]

    def percent(self) -> float:
        """The share of bins hit, in percent (cocotb-coverage's ``cover_percentage`` of the target)."""
        return float(self._db[self.prefix].cover_percentage)

    def export(self, path):
        """cocotb-coverage's YAML export of this target's points."""
        self._db.export_to_yaml(str(path))

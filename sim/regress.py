"""Seeded random regression of the whole accelerators on the native runner (:mod:`sparq.sim.native`), on Dask.

A *case* is everything one seed gives, drawn from ``numpy.random.default_rng(seed)`` in a fixed order, so the same
seed (and the same configuration list) always gives the same case:

* **EIE** (:func:`eie_case`): one of :data:`EIE_CONFIGS` (PE counts 1-16, FIFO depths 1-16); a network of 1-3
  fully connected layers of random widths (1-:data:`EIE_MAX_WIDTH`), each at a density drawn log-uniformly from
  1 % to 60 %, with some empty columns and some padded columns (non-zeros only in the first and last row, so the
  whole column between is one zero run that needs padding entries), a random codebook, bias and ReLU; 1-3 Q8.8
  input vectors (random density, all zero or fully dense; one in ten full-scale, :func:`_vector`); random valid gaps
  and back-pressure on the host ports.
* **systolic** (:func:`systolic_case`): one of :data:`SYSTOLIC_CONFIGS` (arrays 2x2 to 16x16); a program of a
  chain of 1-3 random int8 GEMMs (batch and widths random, mostly not multiples of the array; ReLU between layers,
  random requantization that saturates some outputs, a fifth of the columns with any shift and multiplier,
  :data:`ANY_SHIFT`), lowered by :func:`sparq.compiler.systolic.gemm_program`, with a SYNC inserted in some
  (:data:`SYNC_SHARE`); random gaps on the instruction and input streams and back-pressure on the output.

Each case runs on the RTL and is checked (:func:`run_batch`):

* EIE: every output word bit-exactly against :class:`sparq.sim.eie.golden.Golden`; per PE, the busy cycles
  exactly against :mod:`sparq.sim.eie.cycle`; the compute cycles between the cycle model with the RTL's queue
  and credit latencies (``RTL_LATENCY``, ``hw/eie/README.md`` deviations 7 and 8), which they must reach, and that plus one cycle
  per all-zero activation group between a layer's first and last non-zero (deviation 6), which they must not pass
  (:func:`eie_compute_bounds`; exact when the input has no such group).
* systolic: every output byte against :func:`sparq.sim.systolic.golden.run_program`; ``mac_busy`` exactly against
  :func:`sparq.sim.systolic.cycles.predict`; on a case without host pressure (no gaps, no stalls) also
  ``cycles - stall_cycles`` and ``active_cycles`` exactly (on an output queue too shallow for full-rate WRITE_HOST,
  :data:`sparq.formats.systolic.FULL_RATE_OUT_DEPTH`, the compute cycles at least the model's and ``active_cycles``
  not checked); under host pressure the cycles at least the model's. (The controller overlaps host transfers with the computation, so a cycle the host
  holds up is not a cycle the computation loses: ``cycles - stall_cycles`` is exact only without pressure, as the
  accelerator tests check it.)

:func:`regress` runs the cases: the seeds are grouped by configuration (:func:`plan`), each configuration is built
once (:func:`build`, or found in the build cache) before anything fans out, and the cases go to the workers in
batches (:func:`run_batch`, one simulator process for a batch), on a Dask client
(:func:`sparq.sim.cluster.dask_client`) or in this process.

With ``coverage=True`` the builds are Verilator coverage builds and each batch also returns a
:class:`BatchCoverage`: the structural counts of its cases, merged (:mod:`sparq.sim.coverage.structural`), and the
functional observations of each case (:mod:`sparq.sim.coverage.functional`), which the caller bins.
"""

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from sparq.compiler.eie import LayerSpec, lower
from sparq.formats.eie import EieConfig
from sparq.formats.systolic import FULL_RATE_OUT_DEPTH, Instruction, Opcode, SystolicConfig

from .coverage.functional import ClipRecorder, eie_observations, systolic_observations, user_events
from .coverage.structural import merge_counts, read_counts
from .eie.cycle import RTL_LATENCY, RTL_START_LATENCY, layer_costs, simulate
from .eie.golden import Golden
from .systolic.cycles import predict
from .systolic.golden import run_program
from .systolic.stimulus import CONFIGS as SHARED_SYSTOLIC_CONFIGS
from .systolic.stimulus import random_layers

__all__ = ["TARGETS", "EIE_CONFIGS", "SYSTOLIC_CONFIGS", "CONFIGS", "EIE_MAX_WIDTH",
           "EieCase", "SystolicCase", "Outcome", "BatchCoverage", "eie_case", "systolic_case", "make_case", "config_names",
           "choose_config", "plan", "build", "run_batch", "regress", "eie_compute_bounds",
           "cycle_check", "reproduce_command"]

EIE_MAX_WIDTH = 96
"""Widest layer of an EIE case (inputs and outputs)."""

EIE_MAX_LAYERS = 3


def _eie_config(n_pe: int, fifo_depth: int) -> EieConfig:
    """A configuration with memories for any EIE case: 3 layers of up to :data:`EIE_MAX_WIDTH` x
    :data:`EIE_MAX_WIDTH` at any density (every entry of a dense column, plus one padding entry per 16 rows)."""
    rows = -(-EIE_MAX_WIDTH // n_pe)
    entries = EIE_MAX_LAYERS * EIE_MAX_WIDTH * (rows + rows // 16 + 1)
    return EieConfig(n_pe=n_pe, fifo_depth=fifo_depth, ptr_depth=2 * (EIE_MAX_LAYERS * (EIE_MAX_WIDTH + 1) // 2 + 1),
                     spmat_depth=-(-entries // 8) + 8, act_depth=max(rows, 8), bias_depth=EIE_MAX_LAYERS * rows,
                     max_layers=EIE_MAX_LAYERS)


SHARED_EIE_CONFIG = EieConfig(n_pe=4, fifo_depth=8, ptr_depth=1024, spmat_depth=1024, act_depth=128,
                              bias_depth=256, max_layers=4)
"""The EIE RTL tests' configuration (``CONFIG4`` in ``tests/eie_rtl/conftest.py``), which holds any case too: as
``pe4-fifo8`` the regression shares its build."""

EIE_CONFIGS = {f"pe{n}-fifo{d}": SHARED_EIE_CONFIG if (n, d) == (4, 8) else _eie_config(n, d)
               for n, d in [(1, 1), (2, 16), (3, 2), (4, 8), (5, 4), (8, 1), (12, 3), (16, 8)]}
"""The EIE configurations of the regression (PEs and FIFO depth in the name), each built once."""

SYSTOLIC_CONFIGS = {
    "2x2": SHARED_SYSTOLIC_CONFIGS[2],
    "3x3": SystolicConfig(rows=3, cols=3, ub_depth=1024, wb_depth=1024, acc_depth=64),
    "4x4": SHARED_SYSTOLIC_CONFIGS[4],
    "5x5": SystolicConfig(rows=5, cols=5, ub_depth=1024, wb_depth=2048, acc_depth=128, instr_depth=4, out_depth=3),
    "6x6": SystolicConfig(rows=6, cols=6, ub_depth=1024, wb_depth=2048, acc_depth=128, instr_depth=4,
                          out_depth=FULL_RATE_OUT_DEPTH),
    "8x8": SHARED_SYSTOLIC_CONFIGS[8],
    "16x16": SHARED_SYSTOLIC_CONFIGS[16],
}
"""The systolic configurations of the regression: the sizes the tests and benchmarks share (so their builds are
shared too), a 3x3, and a 5x5 and a 6x6 with a 4-entry instruction queue: the 5x5 with the smallest output queue
(3), the 6x6 with the smallest at which WRITE_HOST runs at full rate (:data:`sparq.formats.systolic.FULL_RATE_OUT_DEPTH`)."""


TARGETS = ("eie", "systolic")
CONFIGS = {"eie": EIE_CONFIGS, "systolic": SYSTOLIC_CONFIGS}

PRESSURES = (0.0, 0.1, 0.3, 0.5)
"""The valid-gap and back-pressure probabilities a case draws from."""

ANY_SHIFT = 0.2
"""The share of a systolic case's output columns requantized with a shift from the whole range and any multiplier
(:func:`sparq.sim.systolic.stimulus.random_layers`): without them the shifter's high stages never run."""

SYNC_SHARE = 0.3
"""The share of systolic cases with a SYNC inserted at a random place (every unit idle before the next instruction
issues): compiled GEMM programs have none."""

CALM_SYSTOLIC = 0.25
"""The share of systolic cases run without host pressure (no gaps, no stalls): with host transfers overlapping the
computation only those have model-exact compute and active cycles (see :func:`run_batch`'s checks)."""


def config_names(target: str, configs=None) -> list[str]:
    """The configuration names a regression of ``target`` draws from: ``configs`` (checked), or all of them."""
    if target not in TARGETS:
        raise ValueError(f"the regression target must be one of {', '.join(TARGETS)}, got {target!r}")
    known = CONFIGS[target]
    if not configs:
        return list(known)
    unknown = [name for name in configs if name not in known]
    if unknown:
        raise ValueError(f"no {target} configuration {', '.join(unknown)}; they are {', '.join(known)}")
    return list(dict.fromkeys(configs))


def choose_config(seed: int, names) -> str:
    """The configuration of case ``seed`` among ``names``: the first draw of the case's generator."""
    return names[int(np.random.default_rng(seed).integers(len(names)))]


@dataclass
class EieCase:
    """One EIE case: the configuration, the network's layers, the Q8.8 inputs and the host-port pressure."""
    seed: int
    config_name: str
    config: EieConfig
    layers: list
    inputs: list
    gap_probability: float
    stall_probability: float

    def describe(self) -> str:
        dims = [self.layers[0].codes.shape[1], *(layer.codes.shape[0] for layer in self.layers)]
        densities = "/".join(f"{np.count_nonzero(layer.codes) / layer.codes.size:.0%}" for layer in self.layers)
        return (f"{self.config_name}, layers {'x'.join(map(str, dims))} at {densities}, {len(self.inputs)} inputs, "
                f"gaps {self.gap_probability}, stalls {self.stall_probability}")


@dataclass
class SystolicCase:
    """One systolic case: the configuration, the GEMM chain, the program and its input words, the pressure."""
    seed: int
    config_name: str
    config: SystolicConfig
    m: int
    dims: list
    program: object
    input_words: np.ndarray
    gap_probability: float
    stall_probability: float
    instr_gap_probability: float

    def describe(self) -> str:
        return (f"{self.config_name}, GEMM {self.m} x {'->'.join(map(str, self.dims))}, "
                f"{len(self.program.instructions)} instructions, gaps {self.gap_probability}/"
                f"{self.instr_gap_probability}, stalls {self.stall_probability}")


def _codes(rng, out_len: int, in_len: int, density: float) -> np.ndarray:
    """Random 4-bit codes at ``density`` with some empty and some padded columns."""
    codes = (rng.random((out_len, in_len)) < density) * rng.integers(1, 16, (out_len, in_len))
    special = rng.permutation(in_len)[:int(rng.integers(0, min(in_len, 4) + 1))]
    for j in special:
        codes[:, j] = 0
        if out_len >= 18 and rng.random() < 0.5:  # padded: one zero run of out_len - 2 rows between two non-zeros
            codes[[0, out_len - 1], j] = rng.integers(1, 16, 2)
    return codes


def _vector(rng, length: int) -> list[int]:
    """A Q8.8 input: all zero (10 %), fully dense (15 %) or of a random density; its values within +-2000 (+-7.8),
    or over the whole int16 range for one vector in ten (whose sums overflow the accumulator's clamp range)."""
    kind = rng.random()
    if kind < 0.1:
        return [0] * length
    density = 1.0 if kind < 0.25 else float(rng.uniform(0.05, 1.0))
    scale = 1 << 15 if kind >= 0.9 else 2000
    x = rng.integers(-scale, scale, length) * (rng.random(length) < density)
    return [int(v) for v in x]


def eie_case(seed: int, configs=None) -> EieCase:
    """The EIE case of ``seed`` (see the module docstring); ``configs``: the configuration names to draw from."""
    names = config_names("eie", configs)
    name = choose_config(seed, names)
    rng = np.random.default_rng(seed)
    rng.integers(len(names))  # the configuration's draw (choose_config)
    config = EIE_CONFIGS[name]
    dims = [int(d) for d in rng.integers(1, EIE_MAX_WIDTH + 1, int(rng.integers(1, EIE_MAX_LAYERS + 1)) + 1)]
    layers = []
    for n, (in_len, out_len) in enumerate(zip(dims, dims[1:])):
        density = 10 ** rng.uniform(math.log10(0.01), math.log10(0.6))
        codebook = np.r_[0.0, np.sort(rng.uniform(-1, 1, 15))]
        relu = n + 2 < len(dims) or bool(rng.random() < 0.5)
        layers.append(LayerSpec(_codes(rng, out_len, in_len, density), codebook, rng.normal(0, 0.5, out_len), relu))
    inputs = [_vector(rng, dims[0]) for _ in range(int(rng.integers(1, 4)))]
    gap, stall = (float(p) for p in rng.choice(PRESSURES, 2))
    return EieCase(seed, name, config, layers, inputs, gap, stall)


def systolic_case(seed: int, configs=None) -> SystolicCase:
    """The systolic case of ``seed`` (see the module docstring)."""
    from sparq.compiler.systolic import gemm_program

    names = config_names("systolic", configs)
    name = choose_config(seed, names)
    rng = np.random.default_rng(seed)
    rng.integers(len(names))
    config = SYSTOLIC_CONFIGS[name]
    size = config.rows
    m = int(rng.integers(1, 4 * size + 9))
    dims = [int(d) for d in rng.integers(1, 3 * size + 5, int(rng.integers(1, 4)) + 1)]
    x = rng.integers(-128, 128, (m, dims[0]), dtype=np.int64).astype(np.int8)
    layers = random_layers(rng, dims, relu_last=bool(rng.random() < 0.5), any_shift=ANY_SHIFT)
    program, words = gemm_program(x, layers, config)
    if rng.random() < SYNC_SHARE:  # a SYNC anywhere before the HALT: the compiler's GEMMs have none
        program.instructions.insert(int(rng.integers(len(program.instructions))), Instruction(Opcode.SYNC))
    gap, stall, instr_gap = (float(p) for p in rng.choice(PRESSURES, 3))
    if rng.random() < CALM_SYSTOLIC:  # no host pressure: the cases whose compute and active cycles are exact
        gap = stall = instr_gap = 0.0
    return SystolicCase(seed, name, config, m, dims, program, words, gap, stall, instr_gap)


def make_case(target: str, seed: int, configs=None):
    """The case of ``seed`` for ``target``."""
    return {"eie": eie_case, "systolic": systolic_case}[target](seed, configs)


@dataclass
class Outcome:
    """What one case gave: ``ok``, the first problem (``message``), and per run (EIE: per input) the compute cycles
    the RTL counted (``rtl_cycles``; systolic: ``cycles - stall_cycles``) and the ``[lower, upper]`` bounds the
    cycle model puts on them (``model_cycles``; equal when the check is exact, upper None when there is none)."""
    seed: int
    config: str
    ok: bool
    message: str = ""
    description: str = ""
    cycles_checked: int = 0
    rtl_cycles: list = field(default_factory=list)
    model_cycles: list = field(default_factory=list)


@dataclass
class BatchCoverage:
    """The coverage of one batch of configuration ``config``: Verilator's ``counts`` of its cases, merged, the
    ``verilog`` they refer to, and the functional ``observations`` (``(point, bin)`` counts) of its cases."""
    config: str
    counts: dict = field(default_factory=dict)
    verilog: str = ""
    observations: Counter = field(default_factory=Counter)


class _Collector:
    """Gathers a batch's coverage from the file the native driver rewrites after each job."""

    def __init__(self, config_name, path):
        self.batch, self.path = BatchCoverage(config_name), path

    def case(self, extract):
        """After a case's job: merge its counts and add ``extract(events)``'s observations (``events``: the job's
        ``Cover`` counts, :func:`~sparq.sim.coverage.functional.user_events`)."""
        counts = read_counts(self.path)
        merge_counts(self.batch.counts, counts)
        self.batch.observations.update(extract(user_events(counts)))


def eie_compute_bounds(image, trace, fifo_depth: int) -> tuple[int, int]:
    """``(lower, upper)`` of the EIE RTL's ``compute_cycles`` on the run ``trace`` (a golden :class:`Trace` of
    ``image``), summed over the layers.

    Per layer, the lower bound is the cycle model with the RTL's queue and credit latencies
    (:data:`~sparq.sim.eie.cycle.RTL_LATENCY`); the upper bound adds one cycle per all-zero group of ``n_pe``
    activations between the layer's first and last non-zero (``hw/eie/README.md`` deviation 6: each costs the
    scan's fetch a cycle, which the broadcast sees only if the group queue runs dry), so the two are equal, and the
    check exact, on an input without such a group."""
    n = image.config.n_pe
    lower_bound = upper_bound = 0
    for l in range(len(image.layers)):
        a = trace.acts[l]
        total = simulate(layer_costs(image, l, a), fifo_depth, **RTL_LATENCY).total
        nonzero = np.flatnonzero(a)
        slack = 0
        if len(nonzero):
            groups = np.unique(nonzero // n)
            slack = int(groups[-1] - groups[0] + 1 - len(groups))
        lower_bound += total
        upper_bound += total + slack
    return lower_bound, upper_bound


def cycle_check(target: str, config) -> str:
    """What the regression checks of the cycles of ``target`` on ``config``, in a few words (the summary's column)."""
    if target == "systolic":
        if config.out_depth < FULL_RATE_OUT_DEPTH:
            return "MAC-busy exact; cycles >= model"
        return "MAC-busy exact; no pressure: compute, active exact"
    return f"busy exact; compute: latency-{RTL_START_LATENCY} model + 0..zero groups"


def _eie_expected(image, golden, x):
    """The golden trace, the compute bounds and the per-PE busy cycles of ``image`` (``golden`` its
    :class:`Golden`) on input ``x``."""
    trace = golden.run(np.asarray(x, dtype=np.int64))
    depth = image.config.fifo_depth
    busy = sum(simulate(layer_costs(image, l, trace.acts[l]), depth).busy for l in range(len(image.layers)))
    return trace, eie_compute_bounds(image, trace, depth), [int(b) for b in busy]


def _first_difference(expected, got) -> str:
    expected, got = np.asarray(expected).ravel(), np.asarray(got).ravel()
    if expected.shape != got.shape:
        return f"{len(got)} words, expected {len(expected)}"
    i = int(np.flatnonzero(expected != got)[0])
    return f"first difference at index {i}: expected {int(expected[i])}, got {int(got[i])}"


def _check_eie(simulation, case: EieCase, directory, collector=None) -> Outcome:
    outcome = Outcome(case.seed, case.config_name, True, description=case.describe())
    image = lower(case.layers, case.config)
    path = image.save(directory / f"case{case.seed}")
    golden = Golden(image)
    expected = [_eie_expected(image, golden, x) for x in case.inputs]
    (result,) = simulation.run_network(jobs=[{"image_dir": str(path), "inputs": case.inputs}], seed=case.seed,
                                       gap_probability=case.gap_probability,
                                       stall_probability=case.stall_probability)
    if collector:
        collector.case(lambda events: eie_observations(
            image, [trace for trace, _, _ in expected], result["counters"], events, streams=result.get("streams", {}),
            gap_probability=case.gap_probability))
    problems = []
    for number, ((trace, (low, high), busy), got, counters) in enumerate(
            zip(expected, result["outputs"], result["counters"])):
        if list(trace.output) != list(got):
            problems.append(f"input {number}: output differs from the golden model, "
                            f"{_first_difference(trace.output, got)}")
        if counters["busy"] != busy:
            problems.append(f"input {number}: per-PE busy cycles {counters['busy']}, the cycle model {busy}")
        compute = counters["compute"]
        outcome.rtl_cycles.append(compute)
        outcome.model_cycles.append([low, high])
        outcome.cycles_checked += 1
        if not low <= compute <= high:
            bound = f"exactly {low}" if low == high else f"{low} to {high}"
            problems.append(f"input {number}: compute cycles {compute}, the cycle model {bound}")
    if problems:
        outcome.ok, outcome.message = False, problems[0] + (f" (and {len(problems) - 1} more)" if problems[1:] else "")
    return outcome


def _check_systolic(simulation, case: SystolicCase, directory, collector=None) -> Outcome:
    outcome = Outcome(case.seed, case.config_name, True, description=case.describe())
    program = case.program
    recorder = ClipRecorder(program.config) if collector else None  # the golden model, noting its clips
    expected = run_program(program.config, program.instructions, program.stream(case.input_words), state=recorder)
    model = predict(program.config, program.instructions)
    got, counters, reply = simulation.program(program, case.input_words, seed=case.seed,
                                          gap_probability=case.gap_probability,
                                          stall_probability=case.stall_probability,
                                          instr_gap_probability=case.instr_gap_probability,
                                          label=f"seed {case.seed}")
    if collector:
        collector.case(lambda events: systolic_observations(program, recorder.clipped, counters, reply.streams))
    problems = []
    if not np.array_equal(expected.view(np.uint8), got.view(np.uint8)):
        problems.append(f"host_out bytes differ from the golden model, "
                        f"{_first_difference(expected.view(np.uint8), got.view(np.uint8))}")
    calm = not (case.gap_probability or case.stall_probability or case.instr_gap_probability)
    exact = calm and program.config.out_depth >= FULL_RATE_OUT_DEPTH
    compute = counters["cycles"] - counters["stall_cycles"] if calm else counters["cycles"]
    outcome.rtl_cycles.append(compute)
    outcome.model_cycles.append([model.cycles, model.cycles if exact else None])
    outcome.cycles_checked += 1
    if exact and compute != model.cycles:
        problems.append(f"compute cycles (cycles - stall_cycles) {compute}, the cycle model {model.cycles}")
    elif compute < model.cycles:
        problems.append(f"cycles {compute}, under the cycle model's {model.cycles} (a lower bound "
                        + ("under host pressure)" if not calm else f"at output queue depth {program.config.out_depth})"))
    checks = [("mac_busy", counters["mac_busy"], model.mac_busy)]
    if exact:
        checks.append(("active_cycles", counters["active_cycles"], model.active_cycles))
    for what, rtl, predicted in checks:
        if rtl != predicted:
            problems.append(f"{what} {rtl}, the cycle model {predicted}")
    if problems:
        outcome.ok, outcome.message = False, problems[0] + (f" (and {len(problems) - 1} more)" if problems[1:] else "")
    return outcome


def _component(target: str, config):
    if target == "eie":
        from sparq.hw.eie import EIE
        return EIE(config)
    from sparq.hw.systolic.accelerator import SystolicAccelerator
    return SystolicAccelerator(config)


def _simulation(target: str, config, coverage=None):
    """A native simulation of ``config`` (built or found in the cache), kept across cases; ``coverage``: the file
    for each job's coverage counts (a coverage build)."""
    from .native.eie import Eie
    from .native.systolic import Accelerator
    return (Eie if target == "eie" else Accelerator)(_component(target, config), coverage=coverage)


def build(target: str, config_name: str, coverage: bool = False):
    """Build configuration ``config_name`` of ``target`` for the native runner (with Verilator's coverage counters
    if ``coverage``), or find it in the build cache."""
    from .native import build_native
    return build_native(_component(target, CONFIGS[target][config_name]), coverage=coverage)


def run_batch(target: str, config_name: str, seeds, configs=None, coverage: bool = False):
    """Run and check the cases ``seeds`` (all of configuration ``config_name``) in one simulator process; a case
    that fails (a mismatch, a broken stream rule, a timeout, a crash) is reported and the next one runs in a fresh
    process. Returns the outcomes, and with ``coverage`` also the batch's :class:`BatchCoverage` (of the cases that
    passed: a failing job writes no counts)."""
    import tempfile
    from pathlib import Path

    check = _check_eie if target == "eie" else _check_systolic
    config = CONFIGS[target][config_name]
    outcomes = []
    simulation = None
    with tempfile.TemporaryDirectory(prefix="sparq-regress-") as scratch:
        collector = _Collector(config_name, Path(scratch) / "coverage.dat") if coverage else None
        try:
            for seed in seeds:
                case = make_case(target, seed, configs)
                if case.config_name != config_name:
                    raise ValueError(f"seed {seed} is a case of {case.config_name}, not of {config_name}")
                if simulation is None:
                    simulation = _simulation(target, config, collector and collector.path)
                    if collector:
                        collector.batch.verilog = (simulation.build.directory / "top.v").read_text()
                try:
                    outcomes.append(check(simulation, case, Path(scratch), collector))
                except (AssertionError, RuntimeError, OSError) as error:  # a Mismatch, a stream rule, a crash
                    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                    outcomes.append(Outcome(seed, config_name, False, f"{type(error).__name__}: {first}",
                                            case.describe()))
                    simulation.__exit__(None, None, None)
                    simulation = None
        finally:
            if simulation is not None:
                simulation.__exit__(None, None, None)
    return (outcomes, collector.batch) if coverage else outcomes


def plan(target: str, seeds, configs=None) -> dict[str, list[int]]:
    """The ``seeds`` grouped by the configuration each case draws."""
    names = config_names(target, configs)
    groups = {}
    for seed in seeds:
        groups.setdefault(choose_config(seed, names), []).append(seed)
    return {name: groups[name] for name in names if name in groups}


def _batches(groups: dict, size: int):
    for name, seeds in groups.items():
        for start in range(0, len(seeds), size):
            yield name, seeds[start:start + size]


def regress(target: str, seeds, *, configs=None, client=None, batch_size: int = 50, on_batch=None,
            on_coverage=None) -> list[Outcome]:
    """Run the cases ``seeds`` of ``target`` in batches of ``batch_size`` per configuration, as Dask tasks on
    ``client`` or here when it is None; ``on_batch(outcomes)`` is called after each batch. Returns the outcomes
    sorted by seed. With ``on_coverage``, the cases run on coverage builds and ``on_coverage(batch_coverage)``
    receives each batch's :class:`BatchCoverage`.

    Build the configurations first (:func:`build`, one after the other, where the cases are planned): otherwise the
    first batch of each configuration builds it, under the build cache's lock, while the other batches wait."""
    groups = plan(target, list(seeds), configs)
    outcomes = []
    batches = list(_batches(groups, batch_size))
    coverage = on_coverage is not None

    def finished(result):
        done, batch_coverage = result if coverage else (result, None)
        outcomes.extend(done)
        if on_batch:
            on_batch(done)
        if coverage:
            on_coverage(batch_coverage)

    if client is None:
        for name, chunk in batches:
            finished(run_batch(target, name, chunk, configs, coverage))
    else:
        from dask.distributed import as_completed
        futures = [client.submit(run_batch, target, name, chunk, configs, coverage, pure=False)
                   for name, chunk in batches]
        for future in as_completed(futures):
            finished(future.result())
    return sorted(outcomes, key=lambda o: o.seed)


def reproduce_command(target: str, seed: int, configs=None) -> str:
    """The command that runs case ``seed`` alone."""
    chosen = f" --configs {','.join(configs)}" if configs else ""
    return f"sparq regress --target {target} --seeds 1 --start {seed}{chosen}"

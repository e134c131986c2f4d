"""The steps of the sparq flow behind the subcommands: compress, lower, simulate. Each writes files a later step (or
a person) reads, under a workspace directory (default ``build/sparq``):

* ``compress`` -> ``compressed.npz`` (:class:`sparq.compiler.pipeline.CompressedModel`) and ``compression.json`` (the
  per-layer report of :mod:`sparq.compiler.report`);
* ``lower --target eie`` -> an EIE image directory (:meth:`sparq.formats.eie.EieImage.save`) plus ``sparq.json``;
* ``lower --target systolic`` -> one program per device step (``sparq.formats.systolic.save_program``, ``.npz``, and its
  listing, ``.lst``) plus ``sparq.json``, which records the model file and its SHA-256: ``simulate`` compiles the
  model again (deterministic) and refuses a model that changed since;
* ``simulate`` -> ``simulation-<backend>.json`` in the lowered directory: accuracy, cycles, counters, what the
  design did (:mod:`sparq.activity`) and its energy (:mod:`sparq.energy`).

Both targets run the same images: the first ``images`` of the digits test split (:func:`sparq.compiler.datasets.
load_digits_split`), the data the bundled models were trained on; the models must take its 64 pixels.
"""

import hashlib
import json
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError

__all__ = ["DEFAULT_WORKSPACE", "FIFO_DEPTHS", "Lowered", "parse_sparsity", "compress_model", "lower_model",
           "load_lowered", "rtl_component", "build_rtl", "simulate"]

DEFAULT_WORKSPACE = Path("build/sparq")
MARKER = "sparq.json"
FIFO_DEPTHS = (1, 2, 4, 8, 16, 32, 64)
"""FIFO depths of the load-efficiency sweep (cycle model) stored with every EIE simulation."""


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _digits():
    from sparq.compiler.datasets import load_digits_split
    return load_digits_split()


def _require_file(path, what, hint):
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such {what}", hint)
    return path


def _check_input(model, path):
    if tuple(model.input_shape) != (64,):
        raise InputError(f"{path}: the model takes input shape {tuple(model.input_shape)}, but sparq retrains, "
                         f"calibrates and tests on the bundled digits data (64 pixels per image)",
                         "export a model with a flat 64-value input (the digits' 8x8 pixels, scaled to [0, 1])")


def parse_sparsity(values, model):
    """``--sparsity`` values (``"0.9"`` for every weighted layer, or ``"fc1=0.93"``) as ``{layer: fraction}``."""
    names = [layer.name for layer in model.weighted()]
    sparsity = {}
    for text in values:
        name, sep, value = text.rpartition("=")
        try:
            fraction = float(value)
        except ValueError:
            raise InputError(f"--sparsity {text!r} is not a fraction", "write --sparsity 0.9 or "
                             "--sparsity fc1=0.93") from None
        for layer in ([name] if sep else names):
            if layer not in names:
                raise InputError(f"--sparsity names layer {layer!r}, which the model does not have",
                                 f"its weighted layers are {', '.join(names)}")
            sparsity[layer] = fraction
    return sparsity


def compress_model(model_path, out_dir, *, bits=4, sparsity=(), progress=None):
    """Deep Compression of ``model_path`` (default: the bundled digits MLP) on the digits data; writes
    ``compressed.npz`` and ``compression.json`` into ``out_dir``; returns ``(CompressedModel, report, paths)``."""
    from sparq.compiler.models import load_model, shipped_path
    from sparq.compiler.pipeline import DIGITS_MLP_SPARSITY, DeepCompressionConfig, compress
    from sparq.compiler.report import write_report

    default = shipped_path("digits_mlp")
    path = _require_file(model_path or default, "model file",
                         "give an .onnx or .npz model, or no model for the bundled digits MLP")
    model = load_model(path)
    _check_input(model, path)
    if sparsity:
        fractions = parse_sparsity(sparsity, model)
    elif path.resolve() == default.resolve():
        fractions = dict(DIGITS_MLP_SPARSITY)
    else:
        raise InputError(f"{path}: no pruning target for this model", "pass --sparsity 0.9 (every layer) or "
                         "per layer, --sparsity fc1=0.93 --sparsity fc2=0.95")
    config = DeepCompressionConfig(sparsity=fractions, bits=bits)
    compressed, report = compress(model, _digits(), config, name=path.stem, progress=progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    compressed.save(out / "compressed.npz")
    report["source"] = str(path)
    write_report(report, out / "compression.json")
    return compressed, report, {"model": out / "compressed.npz", "report": out / "compression.json"}


def _load_compressed(path):
    from sparq.compiler.errors import ModelFormatError
    from sparq.compiler.pipeline import CompressedModel
    path = _require_file(path, "compressed model", "run `sparq compress` first; it writes compressed.npz")
    if path.suffix.lower() != ".npz":
        raise InputError(f"{path}: EIE runs weight-shared models, and this is not one",
                         "compress it first: sparq compress MODEL, then lower the compressed.npz it writes")
    try:
        return CompressedModel.load(path)
    except ModelFormatError as error:
        raise InputError(str(error).splitlines()[0], "compress the model first with `sparq compress`") from None


def _load_float(path):
    """The IR model in ``path``: a compressed ``.npz`` (its decoded weights) or any model file."""
    from sparq.compiler.errors import ModelFormatError
    from sparq.compiler.models import load_model
    from sparq.compiler.pipeline import CompressedModel
    path = _require_file(path, "model file", "give a compressed.npz from `sparq compress`, an .onnx or an .npz")
    if path.suffix.lower() == ".npz":
        try:
            return CompressedModel.load(path).model
        except ModelFormatError:
            pass  # a plain .npz model, read below
    return load_model(path)


def _eie_config(compressed, params):
    """The EieConfig of ``params``; memory depths it does not set are sized to what the image needs."""
    from sparq.compiler.eie import lower_compressed
    from sparq.formats.eie import EieConfig
    depths = ("ptr_depth", "spmat_depth", "act_depth", "bias_depth", "max_layers")
    if all(name in params for name in depths):
        return EieConfig(**params)
    roomy = EieConfig(**{**params, "ptr_depth": 1 << 20, "spmat_depth": 1 << 20, "act_depth": 1 << 16,
                        "bias_depth": 1 << 16, "max_layers": 64})
    need = lower_compressed(compressed, roomy).requirements()
    need["ptr_depth"] += need["ptr_depth"] % 2  # two banks of equal depth
    return EieConfig(**{**need, **params})


@dataclass(eq=False)
class Lowered:
    """A lowered model: ``target``, its ``directory``, ``meta`` (``sparq.json``), the hardware ``config``, the EIE
    ``image`` or the systolic ``network``, and the float IR ``model`` it came from (for the float accuracy)."""

    target: str
    directory: Path
    meta: dict
    config: object
    model: object
    image: object = None
    network: object = None


def lower_model(source, target, params, out_dir):
    """Lower the model file ``source`` for ``target`` with hardware ``params`` (:func:`sparq.hwconfig.parameters`)
    into ``out_dir``; returns the :class:`Lowered`."""
    out = Path(out_dir)
    source = Path(source)
    if target == "eie":
        from sparq.compiler.eie import lower_compressed
        from sparq.compiler.errors import UnsupportedError
        compressed = _load_compressed(source)
        try:
            config = _eie_config(compressed, params)
            image = lower_compressed(compressed, config)
        except UnsupportedError as error:
            raise InputError(str(error), "EIE runs fully connected networks; lower this model with --target "
                             "systolic") from None
        image.save(out)
        meta = {"target": "eie", "model": str(source.resolve()), "model_sha256": _sha256(source),
                "config": dict(vars(config)), "files": sorted(p.name for p in out.glob("*.hex"))}
        lowered = Lowered("eie", out, meta, config, compressed.model, image=image)
    else:
        from sparq.compiler.systolic import compile_network
        from sparq.formats.systolic import SystolicConfig, save_program
        model = _load_float(source)
        _check_input(model, source)
        config = SystolicConfig(**params)
        network = compile_network(model, _digits()[0], config, name=source.stem, winograd=config.winograd)
        out.mkdir(parents=True, exist_ok=True)
        programs = []
        for step in network.steps:
            if hasattr(step, "program"):  # a DeviceStep or a WinogradStep
                program = step.program(network.batch * step.rows_per_image)
                stem = f"{len(programs):02d}_{step.name.replace('+', '_')}"
                save_program(program, out / f"{stem}.npz")
                (out / f"{stem}.lst").write_text(program.listing() + "\n")
                programs.append({"step": step.name, "program": f"{stem}.npz", "listing": f"{stem}.lst",
                                 "instructions": len(program.instructions), "rows": network.batch *
                                 step.rows_per_image})
        meta = {"target": "systolic", "model": str(source.resolve()), "model_sha256": _sha256(source),
                "config": json.loads(config.to_json()), "batch": network.batch, "programs": programs,
                "summary": network.summary()}
        lowered = Lowered("systolic", out, meta, config, model, network=network)
    for stale in out.glob("simulation-*.json"):  # results of an earlier lowering describe other memories
        stale.unlink()
    (out / MARKER).write_text(json.dumps(meta, indent=1) + "\n")
    return lowered


def load_lowered(directory):
    """The :class:`Lowered` that :func:`lower_model` wrote into ``directory``."""
    directory = Path(directory)
    marker = directory / MARKER
    if not marker.is_file():
        raise InputError(f"{directory}: not a lowered model (no {MARKER})", "run `sparq lower ... --out DIR` first")
    try:
        meta = json.loads(marker.read_text())
        target, model_path = meta["target"], Path(meta["model"])
    except (ValueError, KeyError) as error:
        raise InputError(f"{marker}: unreadable ({error})", "lower the model again") from None
    if not model_path.is_file() or _sha256(model_path) != meta.get("model_sha256"):
        raise InputError(f"{directory} was lowered from {model_path}, which is missing or has changed since",
                         "lower the model again with `sparq lower`")
    if target == "eie":
        from sparq.formats.eie import EieImage
        image = EieImage.load(directory)
        return Lowered("eie", directory, meta, image.config, _load_compressed(model_path).model, image=image)
    from sparq.compiler.systolic import compile_network
    from sparq.formats.systolic import SystolicConfig
    model = _load_float(model_path)
    config = SystolicConfig(**meta["config"])
    network = compile_network(model, _digits()[0], config, name=model_path.stem, batch=meta["batch"],
                              winograd=config.winograd)
    return Lowered("systolic", directory, meta, config, model, network=network)


# --- simulation --------------------------------------------------------------------------------------------------

class _Progress:
    """A rich progress bar with one task, or nothing when ``console`` is None."""

    def __init__(self, console, description, total):
        self.bar = None
        if console is not None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=console, transient=False)
            self.task = self.bar.add_task(description, total=total)

    def __enter__(self):
        if self.bar:
            self.bar.start()
        return self

    def update(self, completed):
        if self.bar:
            self.bar.update(self.task, completed=completed)

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()


def _follow(run, progress_file, bar):
    """Call ``run()`` in a thread while the bar follows the count in ``progress_file``; return its result."""
    outcome = {}

    def target():
        try:
            outcome["result"] = run()
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.25)
        try:
            bar.update(int(Path(progress_file).read_text() or 0))
        except (OSError, ValueError):
            pass
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _status(console, text):
    from contextlib import nullcontext
    return console.status(text) if console is not None else nullcontext()


RTL_NAMES = {"eie": "EIE", "systolic": "SystolicAccelerator"}
"""Verilator build-directory names of the two designs."""

RTL_OPTIMIZE = {"eie": False, "systolic": True}
"""Whether each design's Verilator model is compiled at ``-O2`` (True) or ``-O0``, unless the caller says. Measured
on the demo's configurations: EIE (4 PEs) builds in 36 s at -O0 and 45 s at -O2 and a 20-image run is a few
seconds, so -O0; the 4x4 systolic array builds in about the same time either way (44 s, 42 s) and its 78,000-cycle
run is cocotb- and model-bound (39 s at -O0, 24 s at -O2 on the same loaded machine), so -O2."""


def rtl_component(target, config):
    """The Amaranth design that runs ``target``'s images or programs for ``config``."""
    if target == "eie":
        from sparq.hw.eie import EIE
        return EIE(config)
    from sparq.hw.systolic.accelerator import SystolicAccelerator
    return SystolicAccelerator(config)


def _build_one(target, config, optimize):
    from sparq.sim.harness import build_verilator
    optimize = RTL_OPTIMIZE[target] if optimize is None else optimize
    started = time.perf_counter()
    build_verilator(rtl_component(target, config), name=RTL_NAMES[target], optimize=optimize)
    return time.perf_counter() - started


def build_rtl(lowereds, console=None, optimize=None):
    """Build the Verilator models of every :class:`Lowered` in ``lowereds`` at once, one process each (a build is
    mostly a C++ compile, so two builds on two cores take about as long as one); return their build seconds."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    names = " and ".join(RTL_NAMES[l.target] for l in lowereds)
    with _status(console, f"building {names} with Verilator in parallel (cached after the first build)..."):
        with ProcessPoolExecutor(len(lowereds), mp_context=get_context("fork")) as pool:
            futures = [pool.submit(_build_one, l.target, l.config, optimize) for l in lowereds]
            return [future.result() for future in futures]


def _build(target, config, console, optimize):
    with _status(console, f"building {RTL_NAMES[target]} with Verilator (cached after the first build)..."):
        return _build_one(target, config, optimize)


def _eie_simulate(lowered, x, backend, seed, console, optimize, prebuilt):
    from sparq.formats.eie import ACT_FRAC, to_fixed
    from sparq.sim.eie import Golden
    from sparq.sim.eie.cycle import run as cycle_run

    from .activity import eie_activity
    from .energy import eie_energy

    image, config = lowered.image, lowered.config
    golden = Golden(image)
    inputs = [to_fixed(v, ACT_FRAC) for v in x]
    traces, model_stats, activity = [], [], {}
    with _Progress(console if backend == "golden" else None, "golden + cycle model, per image", len(x)) as bar:
        for number, a in enumerate(inputs):
            trace = golden.run(a)
            traces.append(trace)
            model_stats.append(cycle_run(image, a, golden=golden))
            for key, value in eie_activity(golden, trace).items():
                activity[key] = activity.get(key, 0) + value
            bar.update(number + 1)
    outputs = [t.output for t in traces]
    model_cycles = [sum(s.total for s in stats) for stats in model_stats]
    n = config.n_pe
    result = {"build_seconds": 0.0}
    if backend == "rtl":
        from sparq.sim.harness import run_verilator
        if not prebuilt:
            result["build_seconds"] = _build("eie", config, console, optimize)
        with tempfile.TemporaryDirectory(prefix="sparq-progress-") as tmp:
            progress_file = Path(tmp) / "done"
            with _Progress(console, f"EIE RTL ({n} PEs), per image", len(x)) as bar:
                rtl = _follow(lambda: run_verilator(
                    rtl_component("eie", config), "sparq.rtl:eie_images", name=RTL_NAMES["eie"], optimize=optimize,
                    image_dir=str(lowered.directory.resolve()), inputs=[[int(v) for v in a] for a in inputs],
                    seed=seed, progress_file=str(progress_file)), progress_file, bar)
        outputs = [np.array(o) for o in rtl["outputs"]]
        per_image = rtl["counters"]
        cycles = [c["cycles"] for c in per_image]
        compute = [c["compute"] for c in per_image]
        pe = {k: np.sum([c[k] for c in per_image], axis=0).tolist() for k in ("busy", "starve", "stall")}
        counter_source = "RTL performance counters"
    else:
        compute = cycles = model_cycles
        pe = {k: np.sum([[getattr(s, k) for s in stats] for stats in model_stats], axis=(0, 1)).tolist()
              for k in ("busy", "starve", "stall")}
        counter_source = "cycle model (sparq.sim.eie.cycle)"
    sweep = {}
    for depth in FIFO_DEPTHS:
        busy = total = 0
        for a in inputs:
            for stats in cycle_run(image, a, fifo_depth=depth, golden=golden):
                busy += int(stats.busy.sum())
                total += stats.total * n
        sweep[depth] = busy / total if total else 1.0
    predictions = [int(np.argmax(o)) for o in outputs]
    energy = eie_energy(activity, config.ptr_width)
    weight_bytes = activity["spmat_words"] * 8 + activity["ptr_reads"] * config.ptr_width / 8
    return {
        **result,
        "predictions": predictions, "cycles": int(sum(cycles)), "compute_cycles": int(sum(compute)),
        "per_image_cycles": [int(c) for c in cycles], "model_cycles": int(sum(model_cycles)),
        "pe": pe, "counter_source": counter_source,
        "load_efficiency": sum(pe["busy"]) / (n * sum(compute)) if sum(compute) else 1.0,
        "fifo_sweep": {str(k): v for k, v in sweep.items()},
        "activity": activity, "macs_performed": activity["entries"], "useful_macs": activity["useful_macs"],
        "peak_macs_per_cycle": n, "weight_bytes": weight_bytes,
        "bandwidth_bytes_per_cycle": n * (8 + 2 * config.ptr_width / 8),
        "bandwidth_basis": "per PE per cycle: one 64-bit sparse-matrix word and two pointers",
        "energy": energy,
    }


def _systolic_simulate(lowered, x, backend, seed, console, optimize, prebuilt):
    from sparq.formats.systolic import save_program
    from sparq.sim.systolic.cycles import predict
    from sparq.sim.systolic.golden import run_network

    from .activity import layer_macs, systolic_activity
    from .energy import systolic_energy

    network, config = lowered.network, lowered.config
    with _status(console if backend == "golden" else None, "systolic golden model..."):
        logits, log = run_network(network, x)
    programs = [program for program, _, _ in log]
    estimates = [predict(config, p.instructions) for p in programs]
    result = {"build_seconds": 0.0}
    if backend == "rtl":
        from sparq.sim.harness import run_verilator
        if not prebuilt:
            result["build_seconds"] = _build("systolic", config, console, optimize)
        with tempfile.TemporaryDirectory(prefix="sparq-systolic-") as tmp:
            runs = []
            for number, (program, words, _) in enumerate(log):
                save_program(program, Path(tmp) / f"call{number}.npz")
                np.save(Path(tmp) / f"call{number}.npy", words)
                runs.append({"program": str(Path(tmp) / f"call{number}.npz"),
                             "inputs": str(Path(tmp) / f"call{number}.npy"), "seed": seed + number})
            progress_file = Path(tmp) / "done"
            with _Progress(console, f"systolic RTL ({config.rows}x{config.cols}), per device call "
                           f"({network.batch} images each)", len(runs)) as bar:
                calls = _follow(lambda: run_verilator(
                    rtl_component("systolic", config), "sparq.rtl:systolic_calls", name=RTL_NAMES["systolic"],
                    optimize=optimize,
                    runs=runs, progress_file=str(progress_file)), progress_file, bar)
        counters = {k: int(sum(c[k] for c in calls)) for k in ("cycles", "mac_busy", "stall_cycles", "active_cycles")}
        counter_source = "RTL performance counters"
    else:
        counters = {"cycles": sum(e.cycles for e in estimates), "mac_busy": sum(e.mac_busy for e in estimates),
                    "stall_cycles": 0, "active_cycles": sum(e.active_cycles for e in estimates)}
        counter_source = "analytic cycle model (sparq.sim.systolic.cycles)"
    activity = systolic_activity(programs)
    dense, nonzero = layer_macs(network, len(x))
    lanes = config.lanes
    return {
        **result,
        "predictions": [int(v) for v in logits.argmax(1)], "cycles": counters["cycles"],
        "compute_cycles": counters["cycles"] - counters["stall_cycles"],
        "model_cycles": int(sum(e.cycles for e in estimates)), "counters": counters, "counter_source": counter_source,
        "device_calls": len(programs), "batch": network.batch,
        "array_busy": counters["mac_busy"] / counters["cycles"] if counters["cycles"] else 0.0,
        "activity": activity, "macs_performed": activity["mac_slots"], "dense_macs": dense, "useful_macs": nonzero,
        "peak_macs_per_cycle": config.rows * config.cols, "weight_bytes": activity["host_weight_words"] * lanes,
        "bandwidth_bytes_per_cycle": lanes,
        "bandwidth_basis": f"the host_in port: one {lanes}-byte word per cycle (weights are streamed on every call)",
        "energy": systolic_energy(activity, lanes, config.cols),
    }


def simulate(lowered, backend, *, images=20, seed=0, console=None, optimize=None, prebuilt=False):
    """Run the first ``images`` digits test images on ``lowered``, on the golden model (``backend="golden"``: the
    bit-exact model, cycles from the cycle model) or on the RTL under Verilator (``"rtl"``: every output checked
    against the golden model, cycles and counters from the RTL). Writes and returns the result dict.

    ``optimize`` builds the Verilator model at ``-O2`` (True) or ``-O0`` (False) instead of the design's default
    (:data:`RTL_OPTIMIZE`); ``prebuilt``
    says :func:`build_rtl` has built it already (the run then skips the separate build step and its status line).
    """
    from sparq.compiler.ir import forward
    if backend not in ("golden", "rtl"):
        raise InputError(f"unknown backend {backend!r}", "choose golden or rtl")
    _, _, x_test, y_test = _digits()
    if not 1 <= images <= len(x_test):
        raise InputError(f"--images {images} is outside 1..{len(x_test)}", f"the digits test split has "
                         f"{len(x_test)} images")
    x, y = x_test[:images], y_test[:images]
    started = time.perf_counter()
    run = _eie_simulate if lowered.target == "eie" else _systolic_simulate
    if optimize is None:
        optimize = RTL_OPTIMIZE[lowered.target]
    result = run(lowered, x, backend, seed, console, optimize, prebuilt)
    float_predictions = forward(lowered.model, x).argmax(1)
    result.update({
        "target": lowered.target, "backend": backend, "model": lowered.meta["model"],
        "config": json.loads(json.dumps(lowered.meta["config"])), "images": images, "labels": y.tolist(),
        "accuracy": float(np.mean(np.array(result["predictions"]) == y)),
        "float_accuracy": float(np.mean(float_predictions == y)),
        "seconds": time.perf_counter() - started,
    })
    result["macs_per_cycle"] = result["macs_performed"] / result["cycles"] if result["cycles"] else 0.0
    result["utilization"] = result["macs_per_cycle"] / result["peak_macs_per_cycle"]
    (lowered.directory / f"simulation-{backend}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result

"""EIE as a front-door target: a compressed (weight-shared) model lowered to an EIE image
(:meth:`sparq.formats.eie.EieImage.save`), run per image on the golden and cycle models (:mod:`sparq.sim.eie`) or on
the EIE RTL, whose per-PE performance counters give the cycles and the load balance."""

import html
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..plots import figure, save
from ..progress import Progress, follow
from ..results import Measurement
from ..workspace import load_compressed, source_file
from .base import Lowered, Target

__all__ = ["EieTarget", "EieDetails", "EIE", "FIFO_DEPTHS"]

FIFO_DEPTHS = (1, 2, 4, 8, 16, 32, 64)
"""FIFO depths of the load-efficiency sweep (cycle model) stored with every EIE simulation."""


@dataclass
class EieDetails:
    """What an EIE run measures beyond :class:`sparq.results.Measurement`: the cycles of each image, the busy,
    starve and stall cycles of each PE (``{"busy": [...], "starve": [...], "stall": [...]}``), the load efficiency
    (busy PE cycles over ``n_pe`` times the compute cycles) and the cycle model's load efficiency at each FIFO depth
    of :data:`FIFO_DEPTHS` (keyed by the depth as text, as in the JSON)."""

    per_image_cycles: list[int]
    pe: dict[str, list[int]]
    load_efficiency: float
    fifo_sweep: dict[str, float]


def _sized_config(compressed, params):
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


class EieTarget(Target):
    name = "eie"
    label = "EIE (sparse)"
    color = "#1f77b4"
    defaults = {"n_pe": 4, "fifo_depth": 8}
    """The memory depths are sized to the image unless set."""
    details = EieDetails
    rtl_name = "EIE"
    rtl_optimize = False
    """Measured on the demo's configuration (4 PEs): the build takes 36 s at -O0 and 45 s at -O2, and a 20-image run
    is a few seconds either way."""

    @property
    def config_class(self):
        from sparq.formats.eie import EieConfig
        return EieConfig

    def flag_parameters(self, *, pes=None, fifo_depth=None, array=None, winograd=False):
        if array is not None:
            raise InputError("--array is a systolic parameter", "use --pes for EIE, --array with --target systolic")
        if winograd:
            raise InputError("--winograd is a systolic parameter", "lower with --target systolic --winograd")
        return {k: v for k, v in (("n_pe", pes), ("fifo_depth", fifo_depth)) if v is not None}

    def lower(self, source, params, data, *, batch=None):
        from sparq.compiler.eie import lower_compressed
        from sparq.compiler.errors import UnsupportedError
        if batch is not None:
            raise InputError("--batch is a systolic parameter", "EIE runs one image at a time; leave --batch out")
        with source_file(source):
            compressed = load_compressed(source)
            try:
                config = _sized_config(compressed, params)
                image = lower_compressed(compressed, config)
            except UnsupportedError as error:
                raise InputError(str(error), "EIE runs fully connected networks; lower this model with --target "
                                 "systolic") from None
            return self.lowered(source, config, compressed.model, image)

    def save(self, lowered, out):
        lowered.compiled.save(out)

    def read_image(self, record):
        from sparq.formats.eie import EieImage
        config = self.check_meta(record)
        image = EieImage.load(record.directory)
        manifest = json.loads(record.path("manifest.json").read_text())  # as checked by EieImage.load
        if image.config != config:
            raise InputError(f"{record.directory}: manifest.json is for {image.config} but sparq.json for {config}",
                             record.redo())
        self.check_files(record, {"manifest.json", *manifest["files"]}, "manifest.json")
        for name, entry in manifest["files"].items():
            if entry["sha256"] != record.files[name]["sha256"]:
                raise InputError(f"{record.path(name)}: manifest.json and sparq.json give it different SHA-256s",
                                 record.redo())
        return image

    def load(self, record, data):
        image = self.read_image(record)
        model = self.model_file(record, load_compressed).model
        return Lowered(self, record.directory, record.meta, image.config, model, image, record)

    def describe(self, lowered):
        image = lowered.compiled
        need = image.requirements()
        return [f"EIE image for {lowered.config}",
                f"  {len(image.layers)} layers, {image.input_len} inputs -> {image.output_len} outputs; per PE: "
                + ", ".join(f"{k} {v}" for k, v in need.items())]

    def component(self, config):
        from sparq.hw.eie import EIE as Design
        return Design(config)

    def simulate(self, lowered, x, options):
        from sparq.formats.eie import ACT_FRAC, to_fixed
        from sparq.sim.eie import Golden
        from sparq.sim.eie.cycle import run as cycle_run

        from ..activity import eie_activity
        from ..energy import eie_energy

        image, config, console = lowered.compiled, lowered.config, options.console
        golden = Golden(image)
        inputs = [to_fixed(v, ACT_FRAC) for v in x]
        traces, model_stats, activity = [], [], {}
        with Progress(console if options.backend == "golden" else None, "golden + cycle model, per image",
                      len(x)) as bar:
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
        if options.backend == "rtl":
            with tempfile.TemporaryDirectory(prefix="sparq-progress-") as tmp:
                progress_file = Path(tmp) / "done"
                with Progress(console, f"EIE RTL ({n} PEs), per image", len(x)) as bar:
                    rtl = follow(lambda: options.runner(
                        self.component(config), "sparq.rtl:eie_images", name=self.rtl_name,
                        optimize=options.optimize, image_dir=str(lowered.directory.resolve()),
                        inputs=[[int(v) for v in a] for a in inputs], seed=options.seed,
                        progress_file=str(progress_file)), progress_file, bar)
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
        weight_bytes = activity["spmat_words"] * 8 + activity["ptr_reads"] * config.ptr_width / 8
        return Measurement(
            predictions=[int(np.argmax(o)) for o in outputs], cycles=int(sum(cycles)),
            compute_cycles=int(sum(compute)), model_cycles=int(sum(model_cycles)), counter_source=counter_source,
            activity=activity, macs_performed=activity["entries"], useful_macs=activity["useful_macs"],
            peak_macs_per_cycle=n, weight_bytes=weight_bytes,
            bandwidth_bytes_per_cycle=n * (8 + 2 * config.ptr_width / 8),
            bandwidth_basis="per PE per cycle: one 64-bit sparse-matrix word and two pointers",
            energy=eie_energy(activity, config.ptr_width),
            details=EieDetails(
                per_image_cycles=[int(c) for c in cycles], pe=pe,
                load_efficiency=sum(pe["busy"]) / (n * sum(compute)) if sum(compute) else 1.0,
                fifo_sweep={str(k): v for k, v in sweep.items()}))

    def summary_rows(self, result):
        d = result.details
        rows = [("load efficiency", f"{100 * d.load_efficiency:.1f}% (compute cycles {result.compute_cycles:,}; "
                                    f"cycle model {result.model_cycles:,})")]
        return rows + [(f"PE {k}", f"busy {b:,}  starve {s:,}  stall {t:,}")
                       for k, (b, s, t) in enumerate(zip(d.pe["busy"], d.pe["starve"], d.pe["stall"]))]

    def config_text(self, result):
        return f"{result.config['n_pe']} PEs, FIFO {result.config['fifo_depth']}"

    def memory_words(self, result):
        return sum(result.activity[k] for k in ("spmat_words", "ptr_reads", "codebook_reads", "acc_reads",
                                                "act_reads", "bias_reads"))

    def report_sections(self, result, out):
        c, d = result.config, result.details
        text = (f"{c['n_pe']} PEs, FIFO depth {c['fifo_depth']}: load efficiency {100 * d.load_efficiency:.1f}% over "
                f"{result.images} images ({result.counter_source}; the cycle model predicts "
                f"{result.model_cycles:,} compute cycles, the run counted {result.compute_cycles:,}).")
        return [("EIE load balance", text, f"<p>{html.escape(text)}</p>",
                 [self._plot_load_balance(result, out / "eie_load_balance.png")])]

    def _plot_load_balance(self, result, path):
        fig, (ax, ax2) = figure(10, 3.6, ncols=2)
        pe, sweep = result.details.pe, result.details.fifo_sweep
        n = len(pe["busy"])
        x = np.arange(n)
        ax.bar(x - 0.2, pe["busy"], 0.4, label="busy", color="#2ca02c")
        ax.bar(x - 0.2, pe["starve"], 0.4, bottom=pe["busy"], label="starve (FIFO empty)", color="#ff7f0e")
        ax.bar(x + 0.2, pe["stall"], 0.4, label="broadcast stalled (FIFO full)", color="#9467bd")
        ax.set_xticks(x, [f"PE {k}" for k in range(n)])
        ax.set_ylabel(f"cycles over {result.images} images")
        ax.set_title(f"EIE load balance ({result.counter_source})", fontsize=9)
        ax.legend(fontsize=7)
        depths = sorted(sweep, key=int)
        ax2.plot([int(d) for d in depths], [sweep[d] for d in depths], "o-", color=self.color)
        ax2.axvline(result.config["fifo_depth"], color="grey", linestyle=":", label="built depth")
        ax2.set_xscale("log", base=2)
        ax2.set_ylim(0, 1.05)
        ax2.set_xlabel("FIFO depth")
        ax2.set_ylabel("load efficiency")
        ax2.set_title("Efficiency against FIFO depth (cycle model, same images)", fontsize=9)
        ax2.legend(fontsize=7)
        return save(fig, path)


EIE = EieTarget()

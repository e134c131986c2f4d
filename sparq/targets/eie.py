"""EIE as a front-door target: a compressed (weight-shared) model lowered to an EIE image
(:meth:`sparq.formats.eie.EieImage.save`), run per image on the golden and cycle models (:mod:`sparq.sim.eie`) or on
the EIE RTL, whose per-PE performance counters give the cycles and the load balance.

EIE runs the model's trailing fully connected layers; whatever comes before them (a CNN's convolutions and pools)
runs on the host in float, as in the EIE paper (:func:`sparq.compiler.eie.eie_split` with ``host_prefix``), and the
lowering's record names those layers. The activations are calibrated on the lowering's data (its input and output
scales are in the image), and every run converts its float inputs through the host layers and the image's input
scale (:func:`sparq.compiler.eie.eie_inputs`), golden and RTL alike. ``sparq lower`` prints the image's own size by
memory against float32 and the Deep Compression figures (:func:`sparq.compiler.eie.image_storage`), and the report
explains the difference."""

import html
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import load
from ..errors import InputError
from ..plots import figure, save
from ..progress import Progress, follow
from ..results import Measurement
from ..workspace import COMPRESSION, load_compressed, source_file
from .base import Lowered, Target

__all__ = ["EieTarget", "EieDetails", "EIE", "FIFO_DEPTHS"]

FIFO_DEPTHS = (1, 2, 4, 8, 16, 32, 64)
"""FIFO depths of the load-efficiency sweep (cycle model) stored with every EIE simulation."""


@dataclass
class EieDetails:
    """What an EIE run measures beyond :class:`sparq.results.Measurement`: the cycles of each image, the busy,
    starve and stall cycles of each PE (``{"busy": [...], "starve": [...], "stall": [...]}``), the load efficiency
    (busy PE cycles over ``n_pe`` times the compute cycles), the cycle model's load efficiency at each FIFO depth
    of :data:`FIFO_DEPTHS` (keyed by the depth as text, as in the JSON) and the layer outputs that saturated Q8.8
    (summed over the layers and images; the calibration keeps this at 0 on data like its own)."""

    per_image_cycles: list[int]
    pe: dict[str, list[int]]
    load_efficiency: float
    fifo_sweep: dict[str, float]
    saturated: int


def _sized_config(compressed, params):
    """The EieConfig of ``params``; memory depths it does not set are sized to what the image needs."""
    from sparq.compiler.eie import lower_compressed
    from sparq.formats.eie import EieConfig
    depths = ("ptr_depth", "spmat_depth", "act_depth", "bias_depth", "max_layers")
    if all(name in params for name in depths):
        return EieConfig(**params)
    roomy = EieConfig(**{**params, "ptr_depth": 1 << 20, "spmat_depth": 1 << 20, "act_depth": 1 << 16,
                        "bias_depth": 1 << 16, "max_layers": 64})
    need = lower_compressed(compressed, roomy, host_prefix=True).requirements()
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

    meta_fields = {"host_layers": list, "storage": dict}

    def lower(self, source, params, data, *, batch=None):
        from sparq.compiler.eie import eie_split, image_storage, lower_compressed
        from sparq.compiler.errors import UnsupportedError
        from sparq.compiler.ir import Flatten, Reshape
        if batch is not None:
            raise InputError("--batch is a systolic parameter", "EIE runs one image at a time; leave --batch out")
        with source_file(source) as record:
            compressed = load_compressed(source)
            used = load(data, compressed.model, source)
            calibration_x, calibration = used.calibration()
            try:
                host, _ = eie_split(compressed.model, host_prefix=True)
                config = _sized_config(compressed, params)
                image = lower_compressed(compressed, config, calibration_x=calibration_x, host_prefix=True)
            except UnsupportedError as error:
                raise InputError(str(error), "EIE runs fully connected networks; lower this model with --target "
                                 "systolic") from None
            report = None
            if record is not None and COMPRESSION in record.files:
                report = json.loads(record.path(COMPRESSION).read_text())
            host_layers = [layer.name for layer in host if not isinstance(layer, (Flatten, Reshape))]
            return self.lowered(source, config, compressed.model, image, used, calibration, host_layers=host_layers,
                                storage=image_storage(image, report))

    def save(self, lowered, out):
        lowered.compiled.save(out)

    def inputs(self, lowered, x):
        """The Q8.8 input vectors of the float inputs ``x``: through the host layers and the image's input scale."""
        from sparq.compiler.eie import eie_inputs
        return eie_inputs(lowered.model, lowered.compiled, x, host_prefix=True)

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

    def load(self, record):
        image = self.read_image(record)
        model = self.model_file(record, load_compressed).model
        return Lowered(self, record.directory, record.meta, image.config, model, image, record)

    def describe(self, lowered):
        from sparq.compiler.eie import storage_lines
        image, meta = lowered.compiled, lowered.meta
        need = image.requirements()
        host = meta["host_layers"]
        scales = f"input scale {image.input_scale:g}, output scale {image.output_scale:g}"
        return [f"EIE image for {lowered.config}",
                f"  {len(image.layers)} layers, {image.input_len} inputs -> {image.output_len} outputs; per PE: "
                + ", ".join(f"{k} {v}" for k, v in need.items()),
                f"  {meta['calibration']}: {scales}",
                *([f"  the host runs {', '.join(host)} in float (EIE runs the fully connected layers after them)"]
                  if host else []),
                *(f"  {line}" for line in storage_lines(meta["storage"]))]

    def component(self, config):
        from sparq.hw.eie import EIE as Design
        return Design(config)

    def simulate(self, lowered, x, options):
        from sparq.sim.eie import Golden
        from sparq.sim.eie.cycle import RTL_LATENCY
        from sparq.sim.eie.cycle import run as cycle_run

        from ..activity import eie_activity
        from ..energy import eie_energy

        image, config, console = lowered.compiled, lowered.config, options.console
        golden = Golden(image)
        inputs = list(self.inputs(lowered, x))
        traces, model_stats, activity = [], [], {}
        with Progress(console if options.backend == "golden" else None, "golden + cycle model, per image",
                      len(x)) as bar:
            for number, a in enumerate(inputs):
                trace = golden.run(a)
                traces.append(trace)
                model_stats.append(cycle_run(image, a, golden=golden, **RTL_LATENCY))
                for key, value in eie_activity(golden, trace).items():
                    activity[key] = activity.get(key, 0) + value
                bar.update(number + 1)
        golden_outputs = outputs = [t.output for t in traces]
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
            for number, (got, expected) in enumerate(zip(outputs, golden_outputs)):  # the body checked them too
                if not np.array_equal(got, expected):
                    first = int(np.flatnonzero(got != expected)[0])
                    raise AssertionError(f"EIE RTL, input {number}: output {first} is {got[first]}, the golden model "
                                         f"says {expected[first]}")
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
                for stats in cycle_run(image, a, fifo_depth=depth, golden=golden, **RTL_LATENCY):
                    busy += int(stats.busy.sum())
                    total += stats.total * n
            sweep[depth] = busy / total if total else 1.0
        weight_bytes = activity["spmat_words"] * 8 + activity["ptr_reads"] * config.ptr_width / 8
        return Measurement(
            predictions=[int(np.argmax(o)) for o in outputs], outputs=image.outputs(np.array(outputs)),
            cycles=int(sum(cycles)),
            compute_cycles=int(sum(compute)), model_cycles=int(sum(model_cycles)), counter_source=counter_source,
            activity=activity, macs_performed=activity["entries"], useful_macs=activity["useful_macs"],
            peak_macs_per_cycle=n, weight_bytes=weight_bytes,
            bandwidth_bytes_per_cycle=n * (8 + 2 * config.ptr_width / 8),
            bandwidth_basis="per PE per cycle: one 64-bit sparse-matrix word and two pointers",
            energy=eie_energy(activity, config.ptr_width),
            details=EieDetails(
                per_image_cycles=[int(c) for c in cycles], pe=pe,
                load_efficiency=sum(pe["busy"]) / (n * sum(compute)) if sum(compute) else 1.0,
                fifo_sweep={str(k): v for k, v in sweep.items()},
                saturated=int(sum(sum(t.saturated) for t in traces))))

    def summary_rows(self, result):
        d = result.details
        rows = [("load efficiency", f"{100 * d.load_efficiency:.1f}% (compute cycles {result.compute_cycles:,}; "
                                    f"cycle model {result.model_cycles:,})")]
        if d.saturated:
            rows.append(("saturated", f"{d.saturated:,} layer outputs clipped to Q8.8 (the inputs go beyond the "
                                      "calibration data: lower again calibrating on data like these)"))
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

    def lowering_sections(self, meta, out):
        storage = meta["storage"]
        try:
            memories, total = storage["memories"], storage["total_bits"]
            header = ["memory", "bytes", "share"]
            rows = [[name.replace("_", " "), f"{bits / 8:,.0f}", f"{100 * bits / total:.1f}%"]
                    for name, bits in memories.items()]
            rows.append(["EIE image", f"{total / 8:,.0f}", f"{storage['ratio']:.1f}x smaller than float32 "
                                                              f"({storage['float32_bits'] / 8:,.0f} bytes)"])
            text = (f"The EIE image for {storage['n_pe']} PEs, by memory, as the hardware holds it: {total / 8:,.0f} bytes, "
                    f"{storage['ratio']:.1f}x smaller than the float32 weights and biases.")
            if "deep_compression" in storage:
                dc = storage["deep_compression"]
                for label, key in (("Deep Compression, pruned", "pruned"), ("pruned + quantized", "quantized"),
                                   ("pruned + quantized + Huffman", "huffman")):
                    rows.append([label, f"{dc[key] / 8:,.0f}", f"{storage['deep_compression_ratio'][key]:.1f}x "
                                                               "smaller than float32"])
                text += (f" Deep Compression counts the same layers at {dc['quantized'] / 8:,.0f} bytes pruned and "
                         f"quantized ({dc['huffman'] / 8:,.0f} with Huffman coding): the image is "
                         f"{total / dc['quantized']:.2f}x that. ")
            else:
                text += " "
            text += ("The difference is the price of parallel random access. Deep Compression stores a layer as one "
                     "stream of 4-bit codes and relative indices, nothing per column. EIE interleaves the rows over "
                     "the PEs, and every PE needs a start pointer for every column of every layer, however few of "
                     "the layer's rows it owns: pointers are "
                     f"{100 * memories['pointers'] / total:.0f}% of this image. They dominate when a layer is short "
                     "and wide (a classifier's last layer on many PEs has under one non-zero per column per PE, and "
                     "each of its in_len + 1 pointers per PE costs more bits than the entries it points to). The "
                     "sparse matrix adds a padding entry for every run of more than 15 zeros in a PE's slice of a "
                     "column and pads every PE to the fullest PE's length, and the biases are kept per PE-local row "
                     "as 16-bit words.")
            png = self._plot_storage(storage, out / "eie_storage.png")
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
            raise InputError(f"the EIE lowering's record holds storage figures this sparq does not read "
                             f"({type(error).__name__} {error})", "lower the model again with `sparq lower`") from None
        md = text + "\n\n" + "| " + " | ".join(header) + " |\n|---|---|---|\n" + "\n".join(
            "| " + " | ".join(row) + " |" for row in rows)
        page = f"<p>{html.escape(text)}</p><table><thead><tr>" + "".join(f"<th>{h}</th>" for h in header) + \
            "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                                             for row in rows) + "</tbody></table>"
        return [("EIE image storage", md, page, [png])]

    def _plot_storage(self, storage, path):
        fig, (ax, ax2) = figure(10, 3.4, ncols=2)
        totals = [("float32", storage["float32_bits"], "#7f7f7f")]
        for key, label in (("pruned", "DC pruned"), ("quantized", "DC pruned + quantized"),
                           ("huffman", "DC + Huffman")):
            if "deep_compression" in storage:
                totals.append((label, storage["deep_compression"][key], "#bcbd22"))
        totals.append((f"EIE image ({storage['n_pe']} PEs)", storage["total_bits"], self.color))
        for row, (_, bits, color) in enumerate(totals):
            ax.barh(row, bits / 8, color=color)
            ax.annotate(f" {bits / 8:,.0f} B", (bits / 8, row), va="center", fontsize=8)
        ax.set_xscale("log")
        ax.set_yticks(range(len(totals)), [label for label, _, _ in totals])
        ax.set_xlabel("bytes (log)")
        ax.set_title("The same layers: float32, Deep Compression's count, the EIE image", fontsize=9)
        ax.margins(x=0.2)
        memories = storage["memories"]
        names = list(memories)
        ax2.bar([n.replace("_", "\n") for n in names], [memories[n] / 8 for n in names],
                color=["#d62728", self.color, "#2ca02c", "#9467bd", "#8c564b"][:len(names)])
        for k, name in enumerate(names):
            ax2.annotate(f"{100 * memories[name] / storage['total_bits']:.0f}%", (k, memories[name] / 8),
                         ha="center", va="bottom", fontsize=8)
        ax2.set_ylabel("bytes")
        ax2.set_title("The EIE image by memory", fontsize=9)
        ax2.margins(y=0.15)
        return save(fig, path)

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

"""The systolic array as a front-door target: a float or compressed model compiled to one program per device step
(``sparq.formats.systolic.save_program``, ``.npz``, with its listing, ``.lst``), run per device call on the golden
model (:mod:`sparq.sim.systolic.golden`, cycles from the analytic model) or on the accelerator's RTL.

A run executes the programs in the lowered directory, as a board would: loading compiles the model again only for
its host steps (im2col, pooling, reshapes) and quantization scales, and each device step runs the program read from
disk (checked against the record). A program is for ``batch`` images per call; a run of fewer images pads its last
call with blank images, whose work the counters include.
"""

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import load
from ..errors import InputError
from ..progress import Progress, follow, status
from ..results import Measurement
from ..workspace import load_float, source_file
from .base import Lowered, Target

__all__ = ["SystolicTarget", "SystolicDetails", "SYSTOLIC"]


@dataclass
class SystolicDetails:
    """What a systolic run measures beyond :class:`sparq.results.Measurement`: the accelerator's counters summed over
    the device calls (``cycles``, ``mac_busy``, ``stall_cycles``, ``active_cycles``), the number of device calls and
    the batch (images per call) of the program, the blank images that padded the last call, the share of cycles the
    array was busy, and the dense MACs of the network's GEMMs on the test images (every weight, zero or not)."""

    counters: dict[str, int]
    device_calls: int
    batch: int
    padding_images: int
    array_busy: float
    dense_macs: int


_PROGRAM_ENTRY = {"step": str, "program": str, "listing": str, "instructions": int, "rows": int}


def _device_steps(network):
    return [step for step in network.steps if hasattr(step, "program")]  # DeviceStep and WinogradStep


class SystolicTarget(Target):
    name = "systolic"
    label = "systolic (dense int8)"
    color = "#d62728"
    defaults = {"rows": 4, "cols": 4, "ub_depth": 4096, "wb_depth": 16384, "acc_depth": 512}
    """A 4x4 array whose weight buffer holds the digits MLP's int8 weights (about 12,600 words at 4 lanes)."""
    details = SystolicDetails
    rtl_name = "SystolicAccelerator"
    rtl_optimize = True
    """Measured on the demo's 4x4 array: the build takes about the same time at -O0 and -O2 (44 s, 42 s), and its
    78,000-cycle run is cocotb- and model-bound (39 s at -O0, 24 s at -O2 on the same loaded machine)."""

    @property
    def config_class(self):
        from sparq.formats.systolic import SystolicConfig
        return SystolicConfig

    def flag_parameters(self, *, pes=None, fifo_depth=None, array=None, winograd=False):
        if pes is not None or fifo_depth is not None:
            raise InputError("--pes and --fifo-depth are EIE parameters", "use --array N for the systolic array")
        flags = {"rows": array, "cols": array} if array is not None else {}
        return flags | ({"winograd": True} if winograd else {})

    meta_fields = {"batch": int, "programs": list, "summary": str}

    def _compile(self, model, config, data, name, batch=None):
        from sparq.compiler.systolic import compile_network
        x, _ = data.calibration()
        if x is None:
            raise InputError("the systolic array runs int8, whose scales are calibrated on data, and this model has "
                             "none", "give the data to calibrate on with --data FILE.npz (x alone will do)")
        return compile_network(model, x, config, name=name, batch=batch, winograd=config.winograd)

    def lower(self, source, params, data, *, batch=None):
        if batch is not None and batch < 1:
            raise InputError(f"--batch {batch} is not a number of images", "give --batch 1 or more")
        with source_file(source):
            model = load_float(source)
            used = load(data, model, source)
            config = self.config_class(**params)
            name = Path(source).stem
            network = self._compile(model, config, used, name)
            if batch is not None and batch < network.batch:
                network = self._compile(model, config, used, name, batch=batch)
            programs = []
            for step in _device_steps(network):
                rows = network.batch * step.rows_per_image
                stem = f"{len(programs):02d}_" + re.sub(r"[^A-Za-z0-9_-]", "_", step.name)
                programs.append({"step": step.name, "program": f"{stem}.npz", "listing": f"{stem}.lst",
                                 "instructions": len(step.program(rows).instructions), "rows": rows})
            return self.lowered(source, config, model, network, used, used.calibration()[1], batch=network.batch,
                                programs=programs, summary=network.summary())

    def save(self, lowered, out):
        from sparq.formats.systolic import save_program
        network = lowered.compiled
        for step, entry in zip(_device_steps(network), lowered.meta["programs"]):
            program = step.program(entry["rows"])
            save_program(program, out / entry["program"])
            (out / entry["listing"]).write_text(program.listing() + "\n")

    def _entries(self, record):
        entries = record.meta["programs"]
        if not all(isinstance(e, dict) and set(e) == set(_PROGRAM_ENTRY) and all(
                isinstance(e[k], t) and not isinstance(e[k], bool) for k, t in _PROGRAM_ENTRY.items())
                for e in entries) or not entries or record.meta["batch"] < 1:
            raise InputError(f"{record.path('sparq.json')}: its program list or batch is not what sparq lower "
                             "writes", record.redo())
        return entries

    def read_image(self, record):
        from sparq.formats.systolic import load_program
        config = self.check_meta(record)
        entries = self._entries(record)
        self.check_files(record, {name for e in entries for name in (e["program"], e["listing"])},
                         "its program list")
        programs = []
        for entry in entries:
            program = load_program(record.path(entry["program"]))
            if program.config != config or len(program.instructions) != entry["instructions"]:
                raise InputError(f"{record.path(entry['program'])}: {len(program.instructions)} instructions for "
                                 f"{program.config}, but sparq.json says {entry['instructions']} for {config}",
                                 record.redo())
            programs.append(program)
        return programs

    def load(self, record):
        programs = self.read_image(record)
        model = self.model_file(record, load_float)
        config = programs[0].config
        lowered = Lowered(self, record.directory, record.meta, config, model, None, record)
        network = self._compile(model, config, self.data_of(lowered), Path(record.meta["model"]).stem,
                                batch=record.meta["batch"])
        steps, entries = _device_steps(network), self._entries(record)
        if [s.name for s in steps] != [e["step"] for e in entries] or any(
                e["rows"] != network.batch * s.rows_per_image for s, e in zip(steps, entries)):
            raise InputError(f"{record.directory}: its programs are not for the device steps of {record.meta['model']}"
                             f" ({', '.join(s.name for s in steps)}, {network.batch} images per call)", record.redo())
        for step, entry, program in zip(steps, entries, programs):
            step._programs = {entry["rows"]: program}  # the step's program cache: it runs the program from disk
        lowered.compiled = network
        return lowered

    def describe(self, lowered):
        return [lowered.meta["summary"], f"  {lowered.meta['calibration']}"] + [
            f"  {program['program']}: {program['instructions']} instructions for {program['rows']} rows "
            f"(listing {program['listing']})" for program in lowered.meta["programs"]]

    def component(self, config):
        from sparq.hw.systolic.accelerator import SystolicAccelerator
        return SystolicAccelerator(config)

    def simulate(self, lowered, x, options):
        from sparq.sim.systolic.cycles import predict
        from sparq.sim.systolic.golden import run_network

        from ..activity import layer_macs, systolic_activity
        from ..energy import systolic_energy

        network, config, console = lowered.compiled, lowered.config, options.console
        files = {id(step.program(entry["rows"])): lowered.directory / entry["program"]
                 for step, entry in zip(_device_steps(network), lowered.meta["programs"])}
        padding = -len(x) % network.batch
        padded = np.concatenate([x, np.zeros((padding, *x.shape[1:]), dtype=x.dtype)])
        with status(console if options.backend == "golden" else None, "systolic golden model..."):
            logits, log = run_network(network, padded)
        programs = [program for program, _, _ in log]
        if any(id(program) not in files for program in programs):
            raise RuntimeError("sparq bug: a device call ran a program that is not one of the lowered directory's")
        estimates = [predict(config, p.instructions) for p in programs]
        if options.backend == "rtl":
            with tempfile.TemporaryDirectory(prefix="sparq-systolic-") as tmp:
                runs = []
                for number, (program, words, _) in enumerate(log):
                    np.save(Path(tmp) / f"call{number}.npy", words)
                    runs.append({"program": str(files[id(program)].resolve()),
                                 "inputs": str(Path(tmp) / f"call{number}.npy"), "seed": options.seed + number})
                progress_file = Path(tmp) / "done"
                with Progress(console, f"systolic RTL ({config.rows}x{config.cols}), per device call "
                              f"({network.batch} images each)", len(runs)) as bar:
                    calls = follow(lambda: options.runner(
                        self.component(config), "sparq.rtl:systolic_calls", name=self.rtl_name,
                        optimize=options.optimize, runs=runs, progress_file=str(progress_file)), progress_file, bar)
            counters = {k: int(sum(c[k] for c in calls))
                        for k in ("cycles", "mac_busy", "stall_cycles", "active_cycles")}
            counter_source = "RTL performance counters"
        else:
            counters = {"cycles": sum(e.cycles for e in estimates), "mac_busy": sum(e.mac_busy for e in estimates),
                        "stall_cycles": 0, "active_cycles": sum(e.active_cycles for e in estimates)}
            counter_source = "analytic cycle model (sparq.sim.systolic.cycles)"
        activity = systolic_activity(programs)
        dense, nonzero = layer_macs(network, len(x))
        lanes = config.lanes
        return Measurement(
            predictions=[int(v) for v in logits[:len(x)].argmax(1)],
            outputs=logits[:len(x)].astype(np.float64) * network.output_scale, cycles=counters["cycles"],
            compute_cycles=counters["cycles"] - counters["stall_cycles"],
            model_cycles=int(sum(e.cycles for e in estimates)), counter_source=counter_source,
            activity=activity, macs_performed=activity["mac_slots"], useful_macs=nonzero,
            peak_macs_per_cycle=config.rows * config.cols, weight_bytes=activity["host_weight_words"] * lanes,
            bandwidth_bytes_per_cycle=lanes,
            bandwidth_basis=f"the host_in port: one {lanes}-byte word per cycle (weights are streamed on every call)",
            energy=systolic_energy(activity, lanes, config.cols),
            details=SystolicDetails(
                counters=counters, device_calls=len(programs), batch=network.batch, padding_images=padding,
                array_busy=counters["mac_busy"] / counters["cycles"] if counters["cycles"] else 0.0,
                dense_macs=dense))

    def summary_rows(self, result):
        c, d = result.details.counters, result.details
        padding = f", {d.padding_images} of them blank padding" if d.padding_images else ""
        return [("counters", f"cycles {c['cycles']:,}  mac_busy {c['mac_busy']:,}  stall {c['stall_cycles']:,}  "
                             f"active {c['active_cycles']:,}"),
                ("device calls", f"{d.device_calls} of {d.batch} images each{padding} "
                                 f"(analytic model: {result.model_cycles:,} cycles)")]

    def config_text(self, result):
        return f"{result.config['rows']}x{result.config['cols']} array, {result.details.batch} images per call"

    def memory_words(self, result):
        a = result.activity
        return a["ub_reads"] + a["wb_reads"] + a["acc_reads"] + a["host_weight_words"] + a["host_input_words"]


SYSTOLIC = SystolicTarget()

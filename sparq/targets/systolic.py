"""The systolic array as a front-door target: a float or compressed model compiled to one program per device step
(``sparq.formats.systolic.save_program``, ``.npz``, with its listing, ``.lst``), run per device call on the golden
model (:mod:`sparq.sim.systolic.golden`, cycles from the analytic model) or on the accelerator's RTL.

``sparq.json`` records the model file and its SHA-256: loading compiles the model again (deterministic) rather than
reading the programs back, so the run has the whole network, host steps included.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..progress import Progress, follow, status
from ..results import Measurement
from ..workspace import load_float
from .base import Lowered, Target

__all__ = ["SystolicTarget", "SystolicDetails", "SYSTOLIC"]


@dataclass
class SystolicDetails:
    """What a systolic run measures beyond :class:`sparq.results.Measurement`: the accelerator's counters summed over
    the device calls (``cycles``, ``mac_busy``, ``stall_cycles``, ``active_cycles``), the number of device calls and
    the batch (images per call) of the program, the share of cycles the array was busy, and the dense MACs of the
    network's GEMMs (every weight, zero or not)."""

    counters: dict[str, int]
    device_calls: int
    batch: int
    array_busy: float
    dense_macs: int


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

    def _compile(self, model, config, data, name, batch=None):
        from sparq.compiler.systolic import compile_network
        return compile_network(model, data.x_train, config, name=name, batch=batch, winograd=config.winograd)

    def lower(self, source, params, out, data):
        from sparq.formats.systolic import save_program
        model = load_float(source)
        data.check_input(model, source)
        config = self.config_class(**params)
        network = self._compile(model, config, data, Path(source).stem)
        out = Path(out)
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
        return self.lowered(out, source, config, model, network, batch=network.batch, programs=programs,
                            summary=network.summary())

    def load(self, directory, meta, data):
        model_path = Path(meta["model"])
        model = load_float(model_path)
        config = self.config_class(**meta["config"])
        network = self._compile(model, config, data, model_path.stem, batch=meta["batch"])
        return Lowered(self, Path(directory), meta, config, model, network)

    def describe(self, lowered):
        return [lowered.meta["summary"]] + [
            f"  {program['program']}: {program['instructions']} instructions for {program['rows']} rows "
            f"(listing {program['listing']})" for program in lowered.meta["programs"]]

    def component(self, config):
        from sparq.hw.systolic.accelerator import SystolicAccelerator
        return SystolicAccelerator(config)

    def simulate(self, lowered, x, options):
        from sparq.formats.systolic import save_program
        from sparq.sim.systolic.cycles import predict
        from sparq.sim.systolic.golden import run_network

        from ..activity import layer_macs, systolic_activity
        from ..energy import systolic_energy

        network, config, console = lowered.compiled, lowered.config, options.console
        with status(console if options.backend == "golden" else None, "systolic golden model..."):
            logits, log = run_network(network, x)
        programs = [program for program, _, _ in log]
        estimates = [predict(config, p.instructions) for p in programs]
        if options.backend == "rtl":
            with tempfile.TemporaryDirectory(prefix="sparq-systolic-") as tmp:
                runs = []
                for number, (program, words, _) in enumerate(log):
                    save_program(program, Path(tmp) / f"call{number}.npz")
                    np.save(Path(tmp) / f"call{number}.npy", words)
                    runs.append({"program": str(Path(tmp) / f"call{number}.npz"),
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
            predictions=[int(v) for v in logits.argmax(1)], cycles=counters["cycles"],
            compute_cycles=counters["cycles"] - counters["stall_cycles"],
            model_cycles=int(sum(e.cycles for e in estimates)), counter_source=counter_source,
            activity=activity, macs_performed=activity["mac_slots"], useful_macs=nonzero,
            peak_macs_per_cycle=config.rows * config.cols, weight_bytes=activity["host_weight_words"] * lanes,
            bandwidth_bytes_per_cycle=lanes,
            bandwidth_basis=f"the host_in port: one {lanes}-byte word per cycle (weights are streamed on every call)",
            energy=systolic_energy(activity, lanes, config.cols),
            details=SystolicDetails(
                counters=counters, device_calls=len(programs), batch=network.batch,
                array_busy=counters["mac_busy"] / counters["cycles"] if counters["cycles"] else 0.0,
                dense_macs=dense))

    def summary_rows(self, result):
        c, d = result.details.counters, result.details
        return [("counters", f"cycles {c['cycles']:,}  mac_busy {c['mac_busy']:,}  stall {c['stall_cycles']:,}  "
                             f"active {c['active_cycles']:,}"),
                ("device calls", f"{d.device_calls} of up to {d.batch} images "
                                 f"(analytic model: {result.model_cycles:,} cycles)")]

    def config_text(self, result):
        return f"{result.config['rows']}x{result.config['cols']} array, up to {result.details.batch} images per call"

    def memory_words(self, result):
        a = result.activity
        return a["ub_reads"] + a["wb_reads"] + a["acc_reads"] + a["host_weight_words"] + a["host_input_words"]


SYSTOLIC = SystolicTarget()

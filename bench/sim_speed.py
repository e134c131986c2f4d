"""Simulator speed: the native runner, cocotb + Verilator and Amaranth's Python simulator, measured in one run.

Workloads, each checked against its golden model:

* **EIE, 16 and 64 PEs** (FIFO depth 8; 16 PEs at the default memory depths, 64 PEs in ``bench/eie_table3_rtl.py``'s
  configuration, whose build the two benches share): a random layer at 10 % weight density (1024 outputs; 1024
  inputs at 16 PEs, 256 at 64 PEs, where the Python-driven load of the cocotb path runs at a few hundred cycles a
  second and an image has 64 pointers per column), loaded (image, then each input) through the ``load`` stream,
  8 dense inputs, each run and read back. Rates per phase: **load** (the host stream, one word
  a cycle: under cocotb a Python agent drives every cycle), **free running** (``start`` to ``done``: cocotb waits in
  256-cycle steps, the native driver ticks) and the **job** (load, runs and read-outs together, with the Python
  around them on both runners: reading the image files, packing the words, the golden model and the comparison --
  the number a user sees).
* **Systolic 8x8**: a random 128x64x32 GEMM program streamed through the instruction, ``host_in`` and ``host_out``
  ports (every port driven or watched every cycle, on both runners).
* **Amaranth's simulator, EIE 16 PEs**: a small job (a 64x64 layer) for the ratio.
* The earlier two: a free-running MAC and a Python-driven stream FIFO, on Verilator (cocotb) and Amaranth.

Every rate is simulated cycles over wall seconds of that phase, after the build, the fastest of ``--repeat`` runs
(default 3: on a shared machine the slow runs measure the neighbours); the build time (or the lookup, if the build
was cached before the run) and a second, cached lookup are reported apart. Prints a table and writes
``bench/results/sim_speed.json`` with top-level ``eie16_native_cycles_per_second``,
``eie64_native_cycles_per_second``, ``eie16_cocotb_cycles_per_second`` (whole jobs, host loads included) and
``native_over_cocotb`` (their ratio at 16 PEs), and the load average (the machine is shared: absolute rates are
noise, ratios measured in one run are the numbers to read).

    .venv/bin/python bench/sim_speed.py [--cycles 200000] [--items 5000] [--no-eie64] [--repeat 3]
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eie_paper import CONFIG as EIE64_CONFIG  # noqa: E402

from sparq.compiler.eie import LayerSpec, lower  # noqa: E402
from sparq.formats.eie import EieConfig  # noqa: E402
from sparq.formats.systolic import save_program  # noqa: E402
from sparq.hw.common.fifo import StreamFIFO  # noqa: E402
from sparq.hw.eie import EIE  # noqa: E402
from sparq.hw.systolic.accelerator import SystolicAccelerator  # noqa: E402
from sparq.sim.golden.mac import accumulate  # noqa: E402
from sparq.sim.harness import build_verilator, run_amaranth, run_verilator  # noqa: E402
from sparq.sim.native import eie as native_eie  # noqa: E402
from sparq.sim.native.build import build_native  # noqa: E402
from sparq.sim.native.systolic import Accelerator  # noqa: E402
from sparq.sim.stimulus import FreeRunningMAC, lfsr_operands  # noqa: E402
from sparq.sim.systolic.stimulus import config_for, random_gemm  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "sim_speed.json"
EIE_BODY = "sparq.sim.tb.eie:run_network"
INPUTS = 8


def measure(make_dut, body, check, **params):
    """Run ``body`` on both simulators; return {simulator: cycles per second} after checking each result."""
    dut = make_dut()
    build_verilator(dut, name=type(dut).__name__)  # build outside the timed part
    rates = {}
    for simulator, run in (("verilator", run_verilator), ("amaranth", run_amaranth)):
        timed = run(make_dut(), "sparq.sim.tb:timed", inner=body, **params)
        check(timed["result"])
        rates[simulator] = {"cycles": timed["cycles"], "seconds": round(timed["seconds"], 4),
                            "cycles_per_second": round(timed["cycles"] / timed["seconds"], 1)}
    rates["ratio"] = round(rates["verilator"]["cycles_per_second"] / rates["amaranth"]["cycles_per_second"], 2)
    return rates


def _rate(cycles, seconds):
    return {"cycles": int(cycles), "seconds": round(seconds, 4), "cycles_per_second": round(cycles / seconds, 1)}


def _build_and_lookup(build):
    """Seconds of ``build()`` (a build, or a lookup if it was cached before this run) and of a second call (the
    cached lookup: design key, cache directory, no Verilog)."""
    times = []
    for _ in range(2):
        started = time.perf_counter()
        build()
        times.append(round(time.perf_counter() - started, 2))
    return times


def eie_layer(folder, config, rows, columns, seed, inputs=INPUTS):
    """A random layer at 10 % and ``inputs`` dense inputs: ``(image_dir, inputs)``."""
    rng = np.random.default_rng(seed)
    codes = (rng.random((rows, columns)) < 0.1) * rng.integers(1, 16, (rows, columns))
    codebook = np.r_[0.0, np.sort(rng.uniform(-1, 1, 15))]
    image = lower([LayerSpec(codes, codebook, rng.normal(0, 0.5, rows), relu=True)], config)
    xs = [[int(v) for v in rng.integers(-2000, 2000, columns)] for _ in range(inputs)]
    return str(image.save(Path(folder) / f"eie{config.n_pe}-{rows}x{columns}")), xs


def _best(runs):
    """The fastest of ``runs`` (dicts of :func:`_rate` results with equal cycles), phase by phase."""
    return {phase: min((run[phase] for run in runs), key=lambda rate: rate["seconds"]) for phase in runs[0]}


def eie_native(config, job, repeat):
    """Build (timed apart), then the job ``repeat`` times; the fastest rate of each phase."""
    build, lookup = _build_and_lookup(lambda: build_native(EIE(config)))
    runs = []
    for _ in range(repeat):
        (result,) = native_eie.run_network(EIE(config), jobs=[job])
        p = result["phases"]
        loads = ("image load", "input load")
        cycles = sum(v["cycles"] for v in p.values())
        runs.append({
            "load": _rate(sum(p[k]["cycles"] for k in loads), sum(p[k]["seconds"] for k in loads)),
            "free_running": _rate(p["run"]["cycles"], p["run"]["seconds"]),
            "read_out": _rate(p["read-out"]["cycles"], p["read-out"]["seconds"]),
            # The whole job as the caller sees it: the driver's phases and the Python around them (reading the
            # image files, packing the load words, the golden model and the comparison).
            "job": _rate(cycles, result["seconds"] + p["image load"]["seconds"]),
            "job_driver_only": _rate(cycles, sum(v["seconds"] for v in p.values()))})
    return {"build_seconds": build, "cached_lookup_seconds": lookup, **_best(runs)}


def eie_cocotb(config, job, repeat):
    """The same job under cocotb ``repeat`` times: the image load alone (timed whole), then the whole job; the
    fastest rate of each phase."""
    build, lookup = _build_and_lookup(lambda: build_verilator(EIE(config), name="EIE"))
    runs = []
    for _ in range(repeat):
        load = run_verilator(EIE(config), "sparq.sim.tb:timed", inner=EIE_BODY, jobs=[{**job, "inputs": []}])
        timed = run_verilator(EIE(config), "sparq.sim.tb:timed", inner=EIE_BODY, jobs=[job], poll=256)
        (result,) = timed["result"]
        run_cycles = sum(c["cycles"] for c in result["counters"])
        runs.append({"load": _rate(load["cycles"], load["seconds"]),
                     "free_running": _rate(run_cycles, result["run_seconds"]),
                     "job": _rate(timed["cycles"], timed["seconds"])})
    return {"build_seconds": build, "cached_lookup_seconds": lookup, **_best(runs)}


def systolic(folder, repeat):
    """The 8x8 accelerator on a random 128x64x32 GEMM under both runners, ``repeat`` times: the fastest rates."""
    config = config_for(8)
    program, words, _ = random_gemm(8, 128, [64, 32], config)
    save_program(program, Path(folder) / "gemm.npz")
    np.save(Path(folder) / "gemm.npy", words)
    files = dict(program=str(Path(folder) / "gemm.npz"), inputs=str(Path(folder) / "gemm.npy"))
    build_verilator(SystolicAccelerator(config), name="SystolicAccelerator")
    cocotb, native = [], []
    for _ in range(repeat):
        timed = run_verilator(SystolicAccelerator(config), "sparq.sim.tb:timed",
                              inner="sparq.sim.tb.systolic:run_program_file", **files)
        cocotb.append({"rate": _rate(timed["cycles"], timed["seconds"])})
    with Accelerator(SystolicAccelerator(config)) as accelerator:
        accelerator.program(program, words, seed=0)  # warm: process start and first-touch of the model
        for _ in range(repeat):
            _, counters, reply = accelerator.program(program, words, seed=0)
            native.append({"rate": _rate(sum(c for _, c, _ in reply.timings), sum(s for _, _, s in reply.timings))})
    assert counters == {k: timed["result"][k] for k in counters}, "systolic counters differ between the runners"
    cocotb, native = _best(cocotb)["rate"], _best(native)["rate"]
    return {"program": "gemm 128x64x32", "cocotb": cocotb, "native": native,
            "native_over_cocotb": round(native["cycles_per_second"] / cocotb["cycles_per_second"], 1)}


def amaranth_eie(folder):
    config = EieConfig(n_pe=16)
    path, inputs = eie_layer(folder, config, 64, 64, seed=5)
    timed = run_amaranth(EIE(config), "sparq.sim.tb:timed", inner=EIE_BODY,
                         jobs=[{"image_dir": path, "inputs": inputs[:1]}])
    return _rate(timed["cycles"], timed["seconds"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200_000, help="cycles of the free-running MAC run")
    parser.add_argument("--items", type=int, default=5_000, help="words through the FIFO in the stream run")
    parser.add_argument("--no-eie64", action="store_true", help="skip the 64-PE rows (their builds take minutes)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each EIE and systolic job per runner; the fastest of each phase counts")
    args = parser.parse_args()
    started = time.perf_counter()
    load_average = [os.getloadavg()[0]]

    mac = dict(a_width=8, b_width=8, acc_width=32, saturate=False)

    def make_mac():
        return FreeRunningMAC(**mac)
    a, b = lfsr_operands(make_mac().seed, args.cycles, 8, 8)
    expected_y = int(accumulate(a, b, **mac)[-1])

    def check_mac(result):
        assert result["y"] == expected_y, f"free-running MAC: expected y {expected_y}, got {result['y']}"

    fifo = dict(depth=8, width=16, gap_probability=0.2, stall_probability=0.2)
    rows = {
        "free-running MAC": measure(make_mac, "sparq.sim.tb.mac:free_running", check_mac, cycles=args.cycles),
        "stream FIFO, Python-driven": measure(lambda: StreamFIFO(16, 8), "sparq.sim.tb.fifo:random_stream",
                                              lambda result: None, seed=1, n=args.items, **fifo),
    }
    eie = {}
    with tempfile.TemporaryDirectory() as folder:
        for n_pe, config, columns in ((16, EieConfig(n_pe=16), 1024), (64, EIE64_CONFIG, 256)):
            if n_pe == 64 and args.no_eie64:
                continue
            path, xs = eie_layer(folder, config, 1024, columns, seed=n_pe)
            job = {"image_dir": path, "inputs": xs}
            eie[n_pe] = {"layer": f"1024x{columns}", "inputs": INPUTS, "native": eie_native(config, job, args.repeat),
                         "cocotb": eie_cocotb(config, job, args.repeat)}
            load_average.append(os.getloadavg()[0])
            for phase in ("load", "free_running", "job"):
                eie[n_pe][f"{phase}_native_over_cocotb"] = round(
                    eie[n_pe]["native"][phase]["cycles_per_second"] / eie[n_pe]["cocotb"][phase]["cycles_per_second"],
                    1)
        systolic8 = systolic(folder, args.repeat)
        load_average.append(os.getloadavg()[0])
        amaranth = amaranth_eie(folder)

    print(f"{'workload':30} {'cycles':>9} {'Verilator c/s':>14} {'Amaranth c/s':>13} {'ratio':>7}")
    for name, row in rows.items():
        print(f"{name:30} {row['verilator']['cycles']:>9} {row['verilator']['cycles_per_second']:>14,.0f} "
              f"{row['amaranth']['cycles_per_second']:>13,.0f} {row['ratio']:>6.1f}x")
    print(f"\n{'EIE (cycles/s)':22} {'native':>10} {'cocotb':>10} {'ratio':>7}")
    for n_pe, row in eie.items():
        for phase, label in (("load", "load"), ("free_running", "free-running"), ("job", "job (load+run+read)")):
            print(f"{f'{n_pe} PEs, {label}':22} {row['native'][phase]['cycles_per_second']:>10,.0f} "
                  f"{row['cocotb'][phase]['cycles_per_second']:>10,.0f} {row[f'{phase}_native_over_cocotb']:>6.1f}x")
        for key in ("build_seconds", "cached_lookup_seconds"):
            print(f"{f'{n_pe} PEs, {key}':22} {row['native'][key]:>10} {row['cocotb'][key]:>10}")
    print(f"{'systolic 8x8, GEMM':22} {systolic8['native']['cycles_per_second']:>10,.0f} "
          f"{systolic8['cocotb']['cycles_per_second']:>10,.0f} {systolic8['native_over_cocotb']:>6.1f}x")
    print(f"Amaranth's simulator, EIE 16 PEs: {amaranth['cycles_per_second']:,.0f} cycles/s")

    e16 = eie[16]
    out = {
        "eie16_native_cycles_per_second": e16["native"]["job"]["cycles_per_second"],
        "eie64_native_cycles_per_second": eie[64]["native"]["job"]["cycles_per_second"] if 64 in eie else None,
        "eie16_cocotb_cycles_per_second": e16["cocotb"]["job"]["cycles_per_second"],
        "native_over_cocotb": e16["job_native_over_cocotb"],
        "native_over_cocotb_free_running": e16["free_running_native_over_cocotb"],
        "eie16_amaranth_cycles_per_second": amaranth["cycles_per_second"],
        "native_over_amaranth_eie16": round(e16["native"]["job"]["cycles_per_second"] / amaranth["cycles_per_second"]),
        "eie": {str(k): v for k, v in eie.items()}, "systolic8": systolic8, "eie16_amaranth": amaranth,
        "workloads": rows, "repeat": args.repeat, "load_average": [round(x, 1) for x in load_average],
        "cpus": os.cpu_count(),
        "machine": platform.machine(), "python": platform.python_version(),
        "bench_seconds": round(time.perf_counter() - started, 1),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

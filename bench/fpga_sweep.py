"""FPGA sweep: resources, Fmax and throughput of sparq's designs on the iCE40 UP5K (iCEBreaker) and the ECP5-85F
(ULX3S), with the YoWASP Yosys and nextpnr.

    .venv/bin/python bench/fpga_sweep.py                 # every point (tens of minutes; builds are cached)
    .venv/bin/python bench/fpga_sweep.py --only systolic --board icebreaker
    .venv/bin/python bench/fpga_sweep.py --only eie --board ulx3s-85f --n-pe 16
    .venv/bin/python bench/fpga_sweep.py --only systolic --board ulx3s-85f --size 8

Each point is one :func:`sparq.fpga.build.synthesize` (designs with ports inside the scan-chain timing harness, board
tops as they are). A point whose multipliers overflow the device's DSP blocks is rebuilt with ``dsp=False`` (its row
says so); a point that still does not fit is recorded as such, with the resource that overflowed.

Throughput: ``MAC/s = clock x MACs per cycle``, the MACs per cycle measured on the RTL under Verilator (the
accelerator of that array size running a dense GEMM of ``acc_depth / 2`` rows by ``4 size`` by ``4 size``, weights
loaded from the host, all counted from reset to HALT: ``mac_busy * size**2 / cycles``), next to the peak
``clock x size**2``. The clock is the Fmax for a bare array (what it could run at) and the board oscillator for a
board top (what it does run at, without a PLL). For EIE (the digits MLP baked in, every per-PE memory sized to it:
:func:`sparq.fpga.images.eie_image`) the MACs per cycle are ``n_pe`` times the per-PE rate that ``bench/eie_rtl.py``
measured on the 16-PE RTL for a 512x512 layer at 10 % density (``bench/results/eie_rtl.json``), and the peak is one
MAC per PE per cycle (the per-PE rate is the one measured at FIFO depth 8; depth 4 lowers it a little). On the
UP5K, EIE is also built with ``pe_counters=False`` (no per-PE busy/stall/starve counters, as a board build that
reports only a run's cycles would be), and with 4 PEs also with ``spram=True`` (each PE's sparse matrix in an SPRAM)
and FIFO depth 4, bare and as the ``eie-board`` top.

Prints a table and writes ``bench/results/fpga_sweep.json`` (points of earlier runs are kept unless rerun).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results" / "fpga_sweep.json"

# Memory depths of the bare-array points: small on the UP5K (its 30 block RAMs), the shared test configurations
# (sparq.sim.systolic.stimulus.CONFIGS, which hold the digits MLP at 8x8) on the ECP5.
UP5K_DEPTHS = dict(ub_depth=256, wb_depth=256, acc_depth=64)
POINTS = [
    ("mac", "icebreaker", dict(a_width=8, b_width=8, acc_width=32)),
    ("fifo", "icebreaker", dict(width=16, depth=512)),
    ("bridge", "icebreaker", {}),
    ("systolic", "icebreaker", dict(size=2, **UP5K_DEPTHS)),
    ("systolic", "icebreaker", dict(size=3, **UP5K_DEPTHS)),
    ("systolic", "icebreaker", dict(size=4, **UP5K_DEPTHS)),
    ("mac", "ulx3s-85f", dict(a_width=8, b_width=8, acc_width=32)),
    ("systolic", "ulx3s-85f", dict(size=2, ub_depth=1024, wb_depth=1024, acc_depth=64)),
    ("systolic", "ulx3s-85f", dict(size=4, ub_depth=1024, wb_depth=1024, acc_depth=64)),
    ("systolic", "ulx3s-85f", dict(size=8, ub_depth=4096, wb_depth=8192, acc_depth=512)),
    ("systolic-board", "ulx3s-85f", dict(size=8)),
    ("eie", "icebreaker", dict(n_pe=1)),
    ("eie", "icebreaker", dict(n_pe=2)),
    ("eie", "icebreaker", dict(n_pe=4)),
    ("eie", "icebreaker", dict(n_pe=2, pe_counters=False)),
    ("eie", "icebreaker", dict(n_pe=4, pe_counters=False)),
    ("eie", "icebreaker", dict(n_pe=4, pe_counters=False, spram=True, fifo_depth=4)),
    ("eie-board", "icebreaker", dict(n_pe=4, spram=True, fifo_depth=4)),
    ("eie", "ulx3s-85f", dict(n_pe=4)),
    ("eie", "ulx3s-85f", dict(n_pe=8)),
    ("eie", "ulx3s-85f", dict(n_pe=16)),
]
EIE_LAYER = "random 512x512 at 10%"


def _key(design, board, params) -> str:
    return f"{design}@{board}:" + ",".join(f"{k}={v}" for k, v in sorted(params.items()))


def measured_macs_per_cycle(size: int) -> dict:
    """MACs per cycle of the ``size x size`` accelerator on the sweep's dense GEMM, measured under Verilator."""
    import numpy as np

    from sparq.formats.systolic import save_program
    from sparq.hw.systolic.accelerator import SystolicAccelerator
    from sparq.sim.harness import run_verilator as run
    from sparq.sim.systolic.stimulus import config_for, random_gemm

    config = config_for(size)
    m, k = config.acc_depth // 2, 4 * size
    program, words, _ = random_gemm(0, m, [k, k], config)
    with tempfile.TemporaryDirectory() as folder:
        save_program(program, Path(folder) / "program.json")
        np.save(Path(folder) / "inputs.npy", words)
        counters = run(SystolicAccelerator(config), "sparq.sim.tb.systolic:run_program_file", optimize=False,
                       program=str(Path(folder) / "program.json"), inputs=str(Path(folder) / "inputs.npy"))
    return {"workload": f"GEMM {m}x{k} @ {k}x{k}", "cycles": counters["cycles"], "mac_busy": counters["mac_busy"],
            "macs_per_cycle": counters["mac_busy"] * size * size / counters["cycles"]}


def eie_macs_per_cycle_per_pe() -> float:
    """The per-PE MAC rate ``bench/eie_rtl.py`` measured on the RTL (run it first if its results are missing)."""
    results = RESULTS.parent / "eie_rtl.json"
    if not results.exists():
        raise RuntimeError(f"{results} is missing; run bench/eie_rtl.py first")
    layers = json.loads(results.read_text())["layers"]
    return next(layer for layer in layers if layer["layer"] == EIE_LAYER)["macs_per_cycle_per_pe"]


def sweep_point(design: str, board: str, params: dict, throughput_cache: dict) -> dict:
    from sparq.fpga.build import DoesNotFit, synthesize
    from sparq.fpga.designs import make_design
    from sparq.sim.toolchain import cache_root

    row = {"design": design, "board": board, "params": params}
    start = time.perf_counter()
    report = None
    for dsp in (True, False):
        try:
            report = synthesize(make_design(design, **params)[0], board, dsp=dsp, name=design, params=params)
            break
        except DoesNotFit as error:
            if dsp and error.dsp:
                row["dsp_overflow"] = str(error)  # too many multipliers for the DSP blocks: retry from LUTs
                continue
            row["does_not_fit"] = str(error)
            row["overflow"] = {name: [u.used, u.available] for name, u in error.overflow.items()}
            break
    row["seconds"] = round(time.perf_counter() - start, 1)
    if report is None:
        return row
    row["report"] = report.to_json()
    # The build folder relative to the build cache (the JSON names no absolute machine path).
    row["report"]["build_dir"] = Path(report.build_dir).resolve().relative_to(cache_root().resolve()).as_posix()
    if design.startswith("systolic"):
        size = params.get("size", 8)
        if size not in throughput_cache:
            throughput_cache[size] = measured_macs_per_cycle(size) if size in (2, 4, 8, 16) else None
        measured = throughput_cache[size]
        clock_mhz = report.fmax_mhz if report.harness else min(c.constraint_mhz for c in report.clocks)
        row["clock_mhz"] = clock_mhz
        row["peak_mac_per_s"] = clock_mhz * 1e6 * size * size
        if measured:
            row["throughput"] = {**measured, "mac_per_s": clock_mhz * 1e6 * measured["macs_per_cycle"]}
    elif design.startswith("eie"):
        n_pe = params["n_pe"]
        per_pe = eie_macs_per_cycle_per_pe()
        clock_mhz = report.fmax_mhz if report.harness else min(c.constraint_mhz for c in report.clocks)
        row["clock_mhz"] = clock_mhz
        row["peak_mac_per_s"] = clock_mhz * 1e6 * n_pe
        row["throughput"] = {"workload": f"{EIE_LAYER} layer, per-PE rate of the 16-PE RTL (bench/eie_rtl.py)",
                             "macs_per_cycle": n_pe * per_pe, "mac_per_s": clock_mhz * 1e6 * n_pe * per_pe}
    return row


def _summary(row) -> list[str]:
    params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
    if "report" not in row:
        over = ", ".join(f"{name} {used}/{available}" for name, (used, available) in row.get("overflow", {}).items())
        return [row["design"], row["board"], params + (" (no DSP)" if "dsp_overflow" in row else ""),
                "does not fit", "", "", "", "", "", "", "", "", over]
    r = row["report"]
    res = r["resources"]
    logic = res.get("LC") or res.get("LUT")
    cells = lambda key: f"{res[key]['used']}/{res[key]['available']}" if key in res else "-"  # noqa: E731
    path = r["critical_paths"][0] if r["critical_paths"] else None
    where = (" -> ".join(path["sources"][-2:]) or path["end"]) if path else ""
    mac_s = row.get("throughput", {}).get("mac_per_s")
    return [row["design"], row["board"], params + ("" if r["dsp"] else " (no DSP)"),
            f"{logic['used']}/{logic['available']}", cells("FF") if r["family"] == "ecp5" else str(res["FF"]["used"]),
            cells("BRAM"), cells("SPRAM"), cells("DSP"), f"{r['fmax_mhz']:.1f}",
            f"{mac_s / 1e6:.0f}" if mac_s else "", f"{row['peak_mac_per_s'] / 1e6:.0f}" if "peak_mac_per_s" in row
            else "", f"{row['clock_mhz']:.1f}" if "clock_mhz" in row else "", where]


def print_table(rows) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="sparq FPGA sweep (YoWASP Yosys + nextpnr)")
    for column in ("design", "board", "parameters", "LC / LUT", "FF", "BRAM", "SPRAM", "DSP", "Fmax MHz",
                   "MMAC/s meas.", "MMAC/s peak", "at MHz", "critical path"):
        table.add_column(column)
    for row in rows:
        table.add_row(*_summary(row))
    Console(width=240).print(table)


def _load_results() -> dict:
    return {_key(r["design"], r["board"], r["params"]): r
            for r in (json.loads(RESULTS.read_text())["points"] if RESULTS.exists() else [])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only the points of this design")
    parser.add_argument("--board", help="run only the points on this board")
    parser.add_argument("--n-pe", type=int, help="run only the EIE points with this many PEs")
    parser.add_argument("--size", type=int, help="run only the systolic points of this array size")
    args = parser.parse_args(argv)
    cache = {}
    for design, board, params in POINTS:
        if (args.only and design != args.only) or (args.board and board != args.board) or (
                args.n_pe and params.get("n_pe") != args.n_pe) or (args.size and params.get("size") != args.size):
            continue
        print(f"{design} {params} on {board}...", flush=True)
        row = sweep_point(design, board, params, cache)
        # Read the results again just before writing: sweeps of different boards may run side by side.
        previous = _load_results()
        previous[_key(design, board, params)] = row
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"points": list(previous.values())}, indent=1) + "\n")
    previous = _load_results()
    order = {_key(d, b, p): i for i, (d, b, p) in enumerate(POINTS)}
    rows = sorted(previous.values(), key=lambda r: order.get(_key(r["design"], r["board"], r["params"]), 1e9))
    print_table(rows)
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

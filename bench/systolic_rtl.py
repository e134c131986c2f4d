"""The systolic array at scale on the RTL: a 16x16 array on a 1024x1024x1024 GEMM and the conv layers of two
VGG-style blocks, RTL cycles against the analytic model and SCALE-Sim.

Each shape is a random int8 GEMM chain of one layer (``sparq.sim.systolic.stimulus.random_gemm``: requantization
that keeps the outputs spread over the int8 range), the convolutions as their im2col GEMMs, lowered by
``sparq.compiler.systolic`` and run by the native runner (:mod:`sparq.sim.native`) with the host always ready, every
output byte compared with the golden model. Per shape: the RTL counters (all cycles, compute-phase
``active_cycles``, ``mac_busy``), the analytic model's (``sparq.sim.systolic.cycles.predict``), SCALE-Sim's ws
cycles (``bench/systolic.py``'s runner, convolutions in its conv mode on the padded input), their ratios, MAC
utilization and the wall time of the run. SCALE-Sim simulates its memory traces in Python, which on the 1024^3
GEMM (4.4 M cycles) takes longer than this bench waits (``--scalesim-timeout``); a shape it does not finish gets
SCALE-Sim's closed form, ``folds * (M + 2 rows + cols - 2) - 1`` (``source: closed form``), which equals SCALE-Sim's
own result on every shape it finishes here and in ``bench/systolic.py`` (``closed_form_agrees``).
``bench/systolic.py`` decomposes the RTL / SCALE-Sim difference on the 8x8 array; the same decomposition holds here
(SCALE-Sim charges ``2 rows + cols - 2`` cycles of fill and skew per fold, the RTL hides the weight fill behind the
previous fold).

Writes ``bench/results/systolic_rtl.json`` and ``systolic_rtl.png``. Not part of the test suite (the 16x16 build
takes minutes and the 1024^3 GEMM runs over 4 M cycles).

    .venv/bin/python bench/systolic_rtl.py [--no-scalesim] [--shapes "gemm 1024x1024x1024" ...]
"""

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from systolic import gemm_dims, plot, run_scalesim, scalesim_version  # noqa: E402

from sparq.formats.systolic import SystolicConfig, save_program  # noqa: E402
from sparq.hw.systolic.accelerator import SystolicAccelerator  # noqa: E402
from sparq.sim.native.build import build_native  # noqa: E402
from sparq.sim.native.systolic import run_program_files  # noqa: E402
from sparq.sim.systolic.cycles import predict  # noqa: E402
from sparq.sim.systolic.stimulus import random_gemm  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CONFIG = SystolicConfig(rows=16, cols=16, ub_depth=1 << 17, wb_depth=1 << 17, acc_depth=2048)
"""16x16, with memories that hold the 1024^3 GEMM in one pass: 2 x 65,536 UB words for its input and output,
65,536 WB words of weight tiles and its parameter records; 2048 accumulator words (two 1024-row regions)."""

# name, kind, dims: GEMM (M, K, N) or conv (input size with padding, kernel, channels in, channels out).
SHAPES = [
    ("gemm 1024x1024x1024", "gemm", (1024, 1024, 1024)),
    ("conv1_1 3x3 3->64 on 32x32", "conv", (34, 3, 3, 64)),
    ("conv1_2 3x3 64->64 on 32x32", "conv", (34, 3, 64, 64)),
    ("conv2_1 3x3 64->128 on 16x16", "conv", (18, 3, 64, 128)),
    ("conv2_2 3x3 128->128 on 16x16", "conv", (18, 3, 128, 128)),
]


def scalesim_with_timeout(name, kind, dims, timeout):
    """SCALE-Sim's ws cycles (``bench/systolic.py``'s runner) in a worker process, or None after ``timeout`` s."""
    import multiprocessing
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(1) as pool:
        job = pool.apply_async(run_scalesim, (name, kind, dims, CONFIG))
        try:
            result = job.get(timeout)
        except multiprocessing.TimeoutError:
            print(f"  SCALE-Sim on {name}: no result after {timeout} s; using its closed form")
            return None
    return {**result, "source": f"scalesim {scalesim_version()}",
            "wall_seconds": round(time.perf_counter() - started, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-scalesim", action="store_true", help="skip SCALE-Sim")
    parser.add_argument("--shapes", nargs="*", help="run only these shapes (names as in SHAPES)")
    parser.add_argument("--scalesim-timeout", type=float, default=600,
                        help="seconds SCALE-Sim may take per shape before its closed form stands in (default 600)")
    args = parser.parse_args()
    shapes = [s for s in SHAPES if not args.shapes or s[0] in args.shapes]
    have_scalesim = scalesim_version() is not None and not args.no_scalesim
    if scalesim_version() is None:
        print("SCALE-Sim is not installed (`.venv/bin/pip install -e '.[bench]'`); continuing without it.")
    started, load_average = time.perf_counter(), os.getloadavg()[0]
    build_native(SystolicAccelerator(CONFIG))
    build_seconds = time.perf_counter() - started
    print(f"16x16 build (or cache lookup): {build_seconds:.1f} s; load average {os.getloadavg()[0]:.1f}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for i, (name, kind, dims) in enumerate(shapes):
            m, k, n = gemm_dims(kind, dims)
            program, words, _ = random_gemm(1000 + i, m, [k, n], CONFIG)
            stem = Path(folder) / f"shape{i}"
            save_program(program, f"{stem}.npz")
            np.save(f"{stem}.npy", words)
            t = time.perf_counter()
            (rtl,) = run_program_files(SystolicAccelerator(CONFIG),
                                       runs=[dict(name=name, program=f"{stem}.npz", inputs=f"{stem}.npy")])
            wall = time.perf_counter() - t
            model = predict(CONFIG, program.instructions)
            row = {"name": name, "kind": kind, "dims": list(dims), "gemm_mkn": [m, k, n],
                   "folds": math.ceil(k / CONFIG.rows) * math.ceil(n / CONFIG.cols), "bit_exact": True,
                   "rtl": {key: rtl[key] for key in ("cycles", "stall_cycles", "active_cycles", "mac_busy")},
                   "model": {"cycles": model.cycles, "active_cycles": model.active_cycles,
                             "mac_busy": model.mac_busy},
                   "wall_seconds": round(wall, 1), "rtl_cycles_per_second": round(rtl["cycles"] / wall)}
            r = row["rtl"]
            row["model_over_rtl"] = {"cycles": model.cycles / (r["cycles"] - r["stall_cycles"]),
                                     "active_cycles": model.active_cycles / r["active_cycles"]}
            row["utilization_compute"] = r["mac_busy"] / r["active_cycles"]
            row["utilization_total"] = r["mac_busy"] / (r["cycles"] - r["stall_cycles"])
            row["effective_mac_utilization"] = m * k * n / (CONFIG.rows * CONFIG.cols * r["active_cycles"])
            rows.append(row)
            print(f"  {name}: {r['active_cycles']} compute cycles, bit-exact, {wall:.1f} s", flush=True)
    for row in sorted(rows, key=lambda row: row["rtl"]["active_cycles"]):  # the quick ones first
        folds, m = row["folds"], row["gemm_mkn"][0]
        closed_form = folds * (m + 2 * CONFIG.rows + CONFIG.cols - 2) - 1
        if have_scalesim:
            row["scalesim"] = scalesim_with_timeout(row["name"], row["kind"], tuple(row["dims"]),
                                                    args.scalesim_timeout)
        if row.get("scalesim"):
            row["scalesim"]["closed_form_agrees"] = row["scalesim"]["cycles"] == closed_form
        else:
            row["scalesim"] = {"cycles": closed_form, "source": "closed form"}
        row["rtl_over_scalesim"] = row["rtl"]["active_cycles"] / row["scalesim"]["cycles"]
        print(f"  SCALE-Sim {row['name']}: {row['scalesim']}", flush=True)

    print(f"\n{CONFIG.rows}x{CONFIG.cols} array, host always ready")
    header = (f"{'shape':<31}{'folds':>6}{'RTL all':>10}{'RTL comp':>10}{'model':>10}{'model/RTL':>10}"
              f"{'SCALE-Sim':>11}{'RTL/SS':>8}{'util':>7}{'wall s':>8}")
    print(header)
    print("-" * len(header))
    for row in rows:
        r, s = row["rtl"], row.get("scalesim", {})
        ratio = f"{row['rtl_over_scalesim']:.3f}" if "rtl_over_scalesim" in row else "-"
        print(f"{row['name']:<31}{row['folds']:>6}{r['cycles'] - r['stall_cycles']:>10}{r['active_cycles']:>10}"
              f"{row['model']['active_cycles']:>10}{row['model_over_rtl']['active_cycles']:>10.4f}"
              f"{s.get('cycles', '-'):>11}{ratio:>8}{100 * row['utilization_compute']:>6.1f}%"
              f"{row['wall_seconds']:>8.1f}")
    RESULTS.mkdir(exist_ok=True)
    plot(rows, RESULTS / "systolic_rtl.png", CONFIG)
    out = {"config": json.loads(CONFIG.to_json()), "scalesim_version": scalesim_version() if have_scalesim else None,
           "build_seconds": round(build_seconds, 1), "shapes": rows,
           "model_largest_error": max(abs(e - 1) for row in rows for e in row["model_over_rtl"].values()),
           "load_average": [round(load_average, 1), round(os.getloadavg()[0], 1)], "machine": platform.machine(),
           "cpus": os.cpu_count(), "bench_seconds": round(time.perf_counter() - started, 1)}
    (RESULTS / "systolic_rtl.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'systolic_rtl.json'} and {RESULTS / 'systolic_rtl.png'}")


if __name__ == "__main__":
    main()

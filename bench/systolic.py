"""Systolic accelerator: MAC utilization, RTL cycles against SCALE-Sim and the analytic model, digits accuracy.

For a set of GEMM and convolution shapes on an 8x8 array, each lowered by ``sparq.compiler.systolic`` and run on the
Verilator RTL through the native runner (``--runner cocotb`` for the cocotb path; every output byte checked against
the golden model, host always ready):

* the RTL counters: all cycles, **compute-phase** cycles (``active_cycles``: weight loader, matrix unit or
  activation unit busy -- no host transfers) and MAC-busy cycles, hence MAC utilization;
* the analytic model (``sparq.sim.systolic.cycles``) next to them, with its error;
* SCALE-Sim's ws dataflow on the same shape and array size (``scalesim`` from PyPI, bench-only; convolutions in
  its conv mode on the padded input, GEMMs in its GEMM mode), with the ratio RTL / SCALE-Sim and a decomposition
  of the difference: both stream ``M`` rows per fold (``folds = ceil(K/rows) * ceil(N/cols)``); SCALE-Sim adds
  ``rows`` cycles of weight fill and ``rows + cols - 2`` of pipeline fill and drain to every fold, while the RTL
  hides the weight fill behind the previous fold (double buffering) and pays a drain and the activation tail only
  once per output tile (``active - mac_busy``). Host transfers are outside both compute phases; the RTL's are in
  ``cycles - active``.

Then the digits MLP and CNN: int8 accuracy on the golden model over all 540 test images and on the RTL over the
first ``--images`` (bit-exact with the golden model), against float, and the MAC utilization of their batched
device calls on the RTL (summed counters: ``mac_busy / (cycles - stall_cycles)`` including host transfers, and of
the compute phase).

Writes ``bench/results/systolic.json`` and ``bench/results/systolic_*.png``.

    .venv/bin/python bench/systolic.py [--images 200] [--no-rtl] [--no-scalesim] [--runner native|cocotb]
"""

import argparse
import builtins
import csv
import json
import math
import platform
import shutil
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from sparq.compiler.systolic import GemmLayer, lower_gemm
from sparq.formats.systolic import SystolicConfig, pack_matrix, save_program
from sparq.sim.native import RUNNERS
from sparq.sim.systolic.cycles import predict

RESULTS = Path(__file__).resolve().parent / "results"
CONFIG = SystolicConfig(rows=8, cols=8, ub_depth=32768, wb_depth=4096, acc_depth=2048)
"""The array measured: 8x8, with memories that hold the largest shape below in one pass (no row chunking)."""

# name, kind, (M, K, N) of the GEMM the RTL runs, and the SCALE-Sim topology row.
SHAPES = [
    ("gemm 512x256x64", "gemm", (512, 256, 64)),
    ("gemm 256x128x128", "gemm", (256, 128, 128)),
    ("gemm 128x64x32", "gemm", (128, 64, 32)),
    ("gemm 64x300x100", "gemm", (64, 300, 100)),
    # conv: (input H, W incl. padding, kernel, channels in, channels out); the RTL runs its im2col GEMM.
    ("conv 3x3 16->32 on 32x32", "conv", (34, 3, 16, 32)),
    ("conv 3x3 1->8 on 32x32", "conv", (34, 3, 1, 8)),
    ("conv 3x3 8->16 on 16x16", "conv", (18, 3, 8, 16)),
]
LARGE = "gemm 512x256x64"
"""The shape whose utilization is the headline number."""


def gemm_dims(kind, dims):
    if kind == "gemm":
        return dims
    size, kernel, c_in, c_out = dims
    out = size - kernel + 1
    return out * out, kernel * kernel * c_in, c_out


def rtl_overhead(program, model):
    """Split the model's ``active - mac_busy`` cycles: the first weight load before the first MATMUL, the bubbles
    between output tiles (drain before each ACTIVATE), and the tail after the last MATMUL issue (the last drain
    and the last ACTIVATE pass, which SCALE-Sim does not model)."""
    from sparq.formats.systolic import Opcode
    ops = [(ins, t) for ins, t in zip(program.instructions, model.dispatch)]
    first_load = next(t for ins, t in ops if ins.opcode == Opcode.LOAD_WEIGHTS)
    first_matmul = next(t for ins, t in ops if ins.opcode == Opcode.MATMUL)
    last = max((t + ins.count for ins, t in ops if ins.opcode == Opcode.MATMUL))
    fill = model.active_between(first_load, first_matmul)
    tail = model.active_between(last + 1, model.cycles)
    return {"first_weight_fill": fill, "tile_bubbles": model.active_cycles - model.mac_busy - fill - tail,
            "tail_drain_and_activate": tail}


def make_program(seed, m, k, n):
    """A random int8 GEMM of the given shape, lowered for :data:`CONFIG`; ``(program, input_words)``."""
    rng = np.random.default_rng(seed)
    weight = rng.integers(-128, 128, (k, n), dtype=np.int64).astype(np.int8)
    shift = np.full(n, 20)
    layer = GemmLayer("g", weight, rng.integers(-1000, 1000, n), np.full(n, 1 << 12), shift, relu=True)
    x = rng.integers(-128, 128, (m, k), dtype=np.int64).astype(np.int8)
    return lower_gemm([layer], m, CONFIG), pack_matrix(x, CONFIG.lanes)


# --- SCALE-Sim ------------------------------------------------------------------------------------------------

SCALESIM_CFG = """[general]
run_name = sparq

[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
ifmapsramszkB = 4096
filtersramszkB = 4096
ofmapsramszkB = 4096
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Dataflow = ws
Bandwidth = 10
ReadRequestBuffer = 32
WriteRequestBuffer = 32

[layout]
IfmapCustomLayout = False
FilterCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 10
IfmapSRAMBankPort = 2
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 10
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40

[run_presets]
InterfaceBandwidth = CALC
UseRamulatorTrace = False
"""


def scalesim_version():
    try:
        return version("scalesim")
    except PackageNotFoundError:
        return None


def _patch_scalesim():
    """scalesim 3.0.0 calls ``int(max(list of 1-element arrays))``, which numpy 2 refuses; give its memory module a
    ``max`` that returns the scalar. Nothing else of SCALE-Sim is changed."""
    import scalesim.memory.double_buffered_scratchpad_mem as memory

    def scalar_max(*args):
        result = builtins.max(*args)
        return result.reshape(-1)[0] if isinstance(result, np.ndarray) and result.size == 1 else result
    memory.max = scalar_max


def run_scalesim(name, kind, dims, config=CONFIG):
    """SCALE-Sim's ws cycles for one shape on ``config``'s array: ``{"cycles": compute cycles,
    "cycles_with_prefetch": ...}``."""
    from scalesim.scale_sim import scalesim
    _patch_scalesim()
    folder = Path(tempfile.mkdtemp(prefix="scalesim-"))
    try:
        (folder / "config.cfg").write_text(SCALESIM_CFG.format(rows=config.rows, cols=config.cols))
        if kind == "gemm":
            m, k, n = dims
            (folder / "topology.csv").write_text(f"Layer, M, N, K,\nlayer, {m}, {n}, {k},\n")
        else:
            size, kernel, c_in, c_out = dims
            (folder / "topology.csv").write_text(
                "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                f"Strides,\nlayer, {size}, {size}, {kernel}, {kernel}, {c_in}, {c_out}, 1,\n")
        (folder / "layout.csv").write_text("Layer name, " + ", ".join("x" * 12) + ",\nlayer, "
                                           + ", ".join("1" * 12) + ",\n")
        sim = scalesim(save_disk_space=True, verbose=False, config=str(folder / "config.cfg"),
                       topology=str(folder / "topology.csv"), layout=str(folder / "layout.csv"),
                       input_type_gemm=kind == "gemm")
        sim.run_scale(top_path=str(folder / "out"))
        report = next((folder / "out").rglob("COMPUTE_REPORT.csv"))
        with open(report) as f:
            row = [cell.strip() for cell in list(csv.reader(f))[1]]
        return {"cycles": int(row[2]), "cycles_with_prefetch": int(row[1]), "stall_cycles": int(row[3])}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- RTL --------------------------------------------------------------------------------------------------------

def run_rtl(programs, folder, run):
    from sparq.hw.systolic.accelerator import SystolicAccelerator
    runs = []
    for name, (program, words) in programs.items():
        stem = folder / name.replace(" ", "_").replace(">", "")
        save_program(program, f"{stem}.npz")
        np.save(f"{stem}.npy", words)
        runs.append(dict(name=name, program=f"{stem}.npz", inputs=f"{stem}.npy"))
    results = run(SystolicAccelerator(CONFIG), "sparq.sim.tb.systolic:run_program_files", runs=runs)
    return {r["name"]: r for r in results}


def run_digits_rtl(images, run):
    from sparq.hw.systolic.accelerator import SystolicAccelerator
    from sparq.sim.systolic.stimulus import config_for
    return run(SystolicAccelerator(config_for(8)), "sparq.sim.tb.systolic:run_networks",
               models=["digits_mlp", "digits_cnn"], images=images, size=8)


def digits_golden():
    from sparq.compiler.datasets import load_digits_split
    from sparq.compiler.ir import forward
    from sparq.compiler.models import load_shipped
    from sparq.compiler.quantize import forward_int8, quantize_model
    from sparq.compiler.systolic import compile_network
    from sparq.sim.systolic.golden import run_network
    from sparq.sim.systolic.stimulus import config_for
    x_train, _, x_test, y_test = load_digits_split()
    rows = {}
    for name in ("digits_mlp", "digits_cnn"):
        model = load_shipped(name)
        network = compile_network(model, x_train, config_for(8), name=name)
        logits, calls = run_network(network, x_test)
        reference = forward(model, x_test)
        rows[name] = {
            "images": len(x_test),
            "float_accuracy": float((reference.argmax(1) == y_test).mean()),
            "compiler_int8_accuracy": float((forward_int8(quantize_model(model, x_train), x_test).argmax(1)
                                             == y_test).mean()),
            "systolic_int8_accuracy": float((logits.argmax(1) == y_test).mean()),
            "max_logit_error": float(np.abs(logits * network.output_scale - reference).max()
                                     / np.abs(reference).max()),
            "batch": network.batch, "device_calls": len(calls),
        }
    return rows


# --- report -----------------------------------------------------------------------------------------------------

def plot(rows, path, config=CONFIG):
    """Compute-phase cycles (RTL, analytic model, SCALE-Sim) and MAC utilization per shape, for ``config``'s array."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [r["name"] for r in rows]
    x = np.arange(len(names))
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    width = 0.27
    left.bar(x - width, [r["rtl"]["active_cycles"] for r in rows], width, label="RTL compute phase")
    left.bar(x, [r["model"]["active_cycles"] for r in rows], width, label="analytic model")
    if all(r.get("scalesim") for r in rows):
        left.bar(x + width, [r["scalesim"]["cycles"] for r in rows], width, label="SCALE-Sim ws")
    left.set_yscale("log")
    left.set_ylabel("cycles")
    left.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    left.legend()
    left.set_title(f"{config.rows}x{config.cols} array: compute-phase cycles")
    right.bar(x - width / 2, [100 * r["utilization_compute"] for r in rows], width, label="compute phase")
    right.bar(x + width / 2, [100 * r["utilization_total"] for r in rows], width, label="incl. host transfers")
    right.axhline(90, color="grey", linestyle="--", linewidth=1)
    right.set_ylabel("MAC utilization (%)")
    right.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    right.legend()
    right.set_title("MAC-busy cycles / cycles (RTL counters)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="digits test images run on the RTL")
    parser.add_argument("--no-rtl", action="store_true", help="skip the Verilator runs (model and SCALE-Sim only)")
    parser.add_argument("--no-scalesim", action="store_true", help="skip SCALE-Sim")
    parser.add_argument("--runner", choices=RUNNERS, default="native", help="RTL runner (default: native)")
    args = parser.parse_args()

    started = time.time()
    have_scalesim = scalesim_version() is not None and not args.no_scalesim
    if scalesim_version() is None:
        print("SCALE-Sim is not installed: `.venv/bin/pip install scalesim` (a bench-only dependency); "
              "continuing without it.")
    programs = {name: make_program(i, *gemm_dims(kind, dims)) for i, (name, kind, dims) in enumerate(SHAPES)}
    rtl = {}
    if not args.no_rtl:
        with tempfile.TemporaryDirectory() as folder:
            rtl = run_rtl(programs, Path(folder), RUNNERS[args.runner])
    rows = []
    for name, kind, dims in SHAPES:
        m, k, n = gemm_dims(kind, dims)
        program = programs[name][0]
        model = predict(CONFIG, program.instructions)
        folds = math.ceil(k / CONFIG.rows) * math.ceil(n / CONFIG.cols)
        row = {"name": name, "kind": kind, "dims": list(dims), "gemm_mkn": [m, k, n], "folds": folds,
               "model": {"cycles": model.cycles, "active_cycles": model.active_cycles, "mac_busy": model.mac_busy}}
        measured = rtl.get(name)
        if measured:
            row["rtl"] = {key: measured[key] for key in ("cycles", "stall_cycles", "active_cycles", "mac_busy")}
        else:
            row["rtl"] = {"cycles": model.cycles, "stall_cycles": 0, "active_cycles": model.active_cycles,
                          "mac_busy": model.mac_busy, "from_model": True}
        r = row["rtl"]
        host_ready_cycles = r["cycles"] - r["stall_cycles"]
        row["utilization_compute"] = r["mac_busy"] / r["active_cycles"]
        row["utilization_total"] = r["mac_busy"] / host_ready_cycles
        row["effective_mac_utilization"] = m * k * n / (CONFIG.rows * CONFIG.cols * r["active_cycles"])
        row["model_error"] = {"cycles": model.cycles / host_ready_cycles - 1,
                              "active_cycles": model.active_cycles / r["active_cycles"] - 1}
        if have_scalesim:
            s = run_scalesim(name, kind, dims)
            row["scalesim"] = s
            row["ratio"] = r["active_cycles"] / s["cycles"]
            row["decomposition"] = {
                "stream_both": folds * m,
                "scalesim_fill_and_skew": s["cycles"] - folds * m,
                "scalesim_formula_fill_and_skew": folds * (2 * CONFIG.rows + CONFIG.cols - 2),
                "rtl_overhead": r["active_cycles"] - r["mac_busy"],
                "rtl_overhead_parts": rtl_overhead(program, model),
                "rtl_host_transfers": host_ready_cycles - r["active_cycles"],
            }
        rows.append(row)

    print(f"\n{CONFIG.rows}x{CONFIG.cols} array, host always ready; RTL = Verilator counters"
          + (" (RTL skipped: model numbers)" if not rtl else ""))
    header = (f"{'shape':<26}{'folds':>6}{'RTL all':>9}{'RTL comp':>9}{'model':>9}{'SCALE-Sim':>10}{'ratio':>7}"
              f"{'stream':>8}{'SS fill+skew':>13}{'RTL ovh':>8}{'=fill':>6}{'+bubbles':>9}{'+tail':>6}"
              f"{'host':>7}{'util':>7}")
    print(header)
    print("-" * len(header))
    for row in rows:
        r, d, s = row["rtl"], row.get("decomposition", {}), row.get("scalesim", {})
        ratio = f"{row['ratio']:.3f}" if "ratio" in row else "-"
        print(f"{row['name']:<26}{row['folds']:>6}{r['cycles'] - r['stall_cycles']:>9}{r['active_cycles']:>9}"
              f"{row['model']['active_cycles']:>9}{s.get('cycles', '-'):>10}"
              f"{ratio:>7}"
              f"{d.get('stream_both', '-'):>8}{d.get('scalesim_fill_and_skew', '-'):>13}"
              f"{d.get('rtl_overhead', '-'):>8}{d.get('rtl_overhead_parts', {}).get('first_weight_fill', '-'):>6}"
              f"{d.get('rtl_overhead_parts', {}).get('tile_bubbles', '-'):>9}"
              f"{d.get('rtl_overhead_parts', {}).get('tail_drain_and_activate', '-'):>6}"
              f"{d.get('rtl_host_transfers', '-'):>7}"
              f"{100 * row['utilization_compute']:>6.1f}%")
    large = next(row for row in rows if row["name"] == LARGE)
    print(f"\nMAC utilization on {LARGE}: {100 * large['utilization_compute']:.1f} % of the compute phase "
          f"(steady state, double-buffered weights), {100 * large['utilization_total']:.1f} % including host "
          "transfers")
    worst = max(abs(e) for row in rows for e in row["model_error"].values())
    print(f"analytic model vs RTL counters: largest error {100 * worst:.2f} %")

    digits = {"golden": digits_golden()}
    if not args.no_rtl and args.images:
        digits["rtl"] = run_digits_rtl(args.images, RUNNERS[args.runner])
        for t in digits["rtl"].values():  # summed over the batched device calls, host always ready
            t["utilization_compute"] = t["mac_busy"] / t["active_cycles"]
            t["utilization_total"] = t["mac_busy"] / (t["cycles"] - t["stall_cycles"])
    print("\ndigits, int8 on the systolic array against float")
    for name, g in digits["golden"].items():
        line = (f"  {name}: float {100 * g['float_accuracy']:.2f} %, compiler int8 reference "
                f"{100 * g['compiler_int8_accuracy']:.2f} %, systolic int8 {100 * g['systolic_int8_accuracy']:.2f} % "
                f"(golden, {g['images']} images)")
        if "rtl" in digits:
            t = digits["rtl"][name]
            line += (f"; RTL {100 * t['int8_accuracy']:.2f} % vs float {100 * t['float_accuracy']:.2f} % on "
                     f"{t['images']} images, bit-exact with the golden model over {t['device_calls']} device calls; "
                     f"MAC utilization {100 * t['utilization_total']:.1f} % including host transfers "
                     f"({100 * t['utilization_compute']:.1f} % of the compute phase)")
        print(line)

    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, RESULTS / "systolic_cycles.png")
    out = {"config": json.loads(CONFIG.to_json()), "runner": args.runner,
           "scalesim_version": scalesim_version() if have_scalesim else None,
           "rtl_measured": bool(rtl), "shapes": rows, "large_gemm": LARGE,
           "utilization_large_gemm": {"compute_phase": large["utilization_compute"],
                                      "including_host_transfers": large["utilization_total"]},
           "model_largest_error": worst, "digits": digits,
           "machine": platform.platform(), "seconds": round(time.time() - started, 1)}
    (RESULTS / "systolic.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'systolic.json'} and {RESULTS / 'systolic_cycles.png'}")


if __name__ == "__main__":
    main()

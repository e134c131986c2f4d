"""EIE RTL: MACs per cycle per PE, load efficiency, RTL cycles against the cycle model, simulation speed.

Runs on the Verilator RTL through the native runner (``sparq.sim.native``; ``--runner cocotb`` for the cocotb path),
every output word checked against the golden model:

* **Layers on 16 PEs** (FIFO depth 8, dense Q8.8 inputs): a *balanced* layer (every PE has the same number of
  entries in every column: the best case), uniform random layers at 5-50 % density (the usual case) and one with a
  sparse input. Per layer: the RTL's compute cycles (first broadcast to last entry issued) against
  ``sparq.sim.eie.cycle``'s ``total`` (the paper's machine) and their ratio, and the model's ``total`` given the
  RTL's queue latency (``RTL_START_LATENCY``); per-PE busy cycles must equal the model's exactly; load
  efficiency ``sum(busy) / (N * compute)``; entries per cycle per PE (padding included) and useful MACs (non-zero
  weight times non-zero activation) per cycle per PE.
* **Simulated cycles per second** of the 16-PE design under Verilator (with the runner chosen): counter cycles of
  the runs over the wall time from ``start`` to ``done``.
* **Digits MLP on 4 PEs**: images per second of simulation (load input, run three layers, read ten outputs) and
  accuracy, RTL against golden.

Writes ``bench/results/eie_rtl.json``.

    .venv/bin/python bench/eie_rtl.py [--images 200] [--runner native|cocotb]
"""

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "eie_rtl"))
from conftest import CONFIG4, config_for, layer_image, random_codes  # noqa: E402

from sparq.compiler.eie import lower_compressed  # noqa: E402
from sparq.formats.eie import ACT_FRAC, to_fixed  # noqa: E402
from sparq.hw.eie import EIE  # noqa: E402
from sparq.sim.eie import Golden, cycle  # noqa: E402
from sparq.sim.native import RUNNERS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
N_PE = 16


def balanced_codes(rng, out_len, in_len, per_pe):
    """Every column has exactly ``per_pe`` non-zeros in each PE's slice of rows."""
    codes = np.zeros((out_len, in_len), dtype=np.int64)
    rows = out_len // N_PE
    for j in range(in_len):
        for k in range(N_PE):
            local = rng.choice(rows, per_pe, replace=False)
            codes[local * N_PE + k, j] = rng.integers(1, 16, per_pe)
    return codes


def layers(directory, config):
    rng = np.random.default_rng(2016)
    cases = [("balanced 512x512, 4 per PE per column", balanced_codes(rng, 512, 512, 4), 1.0)]
    for density in (0.05, 0.1, 0.2, 0.5):
        cases.append((f"random 512x512 at {density:.0%}", random_codes(rng, 512, 512, density), 1.0))
    cases.append(("random 512x512 at 10%, input 30% dense", random_codes(rng, 512, 512, 0.1), 0.3))
    jobs, meta = [], []
    for n, (name, codes, act_density) in enumerate(cases):
        image, path = layer_image(Path(directory) / f"layer{n}", config, codes, seed=n)
        x = rng.integers(1, 2000, codes.shape[1]) * rng.choice([-1, 1], codes.shape[1])
        x = x * (rng.random(codes.shape[1]) < act_density)
        jobs.append({"image_dir": path, "inputs": [[int(v) for v in x]]})
        meta.append((name, image, codes, x))
    return jobs, meta


def measure_layers(directory, run):
    config = config_for(N_PE)
    jobs, meta = layers(directory, config)
    results = run(EIE(config), "sparq.sim.tb.eie:run_network", jobs=jobs, poll=256)
    rows, cycles, seconds = [], 0, 0.0
    for (name, image, codes, x), result in zip(meta, results):
        counters = result["counters"][0]
        model = cycle.run(image, np.array(x))[0]
        rtl_model = cycle.simulate(cycle.layer_costs(image, 0, np.array(x)), config.fifo_depth,
                                   **cycle.RTL_LATENCY)
        assert counters["busy"] == model.busy.tolist(), name
        compute = counters["compute"]
        entries = sum(counters["busy"])
        macs = int(np.count_nonzero(codes[:, np.flatnonzero(x)]))
        rows.append({"layer": name, "rtl_compute_cycles": compute, "model_cycles": int(model.total),
                     "rtl_over_model": compute / model.total,
                     "model_cycles_with_rtl_queue_latency": int(rtl_model.total),
                     "load_efficiency": entries / (N_PE * compute),
                     "model_load_efficiency": float(model.load_efficiency),
                     "entries_per_cycle_per_pe": entries / (N_PE * compute),
                     "macs_per_cycle_per_pe": macs / (N_PE * compute), "rtl_total_cycles": counters["cycles"],
                     "stall_cycles": sum(counters["stall"])})
        cycles += counters["cycles"]
        seconds += result["run_seconds"]
    return rows, cycles / seconds


def measure_digits(directory, count, run):
    from sparq.compiler.datasets import load_digits_split
    from sparq.compiler.pipeline import compress_digits_mlp
    compressed, _ = compress_digits_mlp(bits=4, progress=False)
    _, _, x_test, y_test = load_digits_split()
    image = lower_compressed(compressed, CONFIG4)
    path = str(image.save(Path(directory) / "mlp"))
    inputs = [[int(v) for v in to_fixed(x, ACT_FRAC)] for x in x_test[:count]]
    result = run(EIE(CONFIG4), "sparq.sim.tb.eie:run_network", jobs=[{"image_dir": path, "inputs": inputs}])[0]
    rtl = np.array([int(np.argmax(out)) for out in result["outputs"]])
    golden = Golden(image).classify(x_test[:count])
    per_image = [c["cycles"] for c in result["counters"]]
    return {"images": count, "rtl_accuracy": float(np.mean(rtl == y_test[:count])),
            "golden_accuracy": float(np.mean(golden == y_test[:count])), "bit_exact": bool(np.array_equal(rtl, golden)),
            "images_per_second": count / result["seconds"], "cycles_per_image": float(np.mean(per_image)),
            "compute_cycles_per_image": float(np.mean([c["compute"] for c in result["counters"]]))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="digits test images to run (default 200)")
    parser.add_argument("--runner", choices=RUNNERS, default="native", help="RTL runner (default: native)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        rows, cycles_per_second = measure_layers(directory, RUNNERS[args.runner])
        digits = measure_digits(directory, args.images, RUNNERS[args.runner])
    print(f"{'layer (16 PEs, FIFO 8)':42s} {'RTL':>7s} {'model':>7s} {'ratio':>6s} {'model+q':>7s} "
          f"{'load eff':>8s} {'MAC/c/PE':>8s}")
    for r in rows:
        print(f"{r['layer']:42s} {r['rtl_compute_cycles']:7d} {r['model_cycles']:7d} {r['rtl_over_model']:6.3f} "
              f"{r['model_cycles_with_rtl_queue_latency']:7d} {r['load_efficiency']:8.3f} "
              f"{r['macs_per_cycle_per_pe']:8.3f}")
    print("model: the paper's machine (start latency 1); model+q: the same given the RTL's queue latency "
          f"({cycle.RTL_START_LATENCY} cycles)")
    print(f"Verilator ({args.runner} runner), 16 PEs: {cycles_per_second:,.0f} simulated cycles/s")
    print(f"digits MLP on 4 PEs: {digits['images']} images, RTL accuracy {digits['rtl_accuracy']:.4f} "
          f"(golden {digits['golden_accuracy']:.4f}, bit-exact {digits['bit_exact']}), "
          f"{digits['images_per_second']:.1f} images/s of simulation, {digits['cycles_per_image']:.0f} cycles/image")
    RESULTS.mkdir(exist_ok=True)
    out = {"n_pe": N_PE, "fifo_depth": 8, "layers": rows, "verilator_cycles_per_second_16pe": cycles_per_second,
           "runner": args.runner,
           "digits_mlp_4pe": digits, "machine": platform.machine(), "python": platform.python_version()}
    (RESULTS / "eie_rtl.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {RESULTS / 'eie_rtl.json'}")


if __name__ == "__main__":
    main()

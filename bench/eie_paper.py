"""EIE's Table III, load efficiency against FIFO depth, speed-up against PE count and padding overhead.

Each of the nine Table III layers (``../shared/REFERENCE.md``, section EIE) becomes a random 4-bit code matrix with
the published size (input x output) and weight density, and a random input with the published activation density.
Each is lowered with :mod:`sparq.compiler.eie` for 64 PEs and timed with the cycle model of :mod:`sparq.sim.eie.cycle` at FIFO
depth 8 and 800 MHz, next to the paper's theoretical and measured times. The sweeps reuse the same matrices:

* load efficiency against FIFO depth 1..256 (Alex-7, 64 PEs);
* speed-up against PE count 1..256 (Alex-7, VGG-7, NT-We; FIFO depth 8), relative to one PE;
* padding entries as a % of non-zeros against PE count (all nine layers).

Also times the lowering of the fc6-size layer (Alex-6, 9216x4096 at 9 %, 64 PEs). Prints the tables and writes
``bench/results/eie_paper.json`` and ``eie_table3.png``, ``eie_fifo_depth.png``, ``eie_pe_scaling.png``,
``eie_padding.png``.

    .venv/bin/python bench/eie_paper.py [--seed 0]
"""

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from sparq.compiler.eie import LayerSpec, column_entries, lower
from sparq.formats.eie import CapacityError, EieConfig
from sparq.sim.eie.cycle import CLOCK_HZ, column_costs, layer_costs, simulate

RESULTS = Path(__file__).resolve().parent / "results"

TABLE_III = [  # name, inputs (columns), outputs (rows), weight density, activation density, theory us, actual us
    ("Alex-6", 9216, 4096, 0.09, 0.351, 28.1, 30.3),
    ("Alex-7", 4096, 4096, 0.09, 0.353, 11.7, 12.2),
    ("Alex-8", 4096, 1000, 0.25, 0.375, 8.9, 9.9),
    ("VGG-6", 25088, 4096, 0.04, 0.183, 28.1, 34.4),
    ("VGG-7", 4096, 4096, 0.04, 0.375, 7.9, 8.7),
    ("VGG-8", 4096, 1000, 0.23, 0.411, 7.3, 8.4),
    ("NT-We", 4096, 600, 0.10, 1.0, 5.2, 8.0),
    ("NT-Wd", 600, 8791, 0.11, 1.0, 13.0, 13.9),
    ("NT-LSTM", 1201, 2400, 0.10, 1.0, 6.5, 7.5),
]

# 64 PEs, FIFO 8 and the paper's Spmat and Act sizes; pointers doubled, since VGG-6 needs 25089 per PE (the paper's
# Ptr SRAM holds 16 K). Whether each layer fits the paper's sizes exactly is recorded too.
CONFIG = EieConfig(n_pe=64, fifo_depth=8, ptr_depth=32768, spmat_depth=16384, act_depth=512, bias_depth=1024)
FIFO_DEPTHS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
PE_COUNTS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
SCALING_LAYERS = ["Alex-7", "VGG-7", "NT-We"]
CODEBOOK = np.r_[0.0, np.linspace(-0.05, 0.05, 15)]
GAP_LIMIT = 0.15
GAP_NOTES = {
    "Alex-8": "Alex-8 and VGG-8 have the same shape (4096x1000) and nearly the same densities, hence the same expected "
              "work (7.5 and 7.6 us of non-zeros; no padding is possible with at most 16 rows per PE), and this model "
              "gives both about the same time, matching VGG-8's measured 8.4 us. The paper's Alex-8 (8.9 us theory, "
              "9.9 us measured) is 20 % slower than its VGG-8 (7.3 / 8.4): the difference lies in how the non-zeros "
              "of the real AlexNet fc8 weights spread over rows and columns, which a uniform random matrix lacks.",
    "VGG-6": "VGG-7 has the same 4096 rows and 4 % weight density, hence the same entries (padding included) per "
             "non-zero. The paper's VGG-7 theory is 1.61x its expected non-zero time (7.9 us / 4.9 us); applied to "
             "VGG-6's 14.7 us of non-zeros that gives 23.6 us, in line with this model, not the printed 28.1 us, "
             "which is exactly Alex-6's figure (likely a transcription error). The measured 34.4 us is 22 % over "
             "even the printed theory, the largest excess in the table: VGG-6's 25088-long input (392 activations "
             "per PE) is 6x the 64-entry register files and runs in batches through the Act SRAM, which this model "
             "does not charge for, and real weights are not uniformly random.",
}


def random_codes(rng, rows, columns, density):
    """uint8 codes (rows, columns): each weight non-zero with probability ``density``, code uniform in 1..15."""
    codes = np.zeros((rows, columns), dtype=np.uint8)
    for start in range(0, rows, 512):
        block = codes[start:start + 512]
        mask = rng.random(block.shape, dtype=np.float32) < density
        block[mask] = rng.integers(1, 16, int(mask.sum()), dtype=np.uint8)
    return codes


def random_input(rng, length, density):
    """Q8.8 activations: non-zero with probability ``density``, positive (they come out of a ReLU)."""
    return rng.integers(1, 1 << 10, length) * (rng.random(length) < density)


def table_iii(layers):
    """The Table III rows: predicted time and its make-up next to the paper's, and the fc6 lowering time."""
    rows, lowering_seconds = [], []
    for name, columns, out_rows, w, act, theory, actual in TABLE_III:
        codes, a = layers[name]
        spec = LayerSpec(codes, CODEBOOK, relu=True)
        started = time.perf_counter()
        image = lower([spec], CONFIG)
        seconds = time.perf_counter() - started
        if name == "Alex-6":
            lowering_seconds = [seconds] + [_timed(lower, [spec], CONFIG) for _ in range(2)]
        costs = layer_costs(image, 0, a)
        stats = simulate(costs, CONFIG.fifo_depth)
        active = np.flatnonzero(a)
        entries = np.diff(image.pointers(0), axis=1)[:, active]
        predicted = stats.seconds() * 1e6
        us = 1e6 / (CONFIG.n_pe * CLOCK_HZ)
        try:
            image.check_fits(EieConfig(n_pe=64))
            paper_memories = "fits"
        except CapacityError as error:
            paper_memories = str(error).splitlines()[1].strip()
        ratio = predicted / actual
        rows.append({
            "layer": name, "size": f"{columns}x{out_rows}", "weight_density": w, "activation_density": act,
            "nonzeros": int(np.count_nonzero(codes)), "broadcasts": int(len(active)),
            "padding_pct": round(100 * (np.diff(image.pointers(0), axis=1).sum() / np.count_nonzero(codes) - 1), 2),
            "us_nonzeros_only": round(np.count_nonzero(codes[:, active]) * us, 2),
            "us_entries_with_padding": round(entries.sum() * us, 2),
            "us_plus_empty_columns": round(costs.sum() * us, 2),
            "us_busiest_pe": round(stats.busy.max() / CLOCK_HZ * 1e6, 2),
            "cycles": stats.total, "predicted_us": round(predicted, 2),
            "load_efficiency": round(stats.load_efficiency, 4),
            "paper_theory_us": theory, "paper_actual_us": actual, "ratio_to_actual": round(ratio, 3),
            "ratio_to_theory": round(predicted / theory, 3), "lowering_s": round(seconds, 3),
            "paper_memories": paper_memories,
            "gap_note": GAP_NOTES.get(name, "no explanation recorded") if abs(ratio - 1) > GAP_LIMIT else None,
        })
    return rows, lowering_seconds


def _timed(function, *args):
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def fifo_sweep(codes, a):
    """Load efficiency and cycles of one layer on 64 PEs for each FIFO depth."""
    costs = column_costs(column_entries(codes, CONFIG.n_pe), np.flatnonzero(a))
    return [{"fifo_depth": d, "cycles": (s := simulate(costs, d)).total, "load_efficiency": round(s.load_efficiency, 4)}
            for d in FIFO_DEPTHS]


def pe_sweeps(layers):
    """Per PE count: cycles and speed-up over one PE of the scaling layers, and every layer's padding %."""
    scaling = {name: [] for name in SCALING_LAYERS}
    padding = {name: [] for name, *_ in TABLE_III}
    for n_pe in PE_COUNTS:
        for name, (codes, a) in layers.items():
            counts = column_entries(codes, n_pe)
            nonzeros = np.count_nonzero(codes)
            padding[name].append(round(100 * (counts.sum() - nonzeros) / nonzeros, 2))
            if name in scaling:
                scaling[name].append(simulate(column_costs(counts, np.flatnonzero(a)), CONFIG.fifo_depth).total)
    speedup = {name: [{"n_pe": n, "cycles": c, "speedup": round(cycles[0] / c, 2)} for n, c in zip(PE_COUNTS, cycles)]
               for name, cycles in scaling.items()}
    return speedup, {name: dict(zip(PE_COUNTS, values)) for name, values in padding.items()}


def plot(rows, fifo, speedup, padding):
    """The four figures, as PNGs in bench/results/."""
    names = [r["layer"] for r in rows]
    x = np.arange(len(names))
    fig = Figure(figsize=(9, 4))
    ax = fig.subplots()
    for i, (key, label) in enumerate([("paper_theory_us", "paper theoretical"), ("paper_actual_us", "paper actual"),
                                      ("predicted_us", "sparq cycle model")]):
        ax.bar(x + (i - 1) * 0.27, [r[key] for r in rows], 0.27, label=label)
    ax.set_xticks(x, names)
    ax.set_ylabel("time per layer (us), 64 PEs, 800 MHz")
    ax.set_title("EIE Table III: random layers of the published size and densities")
    ax.legend()
    _save(fig, "eie_table3.png")

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot([f["fifo_depth"] for f in fifo], [100 * f["load_efficiency"] for f in fifo], "o-")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("FIFO depth")
    ax.set_ylabel("load efficiency (%)")
    ax.set_title("Alex-7, 64 PEs")
    ax.grid(alpha=0.3)
    _save(fig, "eie_fifo_depth.png")

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, points in speedup.items():
        ax.plot([p["n_pe"] for p in points], [p["speedup"] for p in points], "o-", label=name)
    ax.plot(PE_COUNTS, PE_COUNTS, "k--", lw=0.8, label="linear")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("PEs")
    ax.set_ylabel("speed-up over 1 PE")
    ax.set_title("Scalability, FIFO depth 8")
    ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, "eie_pe_scaling.png")

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for i, (name, by_pe) in enumerate(padding.items()):  # layers of equal rows and density overlap: vary the line
        ax.plot(list(by_pe), list(by_pe.values()), marker="os^"[i % 3], ls=("-", "--", ":")[i % 3], label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("PEs")
    ax.set_ylabel("padding entries (% of non-zeros)")
    ax.set_title("Padding overhead (runs of more than 15 zeros)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    _save(fig, "eie_padding.png")


def _save(fig, name):
    fig.tight_layout()
    fig.savefig(RESULTS / name, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the random layers and inputs")
    args = parser.parse_args()
    started = time.perf_counter()
    layers = {}
    for i, (name, columns, out_rows, w, act, *_) in enumerate(TABLE_III):
        rng = np.random.default_rng([args.seed, i])
        layers[name] = (random_codes(rng, out_rows, columns, w), random_input(rng, columns, act))

    rows, lowering_seconds = table_iii(layers)
    print(f"{'layer':8} {'size':>11} {'W%':>4} {'Act%':>5} {'pad%':>5} {'nnz us':>7} {'+pad':>6} {'+empty':>7} "
          f"{'busiest':>7} {'sparq us':>8} {'theory':>6} {'actual':>6} {'/actual':>7} {'/theory':>7} {'eff':>5}")
    for r in rows:
        print(f"{r['layer']:8} {r['size']:>11} {100 * r['weight_density']:>4.0f} {100 * r['activation_density']:>5.1f} "
              f"{r['padding_pct']:>5.1f} {r['us_nonzeros_only']:>7.2f} {r['us_entries_with_padding']:>6.2f} "
              f"{r['us_plus_empty_columns']:>7.2f} {r['us_busiest_pe']:>7.2f} {r['predicted_us']:>8.2f} "
              f"{r['paper_theory_us']:>6.1f} {r['paper_actual_us']:>6.1f} {r['ratio_to_actual']:>7.2f} "
              f"{r['ratio_to_theory']:>7.2f} {r['load_efficiency']:>5.3f}")
    for r in rows:
        if r["gap_note"]:
            print(f"gap over {GAP_LIMIT:.0%} on {r['layer']}: {r['gap_note']}")
        if r["paper_memories"] != "fits":
            print(f"{r['layer']} does not fit the paper's per-PE memories: {r['paper_memories']}")
    print(f"lowering Alex-6 (fc6, 9216x4096 at 9 %) for 64 PEs: {', '.join(f'{s:.2f}' for s in lowering_seconds)} s")

    alex7 = layers["Alex-7"]
    fifo = fifo_sweep(*alex7)
    print("FIFO depth  " + " ".join(f"{f['fifo_depth']:>6}" for f in fifo))
    print("efficiency  " + " ".join(f"{f['load_efficiency']:>6.3f}" for f in fifo))
    speedup, padding = pe_sweeps(layers)
    print("PEs         " + " ".join(f"{n:>6}" for n in PE_COUNTS))
    for name, points in speedup.items():
        print(f"{name:11} " + " ".join(f"{p['speedup']:>6.1f}" for p in points))
    for name, by_pe in padding.items():
        print(f"pad% {name:6} " + " ".join(f"{v:>6.1f}" for v in by_pe.values()))

    RESULTS.mkdir(exist_ok=True)
    plot(rows, fifo, speedup, padding)
    result = {"seed": args.seed, "config": asdict(CONFIG), "clock_hz": CLOCK_HZ, "table_iii": rows,
              "eie_lower_speed": {"layer": "Alex-6 9216x4096, 9 %, 64 PEs", "seconds": [round(s, 3) for s in
                                                                                       lowering_seconds],
                                  "best_s": round(min(lowering_seconds), 3)},
              "fifo_depth_alex7": fifo, "speedup": speedup, "padding_pct": padding,
              "bench_seconds": round(time.perf_counter() - started, 1)}
    (RESULTS / "eie_paper.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {RESULTS / 'eie_paper.json'} and eie_table3/fifo_depth/pe_scaling/padding.png "
          f"in {result['bench_seconds']} s")


if __name__ == "__main__":
    main()

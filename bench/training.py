"""Issue 10, the training half: DSD, knowledge distillation, and data / model parallelism across K accelerators.

    .venv/bin/python bench/training.py                  # all three parts
    .venv/bin/python bench/training.py --part dsd       # or distill, parallel
    .venv/bin/python bench/training.py --rtl            # parallel: also K = 1, 2, 4 on the systolic RTL

Each part prints its tables and writes ``bench/results/training_<part>.json``. Everything is seeded, so a rerun
gives the same numbers.

* **dsd**: baseline dense training against dense-sparse-dense (:mod:`sparq.compiler.dsd`) with the same epoch budget, on
  the digits MLP and CNN over 5 seeds (initialisation and minibatch order), test accuracy mean +- sample std.
* **distill**: students trained on the labels alone against students distilled (:mod:`sparq.compiler.distill`) from the
  shipped digits MLP, over 5 seeds; sizes, int8 systolic cycles and Deep-Compressed EIE cycles against the teacher's.
* **parallel**: scaling efficiency of model and data parallelism for K = 1 .. 16 instances on the cycle models
  (every run bit-exact against the unsplit golden output), optionally K = 1, 2, 4 on the systolic RTL, and a
  design-space sweep over links, modes and K on a Dask LocalCluster of 2 workers (:mod:`sparq.sim.parallel`).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparq.compiler.datasets import load_digits_split  # noqa: E402
from sparq.compiler.default_models import RECIPES, init_digits_cnn, init_digits_mlp  # noqa: E402
from sparq.compiler.distill import distill  # noqa: E402
from sparq.compiler.dsd import DsdSchedule, dense_baseline, dsd_train  # noqa: E402
from sparq.compiler.eie import lower_compressed  # noqa: E402
from sparq.compiler.ir import Dense, Model, Relu  # noqa: E402
from sparq.compiler.models import load_shipped  # noqa: E402
from sparq.compiler.parallel import Link  # noqa: E402
from sparq.compiler.pipeline import DIGITS_MLP_SPARSITY, DeepCompressionConfig, compress  # noqa: E402
from sparq.compiler.systolic import compile_network  # noqa: E402
from sparq.compiler.train import accuracy, fit  # noqa: E402
from sparq.formats.eie import ACT_FRAC, EieConfig, to_fixed  # noqa: E402
from sparq.sim.eie.cycle import run as eie_cycles  # noqa: E402
from sparq.sim.eie.golden import Golden  # noqa: E402
from sparq.sim.parallel import MODES, replay_eie_on_rtl, replay_on_rtl, run_eie, run_systolic, scaling, sweep  # noqa: E402
from sparq.sim.systolic.cycles import predict  # noqa: E402
from sparq.sim.systolic.golden import run_network  # noqa: E402
from sparq.sim.systolic.stimulus import config_for  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SEEDS = range(5)
SYSTOLIC = config_for(8)
"""The 8x8 int8 array every systolic number here uses (the shared test configuration)."""
EIE_INSTANCE = EieConfig(n_pe=4, fifo_depth=8, ptr_depth=1024, spmat_depth=1024, act_depth=128, bias_depth=256,
                        max_layers=4)
"""One EIE instance of the parallel part: the EIE RTL tests' 4-PE configuration (so its Verilator build is shared)."""
EIE_PES = 16
"""PEs of the EIE that the distillation part compares teacher and student on."""

DSD_SCHEDULES = {
    "digits_mlp": DsdSchedule({"fc1": 0.5, "fc2": 0.5, "fc3": 0.5}, dense_epochs=30, sparse_epochs=15,
                              redense_epochs=15, lr=1e-3, weight_decay=1e-4),
    "digits_cnn": DsdSchedule({"conv1": 0.3, "conv2": 0.3, "fc": 0.3}, dense_epochs=14, sparse_epochs=8,
                              redense_epochs=8, lr=2e-3),
}
"""Chosen once, before any run: the shipped recipes' epoch budgets (60 and 30) cut into dense / sparse / re-dense
phases; 50 % sparsity for the over-parameterised MLP, 30 % for the small CNN; re-dense at a tenth of the rate."""

STUDENTS = {"64-100-10": 100, "64-20-10": 20}
TEMPERATURES = (2.0, 4.0, 8.0)
ALPHA = 0.7
STUDENT_SPARSITY = {"fc1": 0.8, "fc2": 0.5}
"""Deep Compression of the student for EIE: the teacher's pipeline (4-bit sharing), milder pruning for the small net."""


def _stats(values):
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)), "values": values.tolist()}


def _pm(stats, scale=100):
    return f"{stats['mean'] * scale:6.2f} +- {stats['std'] * scale:4.2f}"


# --- DSD ----------------------------------------------------------------------------------------------------------

def part_dsd():
    x, y, xt, yt = load_digits_split()
    inits = {"digits_mlp": init_digits_mlp, "digits_cnn": init_digits_cnn}
    out = {}
    for name, schedule in DSD_SCHEDULES.items():
        base, dsd, restored = [], [], []
        for seed in SEEDS:
            model = inits[name](seed)
            base.append(accuracy(dense_baseline(model, x, y, schedule, seed=seed, progress=False), xt, yt))
            trained, masks = dsd_train(model, x, y, schedule, seed=seed, progress=False)
            dsd.append(accuracy(trained, xt, yt))
            pruned = sum(int((~m).sum()) for m in masks.values())
            revived = sum(int((trained.layer(n).weight[~m] != 0).sum()) for n, m in masks.items())
            restored.append(revived / pruned)
        diff = np.array(dsd) - np.array(base)
        out[name] = {"schedule": {**{k: v for k, v in vars(schedule).items()}, "total_epochs": schedule.total_epochs},
                     "baseline": _stats(base), "dsd": _stats(dsd), "dsd_minus_baseline": _stats(diff),
                     "dsd_better": int((diff > 0).sum()), "dsd_worse": int((diff < 0).sum()),
                     "pruned_weights_nonzero_after_redense": float(np.mean(restored))}
    print(f"\nDSD against dense training, same epoch budget, test accuracy (%) over seeds {list(SEEDS)}")
    print(f"{'model':<12}{'epochs':>8}{'baseline':>18}{'DSD':>18}{'DSD - base':>18}{'better/worse':>14}")
    for name, r in out.items():
        print(f"{name:<12}{r['schedule']['total_epochs']:>8}{_pm(r['baseline']):>18}{_pm(r['dsd']):>18}"
              f"{_pm(r['dsd_minus_baseline']):>18}{r['dsd_better']:>8}/{r['dsd_worse']}")
    return out


# --- distillation -------------------------------------------------------------------------------------------------

def init_student(hidden, seed):
    """A He-initialised 64-``hidden``-10 MLP (layers fc1, fc2)."""
    rng = np.random.default_rng(seed)
    return Model([Dense("fc1", rng.normal(0, np.sqrt(2 / 64), (hidden, 64)), np.zeros(hidden)), Relu("relu1"),
                  Dense("fc2", rng.normal(0, np.sqrt(2 / hidden), (10, hidden)), np.zeros(10))], (64,))


def _systolic_cycles(model, x_train, images):
    """Predicted cycles of the int8 systolic run on ``images``, and its accuracy on them."""
    network = compile_network(model, x_train, SYSTOLIC)
    logits, calls = run_network(network, images[0])
    cycles = sum(predict(program.config, program.instructions).cycles for program, _, _ in calls)
    return cycles, float((logits.argmax(1) == images[1]).mean())


def _eie_cycles(model, data, sparsity, seed):
    """Deep Compression of ``model`` (4-bit), lowered for :data:`EIE_PES` PEs: compressed accuracy, weight bytes,
    and the cycle model's mean cycles per test image (all layers)."""
    config = DeepCompressionConfig(sparsity=sparsity, bits=4, seed=seed)
    compressed, report = compress(model, data, config, progress=False)
    image = lower_compressed(compressed, EieConfig(n_pe=EIE_PES))
    golden = Golden(image)
    xt, yt = data[2], data[3]
    cycles = [sum(s.total for s in eie_cycles(image, to_fixed(v, ACT_FRAC), golden=golden)) for v in xt]
    return {"compressed_accuracy": compressed.accuracy["compressed"],
            "eie_golden_accuracy": float((golden.classify(xt) == yt).mean()),
            "compressed_bytes": int(round(report["total"]["bytes"]["huffman"])),
            "compression_ratio": report["total"]["ratio"]["huffman"],
            "eie_cycles_per_image": float(np.mean(cycles)), "eie_config": {"n_pe": EIE_PES, "fifo_depth": 8}}


def part_distill():
    data = load_digits_split()
    x, y, xt, yt = data
    teacher = load_shipped("digits_mlp")
    recipe = {k: v for k, v in RECIPES["digits_mlp"].items() if k != "init"}
    out = {"teacher": {"layers": "64-300-100-10", "test_accuracy": accuracy(teacher, xt, yt),
                       "parameters": sum(l.weight.size + l.bias.size for l in teacher.weighted())},
           "recipe": {**recipe, "alpha": ALPHA, "temperatures": list(TEMPERATURES), "seeds": list(SEEDS)},
           "students": {}}
    best = {}
    for label, hidden in STUDENTS.items():
        plain, distilled = [], {t: [] for t in TEMPERATURES}
        models = {}
        for seed in SEEDS:
            student = init_student(hidden, seed)
            plain.append(accuracy(fit(student, x, y, seed=seed, progress=False, **recipe), xt, yt))
            for t in TEMPERATURES:
                trained = distill(teacher, student, x, y, temperature=t, alpha=ALPHA, seed=seed, progress=False,
                                  **recipe)
                distilled[t].append(accuracy(trained, xt, yt))
                if seed == 0 and t == 4.0:
                    models[label] = trained
        out["students"][label] = {
            "parameters": hidden * 64 + hidden + 10 * hidden + 10, "labels_only": _stats(plain),
            "distilled": {f"T={t:g}": _stats(v) for t, v in distilled.items()},
            "distilled_minus_labels_only": {f"T={t:g}": _stats(np.array(v) - np.array(plain))
                                            for t, v in distilled.items()}}
        best[label] = models[label]
    # Size and cycles: the teacher and the seed-0 student distilled at T=4.
    test = (xt, yt)
    hardware = {}
    for label, model, sparsity in [("teacher 64-300-100-10", teacher, DIGITS_MLP_SPARSITY)] + \
            [(f"student {k} (T=4, seed 0)", m, STUDENT_SPARSITY) for k, m in best.items()]:
        cycles, int8_accuracy = _systolic_cycles(model, x, test)
        params = sum(l.weight.size + l.bias.size for l in model.weighted())
        hardware[label] = {"parameters": int(params), "float32_bytes": int(params * 4), "int8_bytes": int(params),
                           "systolic_cycles_540_images": int(cycles), "systolic_int8_accuracy": int8_accuracy,
                           "eie_sparsity": sparsity, **_eie_cycles(model, data, sparsity, seed=0)}
    out["hardware"] = hardware
    print(f"\nDistillation from the digits MLP teacher ({out['teacher']['test_accuracy'] * 100:.2f} %), alpha "
          f"{ALPHA}, test accuracy (%) over seeds {list(SEEDS)}")
    print(f"{'student':<12}{'params':>8}{'labels only':>18}" + "".join(f"{f'T={t:g}':>18}" for t in TEMPERATURES))
    for label, r in out["students"].items():
        print(f"{label:<12}{r['parameters']:>8}{_pm(r['labels_only']):>18}"
              + "".join(f"{_pm(r['distilled'][f'T={t:g}']):>18}" for t in TEMPERATURES))
    print(f"\n{'model':<32}{'params':>8}{'int8 B':>8}{'systolic cyc':>14}{'int8 acc':>10}{'EIE bytes':>11}"
          f"{'EIE cyc/img':>13}{'EIE acc':>9}")
    for label, r in hardware.items():
        print(f"{label:<32}{r['parameters']:>8}{r['int8_bytes']:>8}{r['systolic_cycles_540_images']:>14}"
              f"{r['systolic_int8_accuracy'] * 100:>9.2f}%{r['compressed_bytes']:>11}"
              f"{r['eie_cycles_per_image']:>13.1f}{r['eie_golden_accuracy'] * 100:>8.2f}%")
    return out


# --- parallelism --------------------------------------------------------------------------------------------------

KS = (1, 2, 4, 8, 16)
LINK = Link(bytes_per_cycle=8, latency=100)
SWEEP_LINKS = ((4, 200), (16, 100), (64, 20))
"""(bytes per cycle, latency) of the sweep's links: a slow serial link, a mid one, a wide on-board bus."""


def _networks():
    x, _, xt, _ = load_digits_split()
    systolic = {name: compile_network(load_shipped(name), x, SYSTOLIC, name=name)
                for name in ("digits_mlp", "digits_cnn")}
    compressed, _ = compress(load_shipped("digits_mlp"), load_digits_split(),
                             DeepCompressionConfig(sparsity=DIGITS_MLP_SPARSITY, bits=4), progress=False)
    return systolic, {"digits_mlp": (compressed, EIE_INSTANCE)}, xt


def part_parallel(rtl=False, images=100, sweep_images=20):
    systolic, eie, xt = _networks()
    out = {"link": {"bytes_per_cycle": LINK.bytes_per_cycle, "latency": LINK.latency}, "images": images,
           "systolic_config": json.loads(SYSTOLIC.to_json()), "eie_instance": {"n_pe": EIE_INSTANCE.n_pe,
                                                                              "fifo_depth": EIE_INSTANCE.fifo_depth},
           "scaling": {}}
    batch = xt[:images]
    print(f"\nScaling over K instances, {images} images, link {LINK.bytes_per_cycle} B/cycle + {LINK.latency} "
          f"cycles latency; efficiency = T(1) / (K T(K)), T(1) the unsplit network on one instance")
    print(f"{'accelerator':<22}{'mode':<7}" + "".join(f"{f'K={k}':>9}" for k in KS) + "   link share at K=16")
    for accel, runs_for in [("systolic " + n, (lambda n: lambda k, m: run_systolic(systolic[n], batch, k, m, LINK))(n))  # noqa: B023
                            for n in systolic] + [("eie digits_mlp (4 PE)",
                                                   lambda k, m: run_eie(eie["digits_mlp"][0], EIE_INSTANCE, batch, k,
                                                                        m, LINK))]:
        base = runs_for(1, "data")
        reference = base.output
        runs = [base]
        for mode in MODES:
            for k in KS:
                if (k, mode) == (1, "data"):
                    continue
                run = runs_for(k, mode)
                if not np.array_equal(run.output, reference):
                    raise AssertionError(f"{accel}, {mode} parallel, K={k}: output differs from the unsplit run")
                runs.append(run)
        rows = scaling(runs)
        out["scaling"][accel] = rows
        for mode in MODES:
            eff = {r["k"]: r["efficiency"] for r in rows if r["mode"] == mode}
            share = [r["link_share"] for r in rows if r["mode"] == mode and r["k"] == KS[-1]][0]
            print(f"{accel:<22}{mode:<7}" + "".join(f"{eff[k]:>9.3f}" for k in KS) + f"   {share:.2f}")
    if rtl:
        out["rtl"] = _rtl_check(systolic["digits_mlp"], eie["digits_mlp"][0], xt[:8])
    points = [{"accelerator": a, "model": m, "mode": mode, "k": k, "bytes_per_cycle": bw, "latency": lat}
              for a, models in (("systolic", systolic), ("eie", eie)) for m in models
              for mode in MODES for k in KS for bw, lat in SWEEP_LINKS if (k, mode) != (1, "model")]
    started = time.perf_counter()
    results = sweep(points, {"images": xt[:sweep_images], "eie": eie, "systolic": systolic})
    out["sweep"] = {"engine": "dask.distributed LocalCluster, 2 worker processes, 1 thread each",
                    "images": sweep_images, "points": len(points), "seconds": time.perf_counter() - started,
                    "results": results}
    print(f"\nDesign-space sweep on Dask ({len(points)} points, {sweep_images} images each): efficiency at K=16")
    print(f"{'accelerator':<22}{'mode':<7}" + "".join(f"{f'{bw}B/c,{lat}':>14}" for bw, lat in SWEEP_LINKS))
    for a, models in (("systolic", systolic), ("eie", eie)):
        for m in models:
            for mode in MODES:
                cells = [next(r["efficiency"] for r in results if (r["accelerator"], r["model"], r["mode"], r["k"],
                              r["bytes_per_cycle"], r["latency"]) == (a, m, mode, KS[-1], bw, lat))
                         for bw, lat in SWEEP_LINKS]
                print(f"{a + ' ' + m:<22}{mode:<7}" + "".join(f"{c:>14.3f}" for c in cells))
    return out


def _rtl_check(network, compressed, images):
    """K = 1, 2, 4 in both modes on the systolic and the EIE RTL: every call's output checked against the golden
    model (a mismatch raises), RTL cycles summed over the calls against the cycle model's."""
    rows = []
    print(f"\nK instances on the RTL (Verilator), digits MLP, {len(images)} images, random host gaps and "
          "back-pressure: every call's output checked against the golden model")
    for accelerator in ("systolic", "eie"):
        for mode in MODES:
            for k in (1, 2, 4):
                if (k, mode) == (1, "model"):
                    continue
                with tempfile.TemporaryDirectory() as directory:
                    if accelerator == "systolic":
                        run = run_systolic(network, images, k, mode, LINK)
                        calls = replay_on_rtl(run, directory, seed=k, gap_probability=0.1, stall_probability=0.1)
                    else:
                        run = run_eie(compressed, EIE_INSTANCE, images, k, mode, LINK)
                        calls = replay_eie_on_rtl(run, directory, seed=k, gap_probability=0.1,
                                                  stall_probability=0.1)
                rtl = sum(c["rtl_cycles"] for c in calls)
                model = sum(c["model_cycles"] for c in calls)
                rows.append({"accelerator": accelerator, "mode": mode, "k": k, "calls": len(calls),
                             "rtl_cycles": rtl, "model_cycles": model, "bit_exact": True})
                print(f"  {accelerator:<9}{mode:<6} K={k}: {len(calls):>3} calls, RTL {rtl:>6} cycles, model "
                      f"{model:>6} (RTL / model {rtl / model:.4f})")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("dsd", "distill", "parallel", "all"), default="all")
    parser.add_argument("--rtl", action="store_true", help="parallel: also run K = 1, 2, 4 on the systolic RTL")
    args = parser.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    parts = {"dsd": part_dsd, "distill": part_distill, "parallel": lambda: part_parallel(rtl=args.rtl)}
    for name in (parts if args.part == "all" else [args.part]):
        started = time.perf_counter()
        result = parts[name]()
        result["seconds"] = time.perf_counter() - started
        path = RESULTS / f"training_{name}.json"
        path.write_text(json.dumps(result, indent=1, default=float) + "\n")
        print(f"wrote {path.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()

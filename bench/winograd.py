"""Winograd F(2x2, 3x3) against im2col on the systolic accelerator's RTL: multiplies and cycles.

Every convolution is lowered both ways for the same Winograd build of an 8x8 array and run on the Verilator RTL
through the native runner (``--runner cocotb`` for the cocotb path; host always ready, every output byte checked
against the golden model; the two paths' int8 outputs are identical, which is checked too). From the RTL counters:

* **multiplies** = ``mac_busy * rows * cols`` -- the multiplier slots the array used (a vector entering the array
  occupies all ``rows x cols`` PEs, padding included);
* **cycles** = ``cycles - stall_cycles`` (the whole program, host transfers included) and the **compute phase**
  ``active_cycles`` (weight loads, matrix unit, transforms, activation).

Where the cycles go: per tile, the matrix work is ``16 * KT * NT`` issue cycles (``KT``, ``NT`` the input and
output channel blocks), while the transforms take ``16 * KT`` (TRANSFORM_IN reads 16 UB words a tile per channel
block) plus ``16 * NT`` (TRANSFORM_OUT reads 16 accumulator words a tile per output block) cycles, and nothing
overlaps a transform. With few channels (``KT = NT = 1``) the transforms cost twice the multiplies they save;
with 8 blocks each way they cost a quarter. ``transform_cycles`` in the JSON is that part, from the cycle model
(which equals the RTL counters exactly, ``model_cycles``). The host sends 4x the input as tile words instead of
im2col's 9x (``input_words``).

Layers: the digits CNN's two convolutions (each device call of the first ``--images`` test images) and a VGG-like
3x3 layer, 64 -> 64 channels on a 16x16 image (64 tiles; channels a multiple of the array, so it tiles evenly and
the multiply ratio should be 2.25). The digits CNN's ``conv1`` has one input channel: im2col packs its 9 taps
into ``ceil(9 / 8) = 2`` array rows, while Winograd spends a whole array row on the single channel for each of
the 16 positions, so Winograd loses there.

Writes ``bench/results/winograd.json``.

    .venv/bin/python bench/winograd.py [--images 20] [--runner native|cocotb]
"""

import argparse
import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from sparq.formats.systolic import save_program
from sparq.sim.native import RUNNERS

RESULTS = Path(__file__).resolve().parent / "results"
VGG = dict(channels=64, outputs=64, height=16, width=16, padding=(1, 1, 1, 1))


def config():
    """The Winograd 8x8 build, with memories large enough for the VGG-like layer's im2col input (9x) and its
    Winograd weights (3.6x)."""
    from sparq.sim.systolic.winograd import winograd_config
    return replace(winograd_config(8), ub_depth=32768, wb_depth=32768)


def digits_calls(cfg, images: int):
    """``{layer: {path: [(program, input words, expected output words), ...]}}`` for the digits CNN's convolutions
    on the first ``images`` test images, one batch, from the golden model; also checks that both paths give the
    same logits."""
    from sparq.compiler.datasets import load_digits_split
    from sparq.compiler.models import load_shipped
    from sparq.compiler.systolic import compile_network
    from sparq.sim.systolic.golden import run_network
    x_train, _, x_test, _ = load_digits_split()
    model = load_shipped("digits_cnn")
    calls, logits = {}, {}
    for path, winograd in (("im2col", False), ("winograd", True)):
        network = compile_network(model, x_train, cfg, name="digits_cnn", winograd=winograd, batch=images)
        logits[path], log = run_network(network, x_test[:images])
        for program, words, out in log:
            name = program.meta["layers"][0]["name"]
            if name.startswith("conv"):
                calls.setdefault(name, {}).setdefault(path, []).append((program, words, out))
    assert np.array_equal(logits["im2col"], logits["winograd"]), "Winograd and im2col logits differ"
    return calls


def vgg_calls(cfg):
    from sparq.sim.systolic.golden import run_program
    from sparq.sim.systolic.winograd import conv_programs, random_conv
    x, layer = random_conv(0, images=1, **VGG)
    programs, unpack = conv_programs(x, layer, cfg)
    outputs = {}
    calls = {}
    for path, (program, words) in programs.items():
        out = run_program(program.config, program.instructions, program.stream(words))
        outputs[path] = unpack(path, out)
        calls[path] = [(program, words, out)]
    assert np.array_equal(outputs["im2col"], outputs["winograd"]), "Winograd and im2col outputs differ"
    return {"vgg_like": calls}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20, help="digits test images (one device call per layer)")
    parser.add_argument("--runner", choices=RUNNERS, default="native", help="RTL runner (default: native)")
    args = parser.parse_args()
    from sparq.formats.systolic import Opcode
    from sparq.hw.systolic.accelerator import SystolicAccelerator
    from sparq.sim.systolic.cycles import TRANSFORM_IN_OVERHEAD, TRANSFORM_OUT_OVERHEAD, predict
    overhead = {Opcode.TRANSFORM_IN: TRANSFORM_IN_OVERHEAD, Opcode.TRANSFORM_OUT: TRANSFORM_OUT_OVERHEAD}

    cfg = config()
    layers = {**digits_calls(cfg, args.images), **vgg_calls(cfg)}
    runs, keys = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, paths in layers.items():
            for path, calls in paths.items():
                for i, (program, words, _) in enumerate(calls):
                    stem = Path(tmp) / f"{name}_{path}_{i}"
                    save_program(program, f"{stem}.npz")
                    np.save(f"{stem}.npy", words)
                    runs.append(dict(name=f"{name} {path} {i}", program=f"{stem}.npz", inputs=f"{stem}.npy"))
                    keys.append((name, path, program))
        start = time.time()
        results = RUNNERS[args.runner](SystolicAccelerator(cfg), "sparq.sim.tb.systolic:run_program_files",
                                       runs=runs)
        seconds = time.time() - start
    totals = {}
    for (name, path, program), result in zip(keys, results):
        t = totals.setdefault(name, {}).setdefault(path, dict(multiplies=0, cycles=0, active_cycles=0, mac_busy=0,
                                                              model_cycles=0, transform_cycles=0, input_words=0,
                                                              calls=0))
        t["transform_cycles"] += sum(16 * ins.count + overhead[ins.opcode] for ins in program.instructions
                                     if ins.opcode in overhead)
        t["input_words"] += program.input_words
        t["multiplies"] += result["mac_busy"] * cfg.rows * cfg.cols
        t["mac_busy"] += result["mac_busy"]
        t["cycles"] += result["cycles"] - result["stall_cycles"]
        t["active_cycles"] += result["active_cycles"]
        t["model_cycles"] += predict(cfg, program.instructions).cycles
        t["calls"] += 1
    rows = []
    for name, paths in totals.items():
        a, w = paths["im2col"], paths["winograd"]
        rows.append(dict(layer=name, im2col=a, winograd=w, multiply_ratio=a["multiplies"] / w["multiplies"],
                         cycle_ratio=a["cycles"] / w["cycles"],
                         compute_cycle_ratio=a["active_cycles"] / w["active_cycles"]))
    print(f"\nWinograd F(2x2,3x3) against im2col, {cfg.rows}x{cfg.cols} array (Winograd build), RTL counters, "
          f"host always ready; ratios are im2col / Winograd (> 1: Winograd better)")
    header = (f"{'layer':<10}{'mults im2col':>14}{'mults wino':>12}{'ratio':>7}{'cycles im2col':>15}"
              f"{'cycles wino':>13}{'ratio':>7}{'compute ratio':>15}")
    print(header)
    print("-" * len(header))
    for row in rows:
        a, w = row["im2col"], row["winograd"]
        print(f"{row['layer']:<10}{a['multiplies']:>14}{w['multiplies']:>12}{row['multiply_ratio']:>7.3f}"
              f"{a['cycles']:>15}{w['cycles']:>13}{row['cycle_ratio']:>7.3f}{row['compute_cycle_ratio']:>15.3f}")
    vgg = next(r for r in rows if r["layer"] == "vgg_like")
    print(f"\nVGG-like layer (tiles evenly): multiply ratio {vgg['multiply_ratio']:.3f}, "
          f"{100 * abs(vgg['multiply_ratio'] / 2.25 - 1):.2f} % from 2.25")
    worst = max(abs(p["model_cycles"] - p["cycles"]) for r in totals.values() for p in r.values())
    print(f"cycle model (sparq.sim.systolic.cycles) against the RTL counters: largest difference {worst} cycles")
    for row in rows:
        w = row["winograd"]
        print(f"{row['layer']}: transforms {w['transform_cycles']} of {w['active_cycles']} Winograd compute cycles "
              f"({100 * w['transform_cycles'] / w['active_cycles']:.0f} %); host input words "
              f"{row['im2col']['input_words']} (im2col) vs {w['input_words']} (Winograd tiles)")
    out = dict(array=f"{cfg.rows}x{cfg.cols}", config=json.loads(cfg.to_json()), digits_images=args.images,
               vgg_like=VGG, layers=rows, rtl_seconds=round(seconds, 1), platform=platform.platform())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "winograd.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'winograd.json'}")


if __name__ == "__main__":
    main()

"""The bundled examples through the whole flow (issue 20's closing numbers), with the Python API (``sparq.api``):
for each shipped model on its bundled data (digits MLP, digits CNN, wine MLP, breast-cancer MLP), the float and
compressed test accuracy (the whole test split), the compression ratio, and the EIE and systolic cycles per
inference in the demo's configurations: EIE with 4 PEs (FIFO 8, memories sized to the image) and the 4x4 systolic
array (``sparq.targets.SYSTOLIC.defaults``) with one program call for the run's inputs; then the sensitivity scan's
sparsities for the digits MLP at a 0.5-point budget against the hand-chosen ones, each compressed and measured.

Every example is compressed with its hand-chosen sparsities (``sparq.compiler.pipeline.SHIPPED_SPARSITY``), retrained,
4-bit codes. The cycles are of the first ``--images`` test inputs (default 20, as the demo) on the golden models
(cycle models; ``--backend rtl`` runs the RTLs under Verilator and reports their performance counters, building one
EIE model per example)::

    .venv/bin/python bench/examples.py                      # writes bench/results/examples.json
    .venv/bin/python bench/examples.py --backend rtl
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _example(name, workspace, images, backend):
    import sparq
    from sparq.compiler.models import shipped_path
    started = time.perf_counter()
    compressed = sparq.compress(shipped_path(name), workspace=workspace)
    row = {"model": name, "data": compressed.data, "sparsity": compressed.report["sparsity"],
           "float_accuracy": compressed.accuracy["float"], "compressed_accuracy": compressed.accuracy["compressed"],
           "compression_ratio": compressed.ratio,
           "weights_only_ratio": compressed.report["total"]["ratio_weights_only"]}
    for target, fields in (("eie", {"n_pe": 4}), ("systolic", {})):
        image = sparq.lower(compressed, target=target, batch=images if target == "systolic" else None, **fields)
        run = sparq.simulate(image, backend=backend, images=images)
        result = run.result
        row[target] = {"config": result.config, "images": result.images, "cycles_per_inference": run.cycles_per_input,
                       "counter_source": result.counter_source, "accuracy_on_these_inputs": result.accuracy,
                       "macs_per_inference": result.macs_performed / result.images,
                       "utilization": result.utilization}
        if target == "eie":
            row[target]["image_bytes"] = image.storage["total_bits"] / 8
            row[target]["image_ratio_against_float32"] = image.storage["ratio"]
            row[target]["host_layers"] = image.lowered.meta["host_layers"]
    row["seconds"] = time.perf_counter() - started
    return row


def _scan(workspace):
    """The digits MLP compressed with ``sparsity="auto"`` at a 0.5-point budget, against the hand-chosen run."""
    import sparq
    from sparq.compiler.models import shipped_path
    from sparq.compiler.pipeline import DIGITS_MLP_SPARSITY
    auto = sparq.compress(shipped_path("digits_mlp"), sparsity="auto", max_drop=0.5, workspace=workspace)
    scan = auto.report["sensitivity"]
    return {"max_drop_points": scan["max_drop"], "validation_samples": scan["validation_samples"],
            "validation_baseline": scan["baseline"], "chosen": scan["chosen"], "hand_chosen": DIGITS_MLP_SPARSITY,
            "auto": {"compressed_accuracy": auto.accuracy["compressed"], "compression_ratio": auto.ratio,
                     "kept_percent": auto.report["total"]["kept_percent"]},
            "grid": scan["grid"], "curves": scan["curves"]}


def main(argv=None):
    from rich.console import Console
    from rich.table import Table

    from sparq.compiler.models import SHIPPED
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20, help="test inputs per simulation (default 20)")
    parser.add_argument("--backend", choices=("golden", "rtl"), default="golden", help="default golden")
    parser.add_argument("--json", default=str(RESULTS / "examples.json"), help="where to write the result")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sparq-examples-") as tmp:
        rows = [_example(name, Path(tmp) / name, args.images, args.backend) for name in SHIPPED]
        scan = _scan(Path(tmp) / "auto")
    console = Console(width=160)
    table = Table(title=f"bundled examples: EIE 4 PEs, systolic 4x4 (demo configurations), {args.images} test "
                        f"inputs, {args.backend} backend")
    for column in ("model", "float acc", "compressed acc", "ratio", "EIE cycles/inf", "systolic cycles/inf",
                   "EIE image", "on the host"):
        table.add_column(column, justify="left" if column in ("model", "on the host") else "right")
    for row in rows:
        table.add_row(row["model"], f"{100 * row['float_accuracy']:.2f}%", f"{100 * row['compressed_accuracy']:.2f}%",
                      f"{row['compression_ratio']:.1f}x", f"{row['eie']['cycles_per_inference']:,.0f}",
                      f"{row['systolic']['cycles_per_inference']:,.0f}", f"{row['eie']['image_bytes']:,.0f} B "
                      f"({row['eie']['image_ratio_against_float32']:.1f}x)", ", ".join(row["eie"]["host_layers"]))
    console.print(table)
    console.print(f"digits MLP, sensitivity scan at {scan['max_drop_points']:g} points on "
                  f"{scan['validation_samples']} validation samples: chosen "
                  + ", ".join(f"{k} {v:.2f}" for k, v in scan["chosen"].items()) + "; hand-chosen "
                  + ", ".join(f"{k} {v:.2f}" for k, v in scan["hand_chosen"].items())
                  + f"; auto compressed {100 * scan['auto']['compressed_accuracy']:.2f}% at "
                    f"{scan['auto']['compression_ratio']:.1f}x ({scan['auto']['kept_percent']:.1f}% of the weights "
                    f"kept)")
    result = {"images": args.images, "backend": args.backend, "cpu_count": os.cpu_count(),
              "examples": rows, "sensitivity_digits_mlp": scan}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

"""``sparq demo`` (``make demo``): the whole flow on the bundled digits MLP, with no download.

1. compress it (prune, share 4-bit weights, Huffman);
2. lower it to EIE (4 PEs) and to the systolic array (4x4, a program for the run's images in one call where they
   fit);
3. run a batch of digits test images on both RTLs under Verilator, every output checked bit-exactly against the
   golden models;
4. print accuracy, compression ratio, cycles and utilization;
5. write the report (HTML with plots, and Markdown).
"""

import time
from pathlib import Path

from .builds import build_rtl
from .commands import simulation_table
from .flow import compress_model, load_lowered, lower_model
from .hwconfig import parameters
from .report import write_report
from .simulation import simulate
from .targets import EIE, SYSTOLIC
from .workspace import DEMO, json_text, writing

__all__ = ["run_demo", "DEMO_WORKSPACE"]

DEMO_WORKSPACE = Path("build/demo")


def run_demo(args, console):
    from rich.rule import Rule
    from rich.table import Table

    started = time.perf_counter()
    phases = {}

    def phase(name):
        phases[name] = time.perf_counter() - started - sum(phases.values())

    workspace = Path(args.out or DEMO_WORKSPACE)
    console.print(Rule("1. compress the bundled digits MLP"))
    done = compress_model(None, workspace, progress=False)
    report, paths = done.report, done.paths
    from sparq.compiler.report import print_report
    print_report(report, console)
    phase("compress")

    console.print(Rule("2. lower it to EIE (4 PEs) and to the systolic array (4x4)"))
    for target, params, batch in ((EIE, parameters(EIE, pes=args.pes), None),
                                  (SYSTOLIC, parameters(SYSTOLIC, array=args.array), args.images)):
        lowered = lower_model(paths["model"], target, params, workspace / target.name, batch=batch)
        console.print(f"{target.name}: {lowered.config}")
    phase("lower")

    console.print(Rule(f"3. run {args.images} test images on both ({args.backend} backend)"))
    loaded = [load_lowered(workspace / target.name) for target in (EIE, SYSTOLIC)]
    if args.backend == "rtl":
        seconds = build_rtl(loaded, console)
        console.print("Verilator models built in parallel: " + ", ".join(
            f"{lowered.target.name} {s:.0f} s" for lowered, s in zip(loaded, seconds)))
        phase("verilator builds")
    results = {}
    for lowered in loaded:
        result = results[lowered.target] = simulate(lowered, args.backend, images=args.images, seed=args.seed,
                                                    console=console, prebuilt=args.backend == "rtl")
        console.print(simulation_table(result))
        phase(f"simulate {lowered.target.name}")

    console.print(Rule("4. summary"))
    table = Table(title=f"sparq demo: digits MLP, {args.images} test images, {args.backend} backend")
    for column in ("", EIE.short_label, SYSTOLIC.short_label):
        table.add_column(column, justify="left" if not column else "right")
    e, s = results[EIE], results[SYSTOLIC]
    per = lambda r: r.cycles / r.images  # noqa: E731
    verified = "bit-exact vs golden" if args.backend == "rtl" else "golden model"
    rows = [
        ("hardware", f"{e.config['n_pe']} PEs", f"{s.config['rows']}x{s.config['cols']} array"),
        ("model", f"pruned + 4-bit shared, {report['total']['ratio']['huffman']:.1f}x smaller",
         "same weights, int8"),
        ("accuracy", f"{100 * e.accuracy:.1f}%", f"{100 * s.accuracy:.1f}%"),
        ("float model accuracy", f"{100 * e.float_accuracy:.1f}%", f"{100 * s.float_accuracy:.1f}%"),
        ("outputs", verified, verified),
        ("cycles per image", f"{per(e):,.0f}", f"{per(s):,.0f}"),
        ("MACs per image", f"{e.macs_performed / e.images:,.0f}", f"{s.macs_performed / s.images:,.0f}"),
        ("MAC utilization", f"{100 * e.utilization:.1f}%", f"{100 * s.utilization:.1f}%"),
        ("EIE load efficiency", f"{100 * e.details.load_efficiency:.1f}%", ""),
        ("energy per image (45 nm)", f"{e.energy['total_pj'] / e.images / 1000:,.1f} nJ",
         f"{s.energy['total_pj'] / s.images / 1000:,.1f} nJ"),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"compression: {report['total']['ratio']['huffman']:.1f}x (pruned {report['total']['ratio']['pruned']:.1f}x, "
                  f"+ quantized {report['total']['ratio']['quantized']:.1f}x, + Huffman "
                  f"{report['total']['ratio']['huffman']:.1f}x); test accuracy float "
                  f"{100 * report['accuracy']['float']:.2f}% -> compressed {100 * report['accuracy']['compressed']:.2f}%")

    console.print(Rule("5. report"))
    index = write_report(workspace)
    console.print(f"wrote {index} and {index.parent / 'report.md'}")
    phase("report")
    total = time.perf_counter() - started
    console.print(f"demo finished in {total:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in phases.items()) + ")")
    summary = {"images": args.images, "backend": args.backend, "seconds": total, "phases": phases,
               "summary": [list(row) for row in rows],
               "compression_ratio": report["total"]["ratio"]["huffman"], "accuracy": report["accuracy"],
               "runs": {t.name: {k: getattr(r, k) for k in ("accuracy", "float_accuracy", "cycles", "macs_performed",
                                                             "useful_macs", "utilization", "macs_per_cycle", "config")}
                        | {"energy_nj_per_image": r.energy["total_pj"] / r.images / 1000}
                        for t, r in results.items()}}
    with writing(workspace, "compressed", keep=True) as transaction:
        transaction.write_text(DEMO, json_text(summary))
    return 0

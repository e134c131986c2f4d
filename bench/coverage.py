"""The regression's coverage: one ``sparq regress --coverage`` run of each target, recorded.

Calls :func:`sparq.regression.regression` with ``coverage`` for EIE and for the systolic array (Verilator coverage
builds of every configuration), prints the functional bins and the structural coverage per group, and writes
``bench/results/coverage.json`` (per target: cases, mismatches, the functional bins with their hits and the missed
ones, the line / branch / toggle coverage per group and per file, the uncovered points with their reasons, the
excluded points per reason, wall time) and the two HTML pages ``bench/results/coverage/<target>.html``. The merged
``coverage.dat`` files and the Verilog they count stay in ``build/coverage/<target>`` (tens of MB).

    .venv/bin/python bench/coverage.py [--seeds 800] [--start 0] [--workers 2] [--targets eie,systolic]
                                       [--configs NAME,...]   (default: all of each target's configurations)
"""

import argparse
import json
import os
import shutil
from pathlib import Path

from rich.console import Console

from sparq.regression import coverage_tables, regression, summary_table

RESULTS = Path(__file__).resolve().parent / "results"
WORK = Path(__file__).resolve().parents[1] / "build" / "coverage"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=800, help="cases per target (default 800)")
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default 2)")
    parser.add_argument("--targets", default="eie,systolic", help="comma-separated (default eie,systolic)")
    parser.add_argument("--configs", help="comma-separated configuration names (default: all of the target's)")
    args = parser.parse_args(argv)
    configs = args.configs.split(",") if args.configs else None
    console = Console(width=None if Console().is_terminal else 140)
    path = RESULTS / "coverage.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    for target in args.targets.split(","):
        directory = WORK / target
        summary = regression(target, args.seeds, args.start, configs=configs, workers=args.workers,
                             console=console, coverage=directory)
        console.print(summary_table(summary))
        for table in coverage_tables(summary["coverage"]):
            console.print(table)
        coverage = summary.pop("coverage")
        (RESULTS / "coverage").mkdir(parents=True, exist_ok=True)
        shutil.copy(directory / coverage["page"], RESULTS / "coverage" / coverage["page"])
        chosen = f" --configs {args.configs}" if args.configs else ""
        record[target] = {"command": f"sparq regress --target {target} --seeds {args.seeds} --start {args.start}"
                                     f"{chosen} --coverage build/coverage/{target}",
                          "cases": summary["cases"], "mismatches": summary["mismatches"],
                          "configurations": list(summary["configurations"]),
                          "wall_seconds": summary["wall_seconds"], "load_average_after": round(os.getloadavg()[0], 2),
                          "functional": coverage["functional"], "structural": coverage["structural"]}
        path.write_text(json.dumps(record, indent=2) + "\n")  # after each target: a killed run keeps the first
        console.print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


if __name__ == "__main__":
    main()

"""The regression at scale: one ``sparq regress`` run of each target (10,000 cases by default), recorded.

Calls :func:`sparq.regression.regression`, the code behind ``sparq regress``, once for EIE and once for the systolic
array on a ``LocalCluster`` (or ``--scheduler``), prints each summary table and writes
``bench/results/regress.json`` with top-level ``eie_cases``, ``eie_mismatches``, ``systolic_cases``,
``systolic_mismatches``, and per target its configurations (parameters, cases, mismatches, cycle checks), its
failures with the command that reproduces each, the wall time (builds included), the build time and the cases per
second (builds excluded), and the machine's load average (the machine is shared: the rates are this run's).

    .venv/bin/python bench/regress.py [--seeds 10000] [--start 0] [--workers 2] [--scheduler ADDRESS]
"""

import argparse
import json
import os
import platform
from pathlib import Path

from rich.console import Console

from sparq.regression import regression, summary_table

RESULTS = Path(__file__).resolve().parent / "results" / "regress.json"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10_000, help="cases per target (default 10000)")
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default 2)")
    parser.add_argument("--scheduler", help="a Dask scheduler address instead of a LocalCluster")
    parser.add_argument("--targets", default="eie,systolic", help="comma-separated (default eie,systolic)")
    args = parser.parse_args(argv)
    console = Console(width=None if Console().is_terminal else 120)
    record = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for target in args.targets.split(","):
        summary = regression(target, args.seeds, args.start, address=args.scheduler, workers=args.workers,
                             console=console)
        console.print(summary_table(summary))
        for failure in summary["failures"]:
            console.print(f"FAIL seed {failure['seed']}: {failure['message']}\n  reproduce: {failure['reproduce']}",
                          highlight=False)
        record[f"{target}_cases"] = summary["cases"]
        record[f"{target}_mismatches"] = summary["mismatches"]
        record[target] = {**summary, "load_average_after": round(os.getloadavg()[0], 2),
                          "command": f"sparq regress --target {target} --seeds {args.seeds} --start {args.start}"}
        record["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(record, indent=2) + "\n")  # after each target: a killed run keeps the first
        console.print(f"wrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")


if __name__ == "__main__":
    main()

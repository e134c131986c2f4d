"""``sparq regress``: seeded random cases of a whole accelerator on the RTL, on a Dask cluster, each checked
bit-exactly against the golden model and its cycles against the cycle model (:mod:`sparq.sim.regress` makes and
checks the cases; this module runs them, shows the progress and the summary, and reports the failures).

:func:`regression` is the Python API (``bench/regress.py`` calls it); :func:`run_regress` the command.
"""

import json
import time
from contextlib import nullcontext
from pathlib import Path

__all__ = ["regression", "run_regress", "summary_table", "coverage_tables", "DEFAULT_WORKERS"]

DEFAULT_WORKERS = 2


def regression(target, seeds, start=0, *, configs=None, address=None, workers=DEFAULT_WORKERS, batch_size=None,
               console=None, coverage=None):
    """Run cases ``start .. start + seeds - 1`` of ``target`` (``"eie"`` or ``"systolic"``) on the configurations
    ``configs`` (names of :data:`sparq.sim.regress.CONFIGS`; None: all), on the Dask scheduler at ``address`` or on
    a ``LocalCluster`` of ``workers`` processes (0, or a single batch of cases: in this process, no Dask). Shows the builds and a progress bar
    on ``console`` (None: quiet).

    Returns the summary as a JSON-ready dict: ``target``, ``cases``, ``mismatches``, ``configurations`` (per
    configuration: its parameters, cases, mismatches, cycle checks and how tight they were), ``failures`` (seed,
    configuration, case, message, the command that reproduces it), ``wall_seconds``, ``build_seconds``,
    ``cases_per_second`` (builds excluded, the cluster's start included), ``workers``.

    ``coverage``: a directory; the cases then run on Verilator coverage builds, and the functional and structural
    coverage (:mod:`sparq.sim.coverage`) is written there (an HTML page, cocotb-coverage's YAML, the merged
    ``coverage.dat`` and the Verilog of each configuration) and summarised under the summary's ``coverage``."""
    from dataclasses import asdict

    from sparq.sim import regress as cases
    from sparq.sim.cluster import dask_client
    from sparq.sim.coverage import RegressionCoverage

    from .progress import Progress, status

    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    if start < 0:
        raise ValueError(f"--start must not be negative, got {start}")
    if workers < 0:
        raise ValueError(f"--workers must not be negative, got {workers}")
    names = cases.config_names(target, configs)  # raises on an unknown name, before anything starts
    chosen = names if configs else None
    seed_range = range(start, start + seeds)
    groups = cases.plan(target, seed_range, chosen)
    started = time.perf_counter()
    kind = "a coverage build" if coverage else "the native runner"
    for name in groups:
        with status(console, f"building {target} {name} for {kind} (or finding it in the cache)"):
            cases.build(target, name, coverage=coverage is not None)
    built = time.perf_counter()
    if batch_size is None:  # a few batches per worker and configuration, so the bar moves; at most 200 cases each
        batch_size = max(1, min(200, -(-seeds // (4 * max(1, workers) * len(groups)))))
    # One batch (a case run again from its seed) gains nothing from a local cluster but its start-up time.
    single = sum(-(-len(group) // batch_size) for group in groups.values()) == 1
    in_process = address is None and (workers == 0 or single)
    outcomes = []
    collected = RegressionCoverage(target) if coverage else None
    with (nullcontext() if in_process else dask_client(address, n_workers=workers)) as client:
        n_workers = len(client.scheduler_info()["workers"]) if client else 0
        with Progress(console, f"{target} cases", seeds) as bar:
            def done(batch):
                outcomes.extend(batch)
                bar.update(len(outcomes))
            cases.regress(target, seed_range, configs=chosen, client=client, batch_size=batch_size, on_batch=done,
                          on_coverage=collected.add if collected else None)
    finished = time.perf_counter()
    outcomes.sort(key=lambda o: o.seed)
    per_config = {}
    for name in names:
        mine = [o for o in outcomes if o.config == name]
        per_config[name] = {"parameters": asdict(cases.CONFIGS[target][name]), "cases": len(mine),
                            "mismatches": sum(not o.ok for o in mine),
                            "cycle_checks": sum(o.cycles_checked for o in mine),
                            **_cycle_agreement(mine),
                            "cycle_check": cases.cycle_check(target, cases.CONFIGS[target][name])}
    here = f"{Path.cwd()}/"  # the messages name files relative to the checkout, as everything a result keeps
    failures = [{"seed": o.seed, "configuration": o.config, "case": o.description,
                 "message": o.message.replace(here, ""),
                 "reproduce": cases.reproduce_command(target, o.seed, chosen)} for o in outcomes if not o.ok]
    summary = {"target": target, "cases": len(outcomes), "mismatches": len(failures), "start": start,
               "configurations": per_config, "failures": failures, "workers": n_workers,
               "scheduler": "given address" if address else "in process" if in_process else "LocalCluster",
               "wall_seconds": round(finished - started, 2), "build_seconds": round(built - started, 2),
               "cases_per_second": round(len(outcomes) / (finished - built), 2) if finished > built else None}
    if collected:
        with status(console, f"writing the coverage report to {coverage}"):
            summary["coverage"] = collected.write(Path(coverage))
    return summary


def _cycle_agreement(outcomes):
    """How tight the cycle checks of ``outcomes`` were: checks whose bounds were one number (exact), checks the RTL
    met at the lower bound (the model's count), and the most cycles it took over that bound."""
    pairs = [(rtl, bounds) for o in outcomes for rtl, bounds in zip(o.rtl_cycles, o.model_cycles)]
    return {"cycle_checks_exact": sum(high == low for _, (low, high) in pairs),
            "cycles_equal_to_model": sum(rtl == low for rtl, (low, _) in pairs),
            "max_cycles_over_model": max((rtl - low for rtl, (low, _) in pairs), default=0)}


def summary_table(summary):
    """A rich table of a :func:`regression` summary: per configuration, cases, mismatches, cycle checks, how many
    of those the RTL met at the model's count, and what was checked."""
    from rich.table import Table
    where = f"{summary['workers']} Dask workers" if summary["workers"] else "in process"
    table = Table(title=f"sparq regress --target {summary['target']}: {summary['cases']} cases, "
                        f"{summary['mismatches']} mismatches, {summary['wall_seconds']:.1f} s "
                        f"({summary['cases_per_second']} cases/s, {where})")
    for column in ("configuration", "cases", "mismatches", "cycles checked", "= model", "cycle check"):
        table.add_column(column, justify="left" if column in ("configuration", "cycle check") else "right")
    for name, row in summary["configurations"].items():
        if row["cases"]:
            table.add_row(name, f"{row['cases']:,}", f"{row['mismatches']:,}", f"{row['cycle_checks']:,}",
                          f"{row['cycles_equal_to_model']:,}", row["cycle_check"])
    return table


def coverage_tables(coverage):
    """Rich tables of a :func:`regression`'s ``coverage`` summary: the functional bins per cover point (hits per
    bin, the missed ones), and the structural coverage per group of files (lines: statement blocks and both arms of
    every branch; toggles)."""
    from rich.table import Table
    functional = coverage["functional"]
    bins = Table(title=f"functional coverage: {functional['percent']:.1f} % of the bins hit")
    for column in ("cover point", "bins hit", "hits per bin"):
        bins.add_column(column)
    for point, hits in functional["bins"].items():
        hit = sum(1 for n in hits.values() if n)
        shown = ", ".join(f"{label} {n:,}" if n else f"[bold red]{label} 0[/]" for label, n in hits.items())
        bins.add_row(point, f"{hit}/{len(hits)}", shown)
    structural = coverage["structural"]
    lines = Table(title="structural coverage (Verilator, over every instance and configuration)")
    for column in ("files", "lines", "branches", "lines + branches", "toggles"):
        lines.add_column(column, justify="left" if column == "files" else "right")

    def cell(tally):
        return "-" if not tally or tally["percent"] is None else f"{tally['percent']:.1f} % ({tally['hit']}/{tally['total']})"

    for name, row in [*structural["groups"].items(), ("total", structural["total"])]:
        lines.add_row(name, *(cell(row.get(metric)) for metric in ("line", "branch", "lines", "toggle")))
    return [bins, lines]


def run_regress(args, console):
    from .errors import VerificationFailed
    configs = [c for part in args.configs for c in part.split(",") if c] if args.configs else None
    summary = regression(args.target, args.seeds, args.start, configs=configs, address=args.scheduler,
                         workers=args.workers, console=console, coverage=args.coverage)
    console.print(summary_table(summary))
    if args.coverage:
        for table in coverage_tables(summary["coverage"]):
            console.print(table)
        console.print(f"coverage report: {Path(args.coverage) / summary['coverage']['page']}")
    for failure in summary["failures"]:
        console.print(f"[bold red]FAIL[/] seed {failure['seed']} ({failure['case']}): {failure['message']}",
                      highlight=False, soft_wrap=True)  # one line each: grep-able, the command copy-pasteable
        console.print(f"  reproduce: {failure['reproduce']}", highlight=False, soft_wrap=True)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(path.name + ".tmp")
        staging.write_text(json.dumps(summary, indent=2) + "\n")
        staging.replace(path)
        console.print(f"wrote {path}")
    if summary["failures"]:
        first = summary["failures"][0]
        raise VerificationFailed(f"{summary['mismatches']} of {summary['cases']} {args.target} cases differ from "
                                 "the golden or the cycle model (listed above)",
                                 f"rerun one alone: {first['reproduce']}")
    return 0

"""What each ``sparq`` subcommand does and prints; :mod:`sparq.cli` only parses the command line and calls these.

Each ``run_*`` takes the parsed arguments and a rich console and returns the exit code (errors are raised and turned
into one line, a hint and an exit code by :func:`sparq.errors.explain`).
"""

from pathlib import Path

from .workspace import COMPRESSED, DEFAULT_WORKSPACE, opened, simulation_path

__all__ = ["run_compress", "run_lower", "run_simulate", "run_export", "run_report", "simulation_table",
           "print_lowered", "data_origin"]


def data_origin(args):
    """The :class:`sparq.data.Origin` of ``--data`` (None when it is not given: each step then has its default)."""
    from .data import choose
    return None if args.data is None else choose(args.data)


def run_compress(args, console):
    from sparq.compiler.report import print_report

    from .errors import InputError
    from .flow import compress_model
    if args.max_drop is not None and args.sparsity != ["auto"]:
        raise InputError("--max-drop is the accuracy budget of --sparsity auto", "add --sparsity auto, or leave "
                         "--max-drop out")
    out = Path(args.out or DEFAULT_WORKSPACE)
    done = compress_model(args.model, out, bits=args.bits, sparsity=args.sparsity, retrain=args.retrain,
                          max_drop=0.5 if args.max_drop is None else args.max_drop, data=data_origin(args),
                          onnx=args.onnx, progress=None if args.progress else False)
    console.print(f"data: {done.data.description}")
    print_report(done.report, console)
    paths = done.paths
    console.print(f"wrote {', '.join(str(p) for p in paths.values())}")
    console.print(f"next: sparq lower {paths['model']} --target eie")
    return 0


def print_lowered(lowered, console):
    """A few lines on what ``sparq lower`` wrote."""
    for line in lowered.target.describe(lowered):
        console.print(line)
    console.print(f"wrote {lowered.directory}")
    console.print(f"next: sparq simulate {lowered.directory} --backend rtl")


def run_lower(args, console):
    from .flow import lower_model
    from .hwconfig import parameters
    source = Path(args.model or DEFAULT_WORKSPACE / COMPRESSED)
    params = parameters(args.target, args.config, pes=args.pes, fifo_depth=args.fifo_depth, array=args.array,
                        winograd=args.winograd, assignments=args.param)
    out = Path(args.out or source.parent / args.target)
    lowered = lower_model(source, args.target, params, out, data=data_origin(args), batch=args.batch)
    console.print(f"data: {lowered.data.description}")
    print_lowered(lowered, console)
    return 0


def _percent(value):
    return "not measured (no labels)" if value is None else f"{100 * value:.1f}%"


def simulation_table(result):
    """A rich table of one :class:`sparq.results.SimulationResult`: accuracy, cycles, utilization, energy, and the
    target's own rows (:meth:`sparq.targets.Target.summary_rows`)."""
    from rich.table import Table
    n = result.images
    table = Table(title=f"{result.target.name} on the {result.backend} backend, {n} {result.inputs}",
                  show_header=False)
    table.add_column(style="bold")
    table.add_column()
    checked = "every output bit-exact with the golden model" if result.backend == "rtl" else "bit-exact golden model"
    if result.accuracy is None:
        accuracy = (f"not measured (no labels); the prediction is the float model's on "
                    f"{100 * result.float_agreement:.1f}% of the inputs, {checked}")
    else:
        accuracy = f"{_percent(result.accuracy)} (float model {_percent(result.float_accuracy)}), {checked}"
    rows = [("configuration", ", ".join(f"{k}={v}" for k, v in result.config.items())),
            ("accuracy", accuracy),
            ("cycles", f"{result.cycles:,} ({result.cycles / n:,.0f} per image; {result.counter_source})"),
            ("MACs performed", f"{result.macs_performed:,} ({result.useful_macs:,} with a non-zero weight)"),
            ("MACs per cycle", f"{result.macs_per_cycle:.2f} of {result.peak_macs_per_cycle} peak: "
                               f"{100 * result.utilization:.1f}% utilization"),
            ("energy per image", f"{result.energy['total_pj'] / n / 1000:,.1f} nJ (45 nm table)"),
            *result.target.summary_rows(result)]
    rows.append(("wall time", f"{result.seconds:.1f} s" + (f" (Verilator build or cache check "
                                                           f"{result.build_seconds:.1f} s)"
                                                           if result.build_seconds else "")))
    for row in rows:
        table.add_row(*row)
    return table


def run_simulate(args, console):
    from .flow import load_lowered
    from .simulation import simulate
    with opened(args.lowered, exclusive=True):  # no other command writes the directory while this one runs
        lowered = load_lowered(args.lowered)
        result = simulate(lowered, args.backend, images=args.images, data=data_origin(args), seed=args.seed,
                          console=console, optimize=args.optimize)
    console.print(f"data: {result.data}")
    console.print(simulation_table(result))
    console.print(f"wrote {simulation_path(lowered.directory, args.backend)}")
    console.print(f"next: sparq report {lowered.directory.parent}")
    return 0


def run_export(args, console):
    from .flow import export_model
    path = export_model(args.model or DEFAULT_WORKSPACE / COMPRESSED, args.out, softmax=args.softmax)
    console.print(f"wrote {path} (standard ONNX, opset 17: the decoded compressed weights as dense initializers)")
    return 0


def run_report(args, console):
    from .report import write_report
    index = write_report(args.workspace or DEFAULT_WORKSPACE, args.out)
    console.print(f"wrote {index} (open it in a browser) and {index.parent / 'report.md'}")
    return 0

"""The ``sparq`` command: the front door to the compiler, the hardware, the simulators and the FPGA flow.

Every subcommand has ``--help``. Errors print one line and a hint; ``--debug`` shows the traceback instead. Exit codes
are listed in :mod:`sparq.errors` and at the end of ``sparq --help``.
"""

import argparse
import sys

__all__ = ["main", "build_parser"]


def _exit_codes_epilog():
    from .errors import EXIT_CODES
    return "exit codes:\n" + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items())


def build_parser():
    from sparq.fpga.cli import add_synth_command
    from sparq.fpga.toolchain import ROUTERS

    from .data import CALIBRATION_LIMIT, DATA_HELP
    from .flow import image_in
    from .simulation import BACKENDS, RUNNERS
    from .targets import names
    from .workspace import DEFAULT_WORKSPACE
    parser = argparse.ArgumentParser(prog="sparq", description=__doc__.splitlines()[0], epilog=_exit_codes_epilog(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data_help = (f"the data: {DATA_HELP} (default: what the step before recorded, else the bundled data set of a "
                 "shipped model, else digits)")
    compress = commands.add_parser(
        "compress", help="prune, share weights, quantize and Huffman-code a model (Deep Compression)",
        description="Deep Compression of any model sparq reads on your data (--data): prune and retrain, k-means "
                    "weight sharing with centroid fine-tuning, Huffman coding; without labels or with --no-retrain, "
                    "one-shot (pruning and sharing, no training; the output drift against the float model is "
                    "printed); --sparsity auto chooses each layer's sparsity by a sensitivity scan within --max-drop "
                    "accuracy points. Prints the per-layer table and writes compressed.npz and compression.json "
                    "(and compressed.onnx with --onnx).")
    compress.add_argument("model", nargs="?", help="an .onnx or .npz model (default: the bundled digits MLP)")
    compress.add_argument("--data", metavar="FILE.npz|NAME", help=data_help)
    compress.add_argument("--bits", type=int, default=4, help="bits per shared-weight code (default 4; EIE takes "
                          "at most 4)")
    compress.add_argument("--sparsity", action="append", default=[], metavar="[LAYER=]FRACTION|auto",
                          help="pruned fraction, for every layer or per layer (repeatable), or auto (a sensitivity "
                               "scan on a validation split); the bundled models have defaults")
    compress.add_argument("--max-drop", type=float, metavar="POINTS", help="with --sparsity auto: the accuracy "
                          "each layer may lose in the scan, in percentage points (default 0.5)")
    compress.add_argument("--retrain", action=argparse.BooleanOptionalAction, default=True,
                          help="retrain after pruning and fine-tune the centroids (default; --no-retrain: one-shot)")
    compress.add_argument("--onnx", action="store_true", help="also write compressed.onnx (as `sparq export`)")
    compress.add_argument("--out", help=f"workspace directory (default {DEFAULT_WORKSPACE})")
    compress.add_argument("--progress", action="store_true", help="show the retraining progress bars")
    compress.set_defaults(run="run_compress")

    export = commands.add_parser(
        "export", help="write a compressed model as a standard ONNX file",
        description="Write a compressed model as standard ONNX (opset 17) that any runtime runs: the decoded "
                    "shared weights as dense float32 initializers, the float biases, the source's trailing "
                    "Softmax; metadata_props record each layer's kept fraction and code bits and the accuracies.")
    export.add_argument("model", nargs="?", help=f"compressed model (default {DEFAULT_WORKSPACE}/compressed.npz)")
    export.add_argument("--out", help="the .onnx file (default compressed.onnx in the model's workspace)")
    export.add_argument("--softmax", action=argparse.BooleanOptionalAction, default=None,
                        help="end the graph with a Softmax (default: as the source model did)")
    export.set_defaults(run="run_export")

    lower = commands.add_parser(
        "lower", help="lower a model to an EIE image or a systolic program",
        description="Lower a model for one accelerator, calibrating its fixed-point scales on the data. Hardware "
                    "parameters come from a TOML file (--config, one [eie] or [systolic] table of EieConfig / "
                    "SystolicConfig fields) and flags, which win. EIE memory depths not given are sized to the "
                    "image; EIE runs the trailing fully connected layers, and the host runs any layers before them "
                    "(a CNN's convolutions). EIE prints the image's size by memory against float32 and the Deep "
                    "Compression figures.",
        epilog="example config:\n  [eie]\n  n_pe = 8\n  fifo_depth = 16\n\n  [systolic]\n  rows = 8\n  cols = 8\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    lower.add_argument("model", nargs="?", help=f"compressed model (default {DEFAULT_WORKSPACE}/compressed.npz); "
                       "systolic also takes a float .onnx / .npz")
    lower.add_argument("--target", required=True, choices=names(), help="the accelerator")
    lower.add_argument("--data", metavar="FILE.npz|NAME", help="the data to calibrate on (the training split, at "
                       f"most {CALIBRATION_LIMIT:,} samples): {DATA_HELP} (default: the compression's data)")
    lower.add_argument("--config", metavar="TOML", help="hardware parameters file")
    lower.add_argument("--pes", type=int, help="EIE: number of PEs (default 4)")
    lower.add_argument("--fifo-depth", type=int, help="EIE: activation FIFO depth (default 8)")
    lower.add_argument("--array", type=int, metavar="N", help="systolic: N x N array (default 4)")
    lower.add_argument("--winograd", action="store_true", help="systolic: a Winograd build; 3x3 stride-1 "
                       "convolutions are lowered by Winograd F(2x2, 3x3), the others by im2col")
    lower.add_argument("--batch", type=int, metavar="N", help="systolic: at most N images per device call, the "
                       "program's batch (default: as many as fit); a run of fewer images pads the call")
    lower.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                       help="any configuration field, repeatable (for example -p spmat_depth=4096)")
    lower.add_argument("--out", help="output directory (default: <model's directory>/<target>)")
    lower.set_defaults(run="run_lower")

    simulate = commands.add_parser(
        "simulate", help="run test inputs on the golden model or on the RTL under Verilator",
        description="Run test inputs (the test split of the data the model was lowered with, or of --data) on a "
                    "lowered model. golden: the bit-exact numpy model, cycles from the cycle model. rtl: the "
                    "Amaranth design under Verilator, every output checked against the golden model; prints the "
                    "cycles and the performance counters. Writes simulation-<backend>.json.")
    simulate.add_argument("lowered", help="directory written by `sparq lower`")
    simulate.add_argument("--data", metavar="FILE.npz|NAME", help=f"the data whose test inputs to run: {DATA_HELP} "
                          "(x alone: its first inputs, accuracy not measured; default: the lowering's data)")
    simulate.add_argument("--backend", choices=BACKENDS, default="golden", help="default golden")
    simulate.add_argument("--images", type=int, default=20, help="number of test inputs (default 20)")
    simulate.add_argument("--seed", type=int, default=0, help="seed of the random valid gaps / back-pressure")
    simulate.add_argument("--optimize", action=argparse.BooleanOptionalAction, default=None,
                          help="build the Verilator model at -O2 (--optimize: slower build, faster run) or -O0 "
                               "(--no-optimize); default: -O0 for EIE, -O2 for the systolic array")
    simulate.add_argument("--runner", choices=RUNNERS, default=RUNNERS[0],
                          help=f"how the RTL runs under Verilator: {RUNNERS[0]} (driven from compiled C++, the "
                               "default) or cocotb (a Python testbench through VPI, many times slower); both give "
                               "the same outputs and counters")
    simulate.set_defaults(run="run_simulate")

    add_synth_command(commands, image_in=image_in)

    report = commands.add_parser(
        "report", help="write the HTML + Markdown report of a workspace",
        description="Build index.html (plots embedded) and report.md from a workspace's compression.json, "
                    "lowerings and simulation results: compression table (mode, data, the sensitivity scan's "
                    "curves), the EIE image's storage against Deep Compression's, EIE against systolic (cycles, "
                    "MACs, memory, energy), roofline, EIE load balance.")
    report.add_argument("workspace", nargs="?", help=f"workspace directory (default {DEFAULT_WORKSPACE})")
    report.add_argument("--out", help="report directory (default <workspace>/report)")
    report.set_defaults(run="run_report")

    sweep = commands.add_parser(
        "sweep", help="a design-space sweep: synthesis, place and route and RTL throughput of every point, on Dask",
        description="Sweep a design over a grid of parameters on a board: every point is synthesized, placed and "
                    "routed (resources, Fmax, the limiting path) and, for eie and systolic, its throughput on the "
                    "model measured on the RTL. The points run as Dask tasks; finished points are kept in "
                    "OUT/sweep.json and not redone. See sparq.sweep.")
    sweep.add_argument("model", nargs="?", help=f"compressed model whose RTL throughput to measure (eie, systolic; "
                       f"default {DEFAULT_WORKSPACE}/compressed.npz)")
    sweep.add_argument("--design", required=True, help="a design of `sparq synth --list` (eie, systolic, ...)")
    sweep.add_argument("--board", required=True, help="the board (see `sparq synth --list`)")
    sweep.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2,...",
                       help="a design parameter and its values, repeatable: the sweep is the product of the lists")
    sweep.add_argument("--images", type=int, default=4, help="test inputs run on the RTL per point (default 4)")
    sweep.add_argument("--out", help="results directory (default sweep/<design>-<board>)")
    sweep.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler (default: a LocalCluster here)")
    sweep.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default 2)")
    sweep.add_argument("--seed", type=int, default=0, help="seed of the RTL runs' random back-pressure")
    sweep.add_argument("--router", choices=ROUTERS, help="nextpnr's router for every point (default: nextpnr's, "
                       "router1; see `sparq synth --help`)")
    sweep.add_argument("--pnr-seed", type=int, metavar="N", help="nextpnr's placement seed for every point "
                       "(default: nextpnr's)")
    sweep.set_defaults(run="run_sweep_command")

    regress = commands.add_parser(
        "regress", help="seeded random cases of a whole accelerator on the RTL, on a Dask cluster",
        description="Run N seeded random cases (EIE: random networks of 1-3 layers at 1-60 %% density with empty "
                    "and padded columns, on 1-16 PEs and FIFO depths 1-16; systolic: random GEMM-chain programs on "
                    "2x2 to 16x16 arrays) on the RTL (the native Verilator runner), each output checked "
                    "bit-exactly against the golden model and its cycles against the cycle model. A fixed set of "
                    "configurations, each built once and shared by the workers (listed in the README and in the "
                    "summary). Each failure is printed with the command that reproduces it; any failure exits "
                    "with the verification-failed code.")
    regress.add_argument("--target", choices=("eie", "systolic"), required=True)
    regress.add_argument("--seeds", type=int, required=True, metavar="N", help="number of cases")
    regress.add_argument("--start", type=int, default=0, metavar="S", help="first seed (default 0): the cases are "
                         "seeds S .. S+N-1")
    regress.add_argument("--configs", action="append", metavar="NAME[,NAME...]",
                         help="draw the configurations from these only (default: all of the target's)")
    regress.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler (tcp://host:8786) whose "
                         "workers share this file system; default: a LocalCluster started here")
    regress.add_argument("--workers", type=int, default=2, metavar="W",
                         help="worker processes of the LocalCluster (default 2; 0: run in this process, without Dask, "
                              "as a single batch of cases always does)")
    regress.add_argument("--json", metavar="FILE", help="also write the summary and the failures as JSON")
    regress.add_argument("--coverage", metavar="DIR",
                         help="run on Verilator coverage builds and write the functional coverage (cocotb-coverage "
                              "bins) and the structural coverage (line, branch, toggle) to DIR: index.html, the "
                              "bins as YAML, the merged coverage.dat and Verilog of each configuration")
    regress.set_defaults(run="run_regress")

    demo = commands.add_parser(
        "demo", help="the end-to-end demo on the bundled digits MLP (what `make demo` runs)",
        description="Compress the bundled digits MLP, lower it to EIE and to the systolic array, run test images on "
                    "both RTLs under Verilator bit-exactly against the golden models, print the summary and write "
                    "the report.")
    demo.add_argument("--images", type=int, default=20, help="number of test images (default 20)")
    demo.add_argument("--backend", choices=BACKENDS, default="rtl", help="default rtl")
    demo.add_argument("--pes", type=int, default=4, help="EIE PEs (default 4)")
    demo.add_argument("--array", type=int, default=4, help="systolic array size (default 4)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the random back-pressure")
    demo.add_argument("--runner", choices=RUNNERS, default=RUNNERS[0],
                      help=f"how the RTL runs under Verilator (default {RUNNERS[0]}; see `sparq simulate --help`)")
    demo.add_argument("--out", help="workspace directory (default build/demo)")
    demo.set_defaults(run="run_demo")
    return parser


def _handler(name):
    if name == "run_regress":
        from .regression import run_regress
        return run_regress
    if name == "run_demo":
        from .demo import run_demo
        return run_demo
    if name == "run_sweep_command":
        from .sweep import run_sweep_command
        return run_sweep_command
    from . import commands
    return getattr(commands, name)


def main(argv=None) -> int:
    import warnings

    from amaranth.hdl import UnusedElaboratable
    from rich.console import Console
    args = build_parser().parse_args(argv)
    console = Console(width=None if Console().is_terminal else 120)
    try:
        with warnings.catch_warnings():
            # Components built only to check their parameters (sparq.hw.systolic.array does) are never elaborated:
            # not news. A numpy RuntimeWarning (overflow, invalid value) that a step did not turn into an error of
            # its own is not shown either, unless --debug: a warning from deep inside numpy is not a message.
            warnings.filterwarnings("ignore", category=UnusedElaboratable)
            if not args.debug:
                warnings.simplefilter("ignore", RuntimeWarning)
            if callable(args.run):  # sparq synth (sparq.fpga.cli) takes only the arguments
                return args.run(args)
            return _handler(args.run)(args, console)
    except (Exception, KeyboardInterrupt) as error:
        if args.debug:
            raise
        from .errors import explain
        code, message, hint = explain(error)
        print(f"sparq {args.command}: error: {message}", file=sys.stderr)
        print(f"hint: {hint}", file=sys.stderr)
        return code

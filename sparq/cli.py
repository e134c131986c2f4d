"""The ``sparq`` command: the front door to the compiler, the hardware, the simulators and the FPGA flow.

Every subcommand has ``--help``. Errors print one line and a hint; ``--debug`` shows the traceback instead.
"""

import argparse
import sys
import time

__all__ = ["main"]


def _demo(args) -> int:
    """The harness demo: both foundation blocks, verified under Verilator against their golden models."""
    from rich.console import Console
    from rich.table import Table

    from hw.common.fifo import StreamFIFO
    from hw.common.mac import MACCell
    from sim.harness import run_verilator
    from sim.tb.mac import overflow_cases

    console = Console()
    table = Table(title="sparq harness demo: Verilator vs numpy golden models")
    for column in ("block", "parameters", "test", "cycles", "result"):
        table.add_column(column)
    mac = dict(a_width=8, b_width=8, acc_width=16, saturate=True)
    fifo = dict(width=8, depth=8)
    runs = [
        ("MACCell", mac, "random operands, random enable", MACCell(**mac), "sim.tb.mac:random_mac",
         dict(seed=args.seed, n=2000, **mac)),
        ("MACCell", mac, "accumulate past the maximum", MACCell(**mac), "sim.tb.mac:accumulate_sequence",
         dict(**overflow_cases(8, 8, 16)["up_past_max"], **mac)),
        ("StreamFIFO", fifo, "random stream, 30% gaps, 30% back-pressure", StreamFIFO(8, 8),
         "sim.tb.fifo:random_stream", dict(seed=args.seed, n=2000, gap_probability=0.3, stall_probability=0.3,
                                          **fifo)),
        ("StreamFIFO", fifo, "fill, full, drain, push and pop at once", StreamFIFO(8, 8), "sim.tb.fifo:fill_drain",
         fifo),
    ]
    with console.status("building and simulating with Verilator...") as status:
        for block, params, test, dut, body, kwargs in runs:
            status.update(f"{block}: {test}")
            start = time.perf_counter()
            result = run_verilator(dut, "sim.tb:timed", inner=body, **kwargs)
            table.add_row(block, ", ".join(f"{k}={v}" for k, v in params.items()), test, str(result["cycles"]),
                          f"[green]bit-exact[/] ({time.perf_counter() - start:.1f} s)")
    console.print(table)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="sparq", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the end-to-end demo on the bundled default")
    demo.add_argument("--seed", type=int, default=1, help="seed of the random stimulus")
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except Exception as error:
        if args.debug:
            raise
        print(f"sparq {args.command}: error: {error}", file=sys.stderr)
        print("hint: rerun with --debug for the full traceback", file=sys.stderr)
        return 1

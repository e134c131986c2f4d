"""The ``sparq synth`` subcommand: build a registered design for a board and print its resource and timing report.

::

    sparq synth --design mac --board icebreaker
    sparq synth --design fifo --board ulx3s-85f -p depth=2048 -p width=32 --json build/fifo.json
    sparq synth --design systolic-board --board ulx3s-85f --image my_program.json --program
    sparq synth --list

:func:`add_synth_command` registers the subcommand on the ``sparq`` parser's subparsers; the command sets
``args.run``, which the ``sparq`` front door calls and whose errors it prints as one line.
"""

import argparse
from contextlib import nullcontext

from .toolchain import ROUTERS

__all__ = ["add_synth_command"]


def _synth(args) -> int:
    from rich.console import Console

    from .build import BOARDS, program, synthesize
    from .designs import DESIGNS, make_design, parse_param

    console = Console()
    if args.list:
        for entry in DESIGNS.values():
            defaults = ", ".join(f"{k}={v!r}" for k, v in entry.defaults.items())
            console.print(f"[bold]{entry.name}[/]  {entry.summary}\n    parameters: {defaults}")
        for board in BOARDS.values():
            console.print(f"[bold]board {board.name}[/]  {board.description}")
        return 0
    if args.design is None:
        raise ValueError("no design given; pass --design NAME (see `sparq synth --list`)")
    params = dict(parse_param(p) for p in args.param)
    if args.image is not None:
        params["image"] = args.image
    image = params.get("image")
    with args.image_in(image) if isinstance(image, str) and image not in ("digits", "none") else nullcontext():
        design, params = make_design(args.design, **params)
    with console.status(f"synthesizing {args.design} for {args.board} (Yosys, nextpnr)..."):
        report = synthesize(design, args.board, dsp=not args.no_dsp, name=args.design, params=params,
                            router=args.router, pnr_seed=args.pnr_seed)
    console.print(report.table())
    if args.json:
        console.print(f"report written to {report.write_json(args.json)}")
    if args.program:
        program(report)
        console.print(f"{args.board} programmed; talk to it with sparq.fpga.driver.Device")
    return 0


def add_synth_command(subparsers, image_in=None) -> argparse.ArgumentParser:
    """Register ``synth`` on ``subparsers`` (from ``parser.add_subparsers()``); return its parser.

    ``image_in(path)`` is a context manager the design is built in when it bakes in an image from disk: the front
    door's :func:`sparq.flow.image_in` checks a lowered directory's image against its record there, under its lock.
    """
    parser = subparsers.add_parser(
        "synth", help="synthesize, place and route a design for an FPGA board",
        description="Synthesize, place and route a design with Yosys and nextpnr (YoWASP, from PyPI) and print its "
                    "resources, Fmax and critical path. Designs with ports are wrapped in a timing harness "
                    "(scan-chain I/O) so that they are timed register to register.")
    parser.add_argument("--design", help="design to build (see --list)")
    parser.add_argument("--board", default="icebreaker", help="target board (default: icebreaker, the iCE40 UP5K)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="design parameter, repeatable (for example -p depth=1024)")
    parser.add_argument("--image", metavar="PATH", help="model image baked into a board top: a program saved with "
                        "sparq.formats.systolic.save_program, an EIE image directory (default: the shipped digits "
                        "MLP); one written by `sparq lower` is checked against its directory's sparq.json")
    parser.add_argument("--no-dsp", action="store_true", help="build multipliers from LUTs, not DSP blocks")
    parser.add_argument("--router", choices=ROUTERS, help="nextpnr's router (default: nextpnr's, router1; router2 "
                        "routes large congested designs far faster, at some cost in Fmax)")
    parser.add_argument("--pnr-seed", type=int, metavar="N", help="nextpnr's placement seed (default: nextpnr's); "
                        "a large design's Fmax moves with it by 10 %% or more, so try a few")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")
    parser.add_argument("--program", action="store_true",
                        help="program the board with the bitstream of a board top (needs iceprog or openFPGALoader)")
    parser.add_argument("--list", action="store_true", help="list the designs, their parameters and the boards")
    parser.set_defaults(run=_synth, image_in=image_in or (lambda path: nullcontext()))
    return parser

"""FPGA sweep: resources, Fmax and throughput on the model of sparq's accelerators on the iCE40 UP5K (iCEBreaker) and
the ECP5-85F (ULX3S), through ``sparq sweep`` (:mod:`sparq.sweep`; Dask, points already measured are not redone).

    .venv/bin/python bench/fpga_sweep.py                          # every sweep below (hours; builds are cached)
    .venv/bin/python bench/fpga_sweep.py --only eie --board icebreaker
    .venv/bin/python bench/fpga_sweep.py --scheduler tcp://host:8786  # on a Dask cluster

Each sweep is ``sparq sweep <model> --design D --board B --param ...``: every point synthesized, placed and routed
(resources, Fmax, the limiting path) and, for eie and systolic, lowered and run on the RTL with the model
(``MMAC/s = Fmax x useful MACs per RTL cycle``, host transfers included): the digits MLP, but for the systolic
array on the UP5K, synthesized without one (see ``SWEEPS``). Each model is compressed once into ``build/bench/<name>`` (4-bit codes,
the shipped sparsities). Results: ``bench/results/fpga_sweep/<design>-<board>/``
(``sweep.json``, ``sweep-<board>.png``); the table prints every point of the sweeps run. The sweep of the previous
bench (the figures before issue 19's work, bare designs with the digits MLP baked in) is kept in
``bench/results/fpga_sweep_before.json``.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results" / "fpga_sweep"
MODELS = Path(__file__).resolve().parents[1] / "build" / "bench"

SWEEPS = [
    # (design, board, model, grid, nextpnr router or None for nextpnr's default). 3 and 4 PEs no longer fit the UP5K
    # since the EIE's pipelining for the ECP5 (bench/results/fpga_eie_fmax.json). router1 had not routed the 16-PE
    # EIE after 40 minutes, nor an 8-PE one after 27 (congestion; an earlier 8-PE netlist took it 6), so both are
    # routed with router2, which is fast but cost 17-18 % of the Fmax on the 4- and 8-PE designs where both finished
    # (fpga_eie_fmax.json, router_check).
    ("eie", "icebreaker", "digits_mlp", dict(n_pe=[1, 2], pe_counters=[False]), None),
    ("eie", "ulx3s-85f", "digits_mlp", dict(n_pe=[4]), None),
    ("eie", "ulx3s-85f", "digits_mlp", dict(n_pe=[8, 16]), "router2"),
    # The systolic points each get a weight buffer that holds their model's weight tiles (the compiler refuses one
    # that does not, with the depth it needs). No shipped model's tiles fit a 2x2 array in the UP5K's block RAM (the
    # digits MLP needs over 17K words, the wine MLP 1794 to 2048, and 2048 needs 31 of the 30 EBR), so the UP5K
    # point is synthesized without a model (no MMAC/s; bench/results/fpga_systolic_fmax.json has its GEMM rate).
    ("systolic", "icebreaker", None, dict(size=[2], ub_depth=[256], wb_depth=[1024], acc_depth=[64]), None),
    ("systolic", "ulx3s-85f", "digits_mlp", dict(size=[8], ub_depth=[4096], wb_depth=[8192], acc_depth=[512]), None),
    ("systolic", "ulx3s-85f", "digits_mlp", dict(size=[4], ub_depth=[4096], wb_depth=[16384], acc_depth=[512]), None),
    ("systolic", "ulx3s-85f", "digits_mlp", dict(size=[2], ub_depth=[4096], wb_depth=[32768], acc_depth=[512]), None),
]


def compressed_model(name: str) -> Path:
    """A shipped model, compressed here once (4-bit codes, the shipped sparsities)."""
    import sparq
    from sparq.compiler.models import shipped_path
    workspace = MODELS / name.removesuffix("_mlp")
    path = workspace / "compressed.npz"
    if not path.exists():
        sparq.compress(shipped_path(name), workspace=workspace)
    return path


def main(argv=None) -> int:
    from rich.console import Console

    from sparq.sweep import sweep, table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only the sweeps of this design")
    parser.add_argument("--board", help="run only the sweeps on this board")
    parser.add_argument("--images", type=int, default=4, help="test inputs run on the RTL per point (default 4)")
    parser.add_argument("--scheduler", help="a Dask scheduler address (default: a LocalCluster)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default 2)")
    args = parser.parse_args(argv)
    console = Console(width=200)
    for design, board, model, values, router in SWEEPS:
        if (args.only and design != args.only) or (args.board and board != args.board):
            continue
        result = sweep(design, board, values, model=model and compressed_model(model), images=args.images,
                       out=RESULTS / f"{design}-{board}",
                       address=args.scheduler, n_workers=args.workers, router=router, console=console)
        console.print(table(result))
        for row in result.failed:
            console.print(f"[red]failed:[/] {row['params']}: {row['error']}")
    console.print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

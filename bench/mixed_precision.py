"""Mixed precision on the FPGA: what fp16 and bf16 PEs (fp32 accumulation) cost against int8, on the iCE40 UP5K
(iCEBreaker) and the ECP5-85F (ULX3S), with the YoWASP Yosys and nextpnr.

    .venv/bin/python bench/mixed_precision.py              # every point (builds are cached under build/fpga/)
    .venv/bin/python bench/mixed_precision.py --board ulx3s-85f

Each point is one :func:`sparq.fpga.build.synthesize` of a registered design (``systolic-pe``: one
:class:`sparq.hw.systolic.pe.WeightStationaryPE`; ``systolic-array``: a ``size x size``
:class:`sparq.hw.systolic.array.SystolicArray`, no buffers or controller) inside the scan-chain timing harness, so Fmax is
register to register. The float PE is single-cycle (combinational multiplier then fp32 adder, the arrays' timing
unchanged), so its Fmax is the whole multiply-add path. Multipliers go to DSP blocks (SB_MAC16, MULT18X18D) when
they fit, else the point is rebuilt from LUTs and says so; a point that still does not fit is recorded as such, with
the resource that overflowed. Ratios are against the int8 point of the same design, size and board.

Prints a table and writes ``bench/results/mixed_precision.json``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results" / "mixed_precision.json"
ARITHMETICS = ("int8", "fp16", "bf16")
BOARDS = ("icebreaker", "ulx3s-85f")
SHAPES = [("systolic-pe", {}), ("systolic-array", {"size": 2})]
"""One PE and a 2x2 array. A 4x4 float array would need about four times the 2x2's logic (beyond the UP5K's 5280
LCs for bf16 and fp16 alike), and its synthesis alone takes tens of minutes."""


def point(design: str, board: str, params: dict) -> dict:
    """Synthesize one design point; return its row (resources, Fmax) or why it does not fit."""
    from sparq.fpga.build import DoesNotFit, synthesize
    from sparq.fpga.designs import make_design

    row = {"design": design, "board": board, "params": params}
    start = time.perf_counter()
    for dsp in (True, False):
        try:
            report = synthesize(make_design(design, **params)[0], board, dsp=dsp, name=design, params=params)
        except DoesNotFit as error:
            if dsp and error.dsp:
                row["dsp_overflow"] = str(error)
                continue
            row["does_not_fit"] = str(error)
            row["overflow"] = {name: [u.used, u.available] for name, u in error.overflow.items()}
            break
        resources = report.resources
        logic = resources.get("LC") or resources.get("LUT")
        row.update(dsp=dsp, luts=logic.used, luts_available=logic.available, ffs=resources["FF"].used,
                   dsps=report.dsp_used, multipliers=report.multipliers, fmax_mhz=report.fmax_mhz,
                   harness=report.harness, critical_path=report.critical_paths[0].end if report.critical_paths
                   else None)
        break
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def with_ratios(rows: list) -> list:
    """Add ``vs_int8`` (LUT, FF, DSP and Fmax ratios) to every float row whose int8 twin was built."""
    base = {(r["design"], r["board"], r["params"].get("size")): r for r in rows
            if r["params"]["arithmetic"] == "int8" and "luts" in r}
    for r in rows:
        twin = base.get((r["design"], r["board"], r["params"].get("size")))
        if r["params"]["arithmetic"] != "int8" and twin and "luts" in r:
            r["vs_int8"] = {key: round(r[key] / twin[key], 2) if twin[key] else None
                            for key in ("luts", "ffs", "dsps", "fmax_mhz")}
    return rows


def print_table(rows: list) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Mixed precision: fp16 / bf16 multiplies with fp32 accumulation against int8 (YoWASP)")
    for column in ("design", "board", "arithmetic", "LUT / LC", "FF", "DSP", "Fmax MHz", "LUT x int8", "FF x int8",
                   "Fmax x int8", "note"):
        table.add_column(column)
    for r in rows:
        name = r["design"] + (f" {r['params']['size']}x{r['params']['size']}" if "size" in r["params"] else "")
        if "luts" not in r:
            over = ", ".join(f"{k} {u}/{a}" for k, (u, a) in r.get("overflow", {}).items())
            table.add_row(name, r["board"], r["params"]["arithmetic"], "does not fit", "", "", "", "", "", "", over)
            continue
        ratio = r.get("vs_int8", {})

        def fmt(key, ratio=ratio):
            return f"{ratio[key]:.2f}" if ratio.get(key) is not None else ""
        table.add_row(name, r["board"], r["params"]["arithmetic"], f"{r['luts']}/{r['luts_available']}",
                      str(r["ffs"]), str(r["dsps"]), f"{r['fmax_mhz']:.1f}", fmt("luts"), fmt("ffs"),
                      fmt("fmax_mhz"), "" if r["dsp"] else "multipliers in LUTs (DSPs overflowed)")
    Console(width=200).print(table)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", choices=BOARDS, help="only this board")
    args = parser.parse_args(argv)
    rows = []
    for board in BOARDS:
        if args.board and board != args.board:
            continue
        for design, shape in SHAPES:
            for arithmetic in ARITHMETICS:
                params = {**shape, "arithmetic": arithmetic}
                print(f"{design} {params} on {board}...", flush=True)
                rows.append(point(design, board, params))
    rows = with_ratios(rows)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"points": rows}, indent=1) + "\n")
    print_table(rows)
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

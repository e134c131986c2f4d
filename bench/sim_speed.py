"""Simulator speed: the same long tests under Verilator (through cocotb) and under Amaranth's Python simulator.

Two workloads, each run on both simulators in this one run, each checked against its golden model:

* ``free-running MAC``: an LFSR feeds a 8x8+32 MACCell accumulating every cycle; the testbench only waits. This is
  the simulators' own speed.
* ``stream FIFO, Python-driven``: random words through a depth-8 StreamFIFO with random valid gaps and back-pressure,
  driven and checked cycle by cycle from Python against the cycle-accurate model. Here the Python testbench, not the
  simulator, sets the pace, and the ratio shows what a per-cycle Python testbench costs.

Prints a table and writes ``bench/results/sim_speed.json``. Absolute rates on a shared machine are noise; the ratio
measured in one run is the number to read.

    .venv/bin/python bench/sim_speed.py [--cycles 200000] [--items 5000]
"""

import argparse
import json
import platform
from pathlib import Path

from sparq.hw.common.fifo import StreamFIFO
from sparq.sim.golden.mac import accumulate
from sparq.sim.harness import build_verilator, run_amaranth, run_verilator
from sparq.sim.stimulus import FreeRunningMAC, lfsr_operands

RESULTS = Path(__file__).resolve().parent / "results" / "sim_speed.json"


def measure(make_dut, body, check, **params):
    """Run ``body`` on both simulators; return {simulator: cycles per second} after checking each result."""
    dut = make_dut()
    build_verilator(dut, name=type(dut).__name__)  # build outside the timed part
    rates = {}
    for simulator, run in (("verilator", run_verilator), ("amaranth", run_amaranth)):
        timed = run(make_dut(), "sparq.sim.tb:timed", inner=body, **params)
        check(timed["result"])
        rates[simulator] = {"cycles": timed["cycles"], "seconds": round(timed["seconds"], 4),
                            "cycles_per_second": round(timed["cycles"] / timed["seconds"], 1)}
    rates["ratio"] = round(rates["verilator"]["cycles_per_second"] / rates["amaranth"]["cycles_per_second"], 2)
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200_000, help="cycles of the free-running MAC run")
    parser.add_argument("--items", type=int, default=5_000, help="words through the FIFO in the stream run")
    args = parser.parse_args()

    mac = dict(a_width=8, b_width=8, acc_width=32, saturate=False)
    def make_mac():
        return FreeRunningMAC(**mac)
    a, b = lfsr_operands(make_mac().seed, args.cycles, 8, 8)
    expected_y = int(accumulate(a, b, **mac)[-1])

    def check_mac(result):
        assert result["y"] == expected_y, f"free-running MAC: expected y {expected_y}, got {result['y']}"

    fifo = dict(depth=8, width=16, gap_probability=0.2, stall_probability=0.2)
    rows = {
        "free-running MAC": measure(make_mac, "sparq.sim.tb.mac:free_running", check_mac, cycles=args.cycles),
        "stream FIFO, Python-driven": measure(lambda: StreamFIFO(16, 8), "sparq.sim.tb.fifo:random_stream",
                                              lambda result: None, seed=1, n=args.items, **fifo),
    }

    print(f"{'workload':30} {'cycles':>9} {'Verilator c/s':>14} {'Amaranth c/s':>13} {'ratio':>7}")
    for name, row in rows.items():
        print(f"{name:30} {row['verilator']['cycles']:>9} {row['verilator']['cycles_per_second']:>14,.0f} "
              f"{row['amaranth']['cycles_per_second']:>13,.0f} {row['ratio']:>6.1f}x")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": platform.machine(), "python": platform.python_version(),
                                   "workloads": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

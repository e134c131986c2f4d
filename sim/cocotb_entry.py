"""The cocotb test module that :func:`sparq.sim.harness.run_verilator` loads into the simulator.

It reads the body to run, its parameters and the port map from the environment the harness sets, starts the clock,
runs the body on a :class:`sparq.sim.bench.CocotbBench` and writes the outcome (passed, error message, returned result)
to a JSON file the harness reads back.
"""

import json
import os
import traceback

import cocotb
from cocotb.clock import Clock

from .bench import CocotbBench, PortInfo, resolve_body


@cocotb.test()
async def sparq_testbench(dut):
    body, ref = resolve_body(os.environ["SPARQ_TB"])
    params = json.loads(os.environ["SPARQ_TB_PARAMS"])
    with open(os.environ["SPARQ_TB_PORTS"]) as f:
        ports = {name: PortInfo(*info) for name, info in json.load(f).items()}
    Clock(dut.clk, int(os.environ["SPARQ_CLOCK_PERIOD_NS"]), unit="ns").start()
    dut.rst.value = 0
    outcome = {"passed": True, "error": None, "result": None}
    try:
        outcome["result"] = await body(CocotbBench(dut, ports), **params)
    except AssertionError as e:
        outcome.update(passed=False, error=str(e))
    except Exception as e:
        outcome.update(passed=False, error=f"{ref} raised {type(e).__name__}: {e}\n{traceback.format_exc()}")
    with open(os.environ["SPARQ_TB_RESULT"], "w") as f:
        json.dump(outcome, f)
    assert outcome["passed"], outcome["error"]

"""The systolic board top end to end under Verilator: the UART bus-functional model speaks the host protocol with
the driver's own sequence (sparq.fpga.driver.systolic_job), and every output byte is checked against sparq.sim.systolic.golden.

The default test runs a 2x2 array on a random two-layer GEMM, twice (the second run checks that START restarts a
halted accelerator); the slow one runs digits images through the shipped MLP on the 8x8 board top built for the
ULX3S (``sparq synth --design systolic-board``). On Amaranth's simulator, a board whose instruction ROM holds an
opcode the accelerator does not execute reports the error in STATUS, and the driver raises DeviceError."""

from dataclasses import fields

import numpy as np
import pytest

from sparq.formats.systolic import SystolicConfig, SystolicProgram, save_program
from sparq.fpga.designs import get_design
from sparq.fpga.images import digits_inputs, digits_mlp_program
from sparq.fpga.top import SystolicHost
from sparq.sim.harness import run_amaranth
from sparq.sim.harness import run_verilator as run
from sparq.sim.systolic.stimulus import random_gemm

DIVISOR = 4


def _run_board(tmp_path, program, runs):
    save_program(program, tmp_path / "program.json")
    np.save(tmp_path / "inputs.npy", np.asarray(runs, dtype=np.int8))
    return run(SystolicHost(program, divisor=DIVISOR, timeout=100 * DIVISOR), "sparq.fpga.tb:systolic_board", optimize=False,
               program=str(tmp_path / "program.json"), inputs=str(tmp_path / "inputs.npy"), divisor=DIVISOR)


def test_random_gemm_board_verilator(tmp_path):
    config = SystolicConfig(rows=2, cols=2, ub_depth=64, wb_depth=64, acc_depth=16)
    program, _, _ = random_gemm(1, 3, [5, 4, 3], config)
    runs = np.random.default_rng(2).integers(-128, 128, (2, 3, 5))
    results = _run_board(tmp_path, program, runs)
    assert results[0]["outputs"] != results[1]["outputs"]


@pytest.mark.slow
def test_digits_board_verilator(tmp_path):
    defaults = get_design("systolic-board").defaults
    config = SystolicConfig(rows=defaults["size"], cols=defaults["size"], ub_depth=defaults["ub_depth"],
                            wb_depth=defaults["wb_depth"], acc_depth=defaults["acc_depth"])
    x, labels = digits_inputs([0, 1, 2])
    results = _run_board(tmp_path, digits_mlp_program(config), x[:, None, :])
    predicted = [int(np.argmax(r["outputs"][:10])) for r in results]
    assert predicted == labels.tolist()


class _CorruptRom(SystolicProgram):
    """``program`` as a board bakes it, but instruction ``bad`` reaches the instruction ROM as an all-zero word (opcode
    0: no such instruction)."""

    def __init__(self, program, bad):
        super().__init__(**{f.name: getattr(program, f.name) for f in fields(SystolicProgram)})
        self.bad = bad

    def encoded(self):
        words = super().encoded()
        words[self.bad] = 0
        return words


def test_unknown_opcode_is_reported_in_status_amaranth(tmp_path):
    config = SystolicConfig(rows=2, cols=2, ub_depth=64, wb_depth=64, acc_depth=16)
    program, _, _ = random_gemm(1, 3, [5, 4, 3], config)
    save_program(program, tmp_path / "program.json")
    np.save(tmp_path / "inputs.npy", np.random.default_rng(2).integers(-128, 128, (1, 3, 5)).astype(np.int8))
    host = SystolicHost(_CorruptRom(program, bad=len(program.instructions) // 2), divisor=DIVISOR,
                        timeout=100 * DIVISOR)
    status = run_amaranth(host, "sparq.fpga.tb:systolic_board_error", program=str(tmp_path / "program.json"),
                          inputs=str(tmp_path / "inputs.npy"), divisor=DIVISOR)
    assert status == dict(busy=False, done=True, frame_error=False, overrun=False, timeout=False, error=True)

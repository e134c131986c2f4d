"""The whole accelerator: directed programs for each instruction, random GEMM chains (sizes not multiples of the
array) with random back-pressure on every host port, the analytic cycle model against the RTL counters, and the
error stop on an opcode the build does not execute."""

import numpy as np
import pytest

from sparq.formats.systolic import (
    FULL_RATE_OUT_DEPTH,
    Flag,
    Instruction,
    Opcode,
    SystolicConfig,
    SystolicProgram,
    encode,
    pack_params,
    pack_weight_tile,
    save_program,
)
from sparq.hw.systolic.accelerator import SystolicAccelerator
from sparq.sim.harness import run_amaranth, run_verilator
from sparq.sim.systolic.cycles import predict
from sparq.sim.systolic.stimulus import config_for, random_gemm

BODY = "sparq.sim.tb.systolic:run_program_file"
BATCH = "sparq.sim.tb.systolic:run_program_files"
PRESSURE = dict(gap_probability=0.3, stall_probability=0.3, instr_gap_probability=0.2)


def _files(tmp_path, program, words):
    path, inputs = tmp_path / "program.npz", tmp_path / "inputs.npy"
    save_program(program, path)
    np.save(inputs, np.asarray(words, dtype=np.int8).reshape(-1, program.config.lanes))
    return dict(program=str(path), inputs=str(inputs))


# --- directed programs, one per instruction ----------------------------------------------------------------

def _directed(config, name):
    """``(program, input_words)`` of a small hand-written program exercising ``name``."""
    rows, lanes = config.rows, config.lanes
    rng = np.random.default_rng(abs(hash(name)) % 1000)
    data = rng.integers(-128, 128, (6, lanes)).astype(np.int8)
    if name == "host_roundtrip":
        ins = [Instruction(Opcode.READ_HOST, ub=3, count=6), Instruction(Opcode.SYNC),
               Instruction(Opcode.WRITE_HOST, ub=3, count=6), Instruction(Opcode.WRITE_HOST, ub=5, count=2),
               Instruction(Opcode.HALT)]
        return SystolicProgram(config, ins, np.zeros((0, lanes)), 6, 8), data
    # A weight tile of small values, identity-like requantization: the raw int32 sums are visible when small.
    weights = pack_weight_tile(rng.integers(-3, 4, (rows, config.cols)).astype(np.int8), rows, config.cols)
    x = rng.integers(-4, 5, (6, lanes)).astype(np.int8)
    identity = pack_params(np.arange(config.cols) - 2, np.ones(config.cols), np.zeros(config.cols), lanes)
    halve = pack_params(np.zeros(config.cols), np.ones(config.cols), np.ones(config.cols), lanes)
    image = np.concatenate([weights, identity, halve])
    prologue = [Instruction(Opcode.READ_WEIGHTS, wb=0, count=len(image)),
                Instruction(Opcode.READ_HOST, ub=0, count=6),
                Instruction(Opcode.LOAD_WEIGHTS, Flag.BANK, wb=0)]
    if name == "matmul_overwrite_accumulate":
        body = [Instruction(Opcode.MATMUL, Flag.BANK, acc=0, ub=2, count=4),
                Instruction(Opcode.MATMUL, Flag.BANK, acc=4, ub=0, count=6),
                Instruction(Opcode.MATMUL, Flag.BANK | Flag.ACCUMULATE, acc=6, ub=0, count=3),  # rows 2..4 doubled
                Instruction(Opcode.MATMUL, Flag.BANK, acc=0, ub=5, count=1),  # overwrite word 0 again
                Instruction(Opcode.ACTIVATE, acc=0, ub=10, wb=rows, count=10)]
        out = [Instruction(Opcode.WRITE_HOST, ub=10, count=10)]
    elif name == "activate_relu_and_rounding":
        body = [Instruction(Opcode.MATMUL, Flag.BANK, acc=0, ub=0, count=6),
                Instruction(Opcode.ACTIVATE, Flag.RELU, acc=0, ub=10, wb=rows, count=6),
                Instruction(Opcode.ACTIVATE, acc=0, ub=16, wb=rows + 7, count=6)]
        out = [Instruction(Opcode.WRITE_HOST, ub=10, count=12)]
    elif name == "both_banks_and_sync":
        body = [Instruction(Opcode.LOAD_WEIGHTS, wb=0),
                Instruction(Opcode.MATMUL, acc=0, ub=0, count=4),
                Instruction(Opcode.MATMUL, Flag.BANK | Flag.ACCUMULATE, acc=1, ub=1, count=1),
                Instruction(Opcode.SYNC),
                Instruction(Opcode.LOAD_WEIGHTS, wb=1),  # a shifted tile: rows 1.. then the identity record
                Instruction(Opcode.MATMUL, Flag.ACCUMULATE, acc=0, ub=2, count=4),
                Instruction(Opcode.ACTIVATE, acc=0, ub=20, wb=rows, count=4)]
        out = [Instruction(Opcode.WRITE_HOST, ub=20, count=4)]
    else:
        raise KeyError(name)
    program = SystolicProgram(config, prologue + body + out + [Instruction(Opcode.HALT)], image, 6,
                              sum(i.count for i in out))
    return program, x


DIRECTED = ["host_roundtrip", "matmul_overwrite_accumulate", "activate_relu_and_rounding", "both_banks_and_sync"]


def _run(tmp_path, name, program, words, **params):
    folder = tmp_path / name
    folder.mkdir()
    return dict(name=name, **params, **_files(folder, program, words))


def test_directed_verilator(tmp_path):
    config = config_for(4)
    runs = [_run(tmp_path, name, *_directed(config, name), seed=1, **PRESSURE) for name in DIRECTED]
    results = run_verilator(SystolicAccelerator(config), BATCH, runs=runs, optimize=False)
    assert [r["output_words"] for r in results] == [_directed(config, n)[0].output_words for n in DIRECTED]


def test_directed_amaranth(tmp_path):
    config = config_for(2)
    runs = [_run(tmp_path, name, *_directed(config, name), seed=2, **PRESSURE) for name in DIRECTED]
    run_amaranth(SystolicAccelerator(config), BATCH, runs=runs)


# --- random GEMMs and the cycle model -----------------------------------------------------------------------

def _shapes(size):
    """(m, dims) chains whose sizes are not multiples of the array, plus the degenerate 1-row, 1-wide case."""
    return [(size + 3, [2 * size + 1, size - 1 or 1]),
            (3 * size + 2, [size + 3, 2 * size + 1, 3]),
            (1, [1, 1]),
            (70, [3 * size - 1, size + 2])]


def _random_gemms(tmp_path, size):
    """One simulation: the four random chains with back-pressure on every port, then one without, whose counters
    the cycle model must predict exactly (the target is 5 %)."""
    config = config_for(size)
    runs = []
    for case, (m, dims) in enumerate(_shapes(size)):
        program, words, _ = random_gemm(100 * size + case, m, dims, config)
        runs.append(_run(tmp_path, f"gemm{case} m={m} dims={dims}", program, words, seed=case, **PRESSURE))
    timed, words, _ = random_gemm(size, 40, [3 * size + 1, 2 * size + 3, size - 1], config)
    runs.append(_run(tmp_path, "no back-pressure", timed, words, seed=0))
    results = run_verilator(SystolicAccelerator(config), BATCH, runs=runs, optimize=False)
    model, counted = predict(config, timed.instructions), results[-1]
    assert counted["cycles"] - counted["stall_cycles"] == model.cycles
    assert counted["mac_busy"] == model.mac_busy
    assert counted["active_cycles"] == model.active_cycles
    assert all(r["stall_cycles"] > 2 for r in results[:-1])  # the back-pressure did hold the accelerator up


@pytest.mark.parametrize("size", [2, 4, 8])
def test_random_gemm_verilator(tmp_path, size):
    _random_gemms(tmp_path, size)


@pytest.mark.slow
def test_random_gemm_16x16_verilator(tmp_path):
    _random_gemms(tmp_path, 16)


def test_random_gemm_amaranth(tmp_path):
    config = config_for(2)
    program, words, _ = random_gemm(7, 5, [5, 3, 2], config)
    run_amaranth(SystolicAccelerator(config), BODY, seed=3, **PRESSURE, **_files(tmp_path, program, words))


@pytest.mark.parametrize("depth", [FULL_RATE_OUT_DEPTH - 1, FULL_RATE_OUT_DEPTH])
def test_write_host_full_rate_from_full_rate_out_depth_amaranth(tmp_path, depth):
    """WRITE_HOST streams one word a cycle, as the cycle model times it, from an output queue of
    FULL_RATE_OUT_DEPTH words on (host always ready), and not with one word fewer: the constant is exact."""
    config = SystolicConfig(rows=2, cols=2, ub_depth=64, wb_depth=64, acc_depth=16, out_depth=depth)
    ins = [Instruction(Opcode.READ_HOST, ub=0, count=24), Instruction(Opcode.SYNC),
           Instruction(Opcode.WRITE_HOST, ub=0, count=24), Instruction(Opcode.HALT)]
    program = SystolicProgram(config, ins, np.zeros((0, config.lanes)), 24, 24)
    words = np.random.default_rng(depth).integers(-128, 128, (24, config.lanes))
    counted = run_amaranth(SystolicAccelerator(config), BODY, **_files(tmp_path, program, words))
    full_rate = counted["cycles"] - counted["stall_cycles"] == predict(config, program.instructions).cycles
    assert full_rate == (depth >= FULL_RATE_OUT_DEPTH), counted


# --- an opcode the build does not execute -------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    0,                                                           # an all-zero word
    0xFF | 0x1F << 8 | 5 << 88,                                  # opcode 255, every flag, a count
    encode(Instruction(Opcode.TRANSFORM_IN, ub=0, tb=0, count=1)),  # Winograd, on a build without it
], ids=["zero", "opcode255", "winograd"])
def test_unknown_opcode_stops_with_error_amaranth(bad):
    """The words before the bad one run (a READ_HOST takes 2 host words), the bad one raises ``error`` and stops the
    accelerator as HALT would; the READ_HOST and WRITE_HOST after it never run."""
    config = config_for(2)
    lanes = config.lanes
    words = [encode(Instruction(Opcode.READ_HOST, ub=0, count=2)), bad,
             encode(Instruction(Opcode.READ_HOST, ub=2, count=2)),
             encode(Instruction(Opcode.WRITE_HOST, ub=0, count=4)), encode(Instruction(Opcode.HALT))]
    host = [k * 0x0101 & ((1 << (8 * lanes)) - 1) for k in range(1, 5)]
    counters = run_amaranth(SystolicAccelerator(config), "sparq.sim.tb.systolic:stops_on_error", instructions=words,
                            host_words=host, consumed=2)
    assert counters["mac_busy"] == 0 and counters["cycles"] > 0

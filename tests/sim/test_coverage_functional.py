"""The functional coverage model (sparq.sim.coverage.functional): bins, the observations of directed cases, the
RTL's bypass Cover counted by a coverage build, and ``sparq regress --coverage`` end to end."""

import json
from collections import Counter

import numpy as np
import pytest

from sparq.compiler.eie import LayerSpec, lower
from sparq.formats.eie import EieConfig
from sparq.formats.systolic import Flag, Opcode
from sparq.sim.coverage.functional import (
    POINTS,
    ClipRecorder,
    FunctionalCoverage,
    eie_observations,
    systolic_observations,
    user_events,
)
from sparq.sim.eie.golden import Golden
from sparq.sim.systolic.golden import run_program

TINY = EieConfig(n_pe=1, fifo_depth=8, ptr_depth=64, spmat_depth=64, act_depth=32, bias_depth=32, max_layers=1)


def test_bins_count_samples_and_report_misses():
    coverage = FunctionalCoverage("eie")
    coverage.sample(Counter({("column_length", "1"): 3, ("queue_full", "hit"): 1}))
    bins = coverage.bins()
    assert bins["column_length"] == {"0": 0, "1": 3, "2-7": 0, "8+": 0}
    assert "queue_full: none" in coverage.missed() and "queue_full: hit" not in coverage.missed()
    total = sum(len(b) for b in POINTS["eie"].values())
    assert coverage.percent() == pytest.approx(100 * 2 / total)
    with pytest.raises(KeyError, match="no bin"):
        coverage.sample(Counter({("column_length", "9"): 1}))
    assert FunctionalCoverage("eie").bins()["column_length"]["1"] == 0  # a fresh model starts empty


def _image(codes):
    return lower([LayerSpec(np.asarray(codes), np.r_[0.0, np.linspace(-1, 1, 15)], np.zeros(len(codes)), False)],
                 TINY)


def test_eie_observations_of_a_directed_layer():
    # Columns: empty, one entry, three entries, and one whose only non-zero rows 0 and 20 need a padding entry
    # (a gap of 19 zeros > 15); column 4 is broadcast but column 5's activation is zero, so it is not walked.
    codes = np.zeros((21, 6), dtype=np.int64)
    codes[3, 1] = 5
    codes[[0, 4, 9], 2] = 7
    codes[[0, 20], 3] = 2
    codes[:, 5] = 1
    image = _image(codes)
    x = [100, 100, 100, 100, 0, 0]
    trace = Golden(image).run(np.asarray(x))
    counters = [{"stall": [0], "starve": [4]}]
    seen = eie_observations(image, [trace], counters, {"bypass_back_to_back": [2]},
                            streams={"load": {"starved": 3}, "out": {"stalled": 0}}, gap_probability=0.1)
    assert seen["column_length", "0"] == 1 and seen["column_length", "1"] == 1
    assert seen["column_length", "2-7"] == 2  # three entries, and two entries plus one padding
    assert seen["column_padding", "1"] == 1 and seen["column_padding", "none"] == 3
    assert seen["layer_input", "some non-zero"] == 1
    assert seen["queue_full", "none"] == 1 and seen["pe_starvation", "hit"] == 1
    assert seen["bypass_back_to_back", "hit"] == 1
    assert seen["host_pressure", "load gaps"] == 1 and not seen["host_pressure", "output stalls"]
    all_zero = eie_observations(image, [Golden(image).run(np.zeros(6, dtype=np.int64))], counters, {}, streams={})
    assert all_zero["layer_input", "all zero"] == 1 and not all_zero["column_length", "0"]


def test_systolic_observations_count_opcodes_flags_banks_and_saturation():
    from sparq.compiler.systolic import gemm_program
    from sparq.sim.systolic.stimulus import CONFIGS, random_layers

    config = CONFIGS[2]
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (9, 7), dtype=np.int64).astype(np.int8)
    layers = random_layers(rng, [7, 5, 3])
    for layer in layers:  # force saturation at both ends: huge multipliers, no shift
        layer.multiplier[:] = 60000
        layer.shift[:] = 0
    program, words = gemm_program(x, layers, config)
    recorder = ClipRecorder(config)
    run_program(config, program.instructions, program.stream(words), state=recorder)
    clipped = recorder.clipped
    assert len(clipped) == sum(i.opcode == Opcode.ACTIVATE for i in program.instructions)
    assert any(low for low, _ in clipped) and any(high for _, high in clipped)
    seen = systolic_observations(program, clipped, {"stall_cycles": 0}, {"host_out": {"stalled": 2}})
    matmuls = [i for i in program.instructions if i.opcode == Opcode.MATMUL]
    assert seen["opcode", "MATMUL"] == len(matmuls) and seen["opcode", "HALT"] == 1
    assert seen["accumulate", "on"] == sum(bool(i.flags & Flag.ACCUMULATE) for i in matmuls)
    assert seen["bank", "first"] == 1 and seen["bank", "same"] + seen["bank", "switched"] == len(matmuls) - 1
    assert seen["stall", "output back-pressure"] == 1 and not seen["stall", "array stalled"]


def test_the_bypass_cover_counts_three_entries_in_a_row_on_one_accumulator(tmp_path):
    """The ArithmeticUnit's Cover in a coverage build: columns of one entry each, all on row 0, walked back to back
    (TINY's queue of depth 8 covers a broadcast's 6-cycle way round), hit it; the same layer with the entries on
    different rows does not."""
    from sparq.hw.eie import EIE
    from sparq.sim.coverage import read_counts
    from sparq.sim.native.eie import Eie

    same_row = np.zeros((4, 8), dtype=np.int64)
    same_row[0, :] = 3
    diagonal = np.zeros((4, 8), dtype=np.int64)
    for j in range(8):
        diagonal[j % 4, j] = 3
    path = tmp_path / "job.dat"
    hits = []
    with Eie(EIE(TINY), coverage=path) as simulation:
        for n, codes in enumerate((same_row, diagonal)):
            image = _image(codes).save(tmp_path / f"image{n}")
            (result,) = simulation.run_network(jobs=[{"image_dir": str(image), "inputs": [[256] * 8]}])
            events = user_events(read_counts(path))
            hits.append(events["bypass_back_to_back"])
    assert hits[0][0] >= 5, hits  # 8 entries on one row in a row: 6 back-to-back pairs of bypasses
    assert hits[1] == [0], hits


def test_regress_with_coverage_writes_the_report(tmp_path):
    from sparq.regression import regression

    out = tmp_path / "coverage"
    summary = regression("eie", 6, 0, configs=["pe1-fifo1"], workers=0, coverage=out)
    assert summary["mismatches"] == 0
    report = summary["coverage"]
    assert {"eie.html", "eie-functional.yml", "eie-pe1-fifo1.dat", "eie-pe1-fifo1.v", "eie.json"} <= \
        set(report["files"])
    bins = report["functional"]["bins"]
    assert sum(bins["column_length"].values()) > 0 and 0 < report["functional"]["percent"] <= 100
    assert json.loads((out / "eie.json").read_text())["functional"]["bins"] == bins
    page = (out / "eie.html").read_text()
    assert "hw/eie/arith.py" in page and "column_length" in page
    assert "/tmp" not in json.dumps(report) and str(tmp_path) not in json.dumps(report)

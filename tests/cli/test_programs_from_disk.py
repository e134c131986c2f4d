"""``sparq simulate`` on a systolic lowering runs the programs in the lowered directory, on the RTL as on the golden
model: the RTL testbench is handed those files, and one real RTL run of a program changed on disk (its record made to
agree) is bit-exact with the golden model of that program. The configuration is the 4x4 one the systolic RTL tests
build (sparq.sim.systolic.stimulus.config_for(4), at -O0), so the Verilator build is shared with them."""

import json

import numpy as np
from sparq_cli import reseal, run

from sparq.flow import load_lowered
from sparq.formats.systolic import load_program
from sparq.sim.systolic.cycles import predict
from sparq.sim.systolic.stimulus import config_for
from sparq.simulation import simulate
from sparq.workspace import sha256

PROGRAM = "00_fc1_fc2.npz"


def _lower(capsys, tiny, out):
    c = config_for(4)
    assert run(capsys, "lower", tiny / "compressed.npz", "--target", "systolic", "--array", "4", "--batch", "2",
               "-p", f"ub_depth={c.ub_depth}", "-p", f"wb_depth={c.wb_depth}", "-p", f"acc_depth={c.acc_depth}",
               "--out", out)[0] == 0
    return out


def _zero_weights(path):
    with np.load(path) as data:
        arrays = {k: data[k].copy() for k in data.files}
    arrays["weight_words"][:] = 0
    np.savez(path, **arrays)


def test_the_rtl_run_is_handed_the_program_files(capsys, tiny):
    out = _lower(capsys, tiny, tiny / "rtl")
    handed = []

    def runner(component, body, *, runs, **options):
        handed.extend(runs)
        return [{"cycles": e.cycles, "mac_busy": e.mac_busy, "stall_cycles": 0, "active_cycles": e.active_cycles}
                for e in (predict(load_program(r["program"]).config, load_program(r["program"]).instructions)
                          for r in runs)]

    result = simulate(load_lowered(out), "rtl", images=3, prebuilt=True, runner=runner)
    assert [r["program"] for r in handed] == [str((out / PROGRAM).resolve())] * 2  # 3 images, 2 per call
    assert sha256(handed[0]["program"]) == json.loads((out / "sparq.json").read_text())["files"][PROGRAM]["sha256"]
    assert result.details.device_calls == 2 and result.details.padding_images == 1


def test_one_rtl_run_of_a_program_changed_on_disk(capsys, tiny):
    out = _lower(capsys, tiny, tiny / "rtl")
    _zero_weights(out / PROGRAM)
    reseal(out)
    code, text, _ = run(capsys, "simulate", out, "--backend", "rtl", "--no-optimize", "--images", "3")
    assert code == 0 and "every output bit-exact with the golden model" in text
    result = json.loads((out / "simulation-rtl.json").read_text())
    assert result["counter_source"] == "RTL performance counters" and result["padding_images"] == 1
    labels = result["labels"]  # zero weights: every image gets the same class, the biases' argmax
    assert result["accuracy"] in {labels.count(c) / len(labels) for c in range(10)}

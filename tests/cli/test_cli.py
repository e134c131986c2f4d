"""The ``sparq`` command: --help everywhere, errors as one line + hint with meaningful exit codes, a small golden
end-to-end run, and the report in headless Chromium."""

import json
import shutil

import numpy as np
import pytest
from chromium import chromium_path, inspect_page
from sparq_cli import reseal, run

from sparq.cli import main
from sparq.errors import EXIT_CAPACITY, EXIT_INPUT, EXIT_MISMATCH, explain

SUBCOMMANDS = ["compress", "export", "lower", "simulate", "synth", "report", "demo"]


@pytest.mark.parametrize("argv", [[]] + [[name] for name in SUBCOMMANDS])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sparq")
    if not argv:
        assert all(name in out for name in SUBCOMMANDS) and "exit codes:" in out


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["lower", "--target", "gpu"])
    assert exit_info.value.code == 2


def _one_error(err, *fragments):
    """stderr is exactly two lines, the error and the hint, and names every fragment."""
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("sparq ") and ": error: " in lines[0], err
    assert lines[1].startswith("hint: "), err
    for fragment in fragments:
        assert fragment in lines[0], err


def test_missing_model_file(capsys, tmp_path):
    code, _, err = run(capsys, "compress", tmp_path / "nowhere.onnx", "--out", tmp_path)
    assert code == EXIT_INPUT
    _one_error(err, "nowhere.onnx", "no such model file")


def test_unsupported_onnx_op(capsys, tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    weight = numpy_helper.from_array(np.ones((64, 10), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"), helper.make_node("Sigmoid", ["h"], ["y"],
                                                                                      name="squash")],
        "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], [weight])
    path = tmp_path / "sigmoid.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    code, _, err = run(capsys, "compress", path, "--sparsity", "0.5", "--out", tmp_path)
    assert code == EXIT_INPUT
    _one_error(err, "Sigmoid", "squash")


def test_corrupt_onnx(capsys, tmp_path):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"\x08\x01garbage")
    code, _, err = run(capsys, "lower", path, "--target", "systolic", "--out", tmp_path / "x")
    assert code == EXIT_INPUT
    _one_error(err, "corrupt.onnx")


def test_eie_needs_a_compressed_model(capsys, tmp_path):
    from sparq.compiler.models import shipped_path
    code, _, err = run(capsys, "lower", shipped_path("digits_mlp"), "--target", "eie", "--out", tmp_path)
    assert code == EXIT_INPUT
    _one_error(err, "weight-shared")
    assert "sparq compress" in err


def test_eie_image_too_big(capsys, golden_workspace, tmp_path):
    code, _, err = run(capsys, "lower", golden_workspace / "compressed.npz", "--target", "eie",
                       "-p", "spmat_depth=16", "--out", tmp_path / "eie")
    assert code == EXIT_CAPACITY
    _one_error(err, "sparse-matrix memory", "spmat_depth")


def test_systolic_program_too_big(capsys, golden_workspace, tmp_path):
    code, _, err = run(capsys, "lower", golden_workspace / "compressed.npz", "--target", "systolic",
                       "-p", "wb_depth=512", "--out", tmp_path / "sys")
    assert code == EXIT_CAPACITY
    _one_error(err, "weight buffer", "wb_depth")


@pytest.mark.parametrize("toml, fragment", [
    ("[eie\nn_pe = 4\n", "not valid TOML"),
    ("[eie]\nlanes = 4\n", "no parameter 'lanes'"),
    ("[gpu]\nn_pe = 4\n", "unknown table"),
    ("[eie]\nn_pe = 'four'\n", "must be an integer"),
])
def test_bad_config(capsys, golden_workspace, tmp_path, toml, fragment):
    config = tmp_path / "hw.toml"
    config.write_text(toml)
    code, _, err = run(capsys, "lower", golden_workspace / "compressed.npz", "--target", "eie", "--config", config,
                       "--out", tmp_path / "eie")
    assert code == EXIT_INPUT
    _one_error(err, fragment)


def test_config_file_and_flags(capsys, golden_workspace, tmp_path):
    """The TOML sets the PEs and the FIFO depth; a flag overrides the FIFO depth; unset depths fit the image."""
    config = tmp_path / "hw.toml"
    config.write_text("[eie]\nn_pe = 2\nfifo_depth = 4\n")
    out = tmp_path / "eie2"
    code, _, _ = run(capsys, "lower", golden_workspace / "compressed.npz", "--target", "eie", "--config", config,
                     "--fifo-depth", "16", "--out", out)
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())["config"]
    assert (manifest["n_pe"], manifest["fifo_depth"]) == (2, 16)
    assert manifest["act_depth"] == 150  # the 300-wide hidden layer over 2 PEs


def test_lowering_again_drops_earlier_results(capsys, golden_workspace, tmp_path):
    """Simulation results describe the memories they ran on: lowering into the same directory removes them, so the
    report never shows an earlier lowering's (or backend's) numbers."""
    out = tmp_path / "eie"
    lower = ["lower", golden_workspace / "compressed.npz", "--target", "eie", "--pes", "2", "--out", out]
    assert run(capsys, *lower)[0] == 0
    assert run(capsys, "simulate", out, "--backend", "golden", "--images", "2")[0] == 0
    assert (out / "simulation-golden.json").is_file()
    assert run(capsys, *lower)[0] == 0
    assert not list(out.glob("simulation-*.json"))


def test_simulate_needs_a_lowered_directory(capsys, tmp_path):
    code, _, err = run(capsys, "simulate", tmp_path)
    assert code == EXIT_INPUT
    _one_error(err, "not a lowered model")


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match="no such model file"):
        main(["--debug", "compress", str(tmp_path / "nowhere.onnx")])


def test_mismatch_exit_code():
    from sparq.sim.scoreboard import Mismatch
    code, message, hint = explain(Mismatch("network output: first difference at index 3: expected 5, got 7"))
    assert code == EXIT_MISMATCH and "index 3" in message and "SPARQ_WAVES" in hint


def test_golden_end_to_end(golden_workspace):
    """The golden demo: both targets agree with the float reference on the images, EIE performs far fewer MACs,
    the counters are consistent, and the report has its tables and every plot."""
    eie = json.loads((golden_workspace / "eie" / "simulation-golden.json").read_text())
    systolic = json.loads((golden_workspace / "systolic" / "simulation-golden.json").read_text())
    for result in (eie, systolic):
        assert result["images"] == 10 and result["accuracy"] >= 0.9
        assert 0 < result["utilization"] <= 1
    assert eie["macs_performed"] * 5 < systolic["macs_performed"]
    assert sum(eie["pe"]["busy"]) + sum(eie["pe"]["starve"]) == eie["config"]["n_pe"] * eie["compute_cycles"]
    assert eie["fifo_sweep"]["1"] < eie["fifo_sweep"]["8"] <= 1.0
    # The counts replayed from the golden models agree with the cycle counters: a PE is busy one cycle per entry
    # (or per empty column), and the array takes one row of R x C MAC slots per MAC-busy cycle.
    assert eie["useful_macs"] <= eie["macs_performed"] <= sum(eie["pe"]["busy"])
    rows, cols = systolic["config"]["rows"], systolic["config"]["cols"]
    assert systolic["macs_performed"] == systolic["counters"]["mac_busy"] * rows * cols
    assert systolic["useful_macs"] <= systolic["dense_macs"] <= systolic["macs_performed"]
    markdown = (golden_workspace / "report" / "report.md").read_text()
    for heading in ("## Compression", "## EIE image storage", "## EIE against systolic", "## Roofline",
                    "## EIE load balance"):
        assert heading in markdown
    for png in ("compression", "eie_storage", "eie_vs_systolic", "energy", "roofline", "eie_load_balance"):
        assert (golden_workspace / "report" / f"{png}.png").stat().st_size > 10_000


def test_energy_table_scaling():
    """The 45 nm table's own points, and the widths in between on its scaling."""
    from sparq.energy import add_pj, mult_pj, sram_pj
    assert (mult_pj(8), mult_pj(32), mult_pj(16)) == (0.2, 3.1, 0.8)
    assert (add_pj(8), add_pj(32), add_pj(40)) == (0.03, 0.1, 0.125)
    assert sram_pj(32) == 5.0 and sram_pj(64) == 10.0


def test_simulate_golden_prints_counters(capsys, golden_workspace):
    code, out, _ = run(capsys, "simulate", golden_workspace / "eie", "--images", "3")
    assert code == 0
    assert "PE 3" in out and "load efficiency" in out and "cycles" in out


@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (apt-get install chromium); the "
                    "report's browser test needs it")
def test_report_in_headless_chromium(golden_workspace):
    page = inspect_page(golden_workspace / "report" / "index.html")
    assert page["errors"] == []
    pngs = sorted((golden_workspace / "report").glob("*.png"))
    assert len(page["images"]) == len(pngs) == 6
    for image in page["images"]:
        assert image["complete"] and image["width"] > 100 and image["height"] > 100, image


@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed")
def test_chromium_check_sees_broken_pages(tmp_path):
    """The browser check itself: a missing image and a console error are caught."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><img alt='gone' src='missing.png'>"
                    "<script>console.error('broken')</script></body></html>")
    result = inspect_page(page)
    assert any("broken" in e for e in result["errors"])
    assert result["images"] == [{"alt": "gone", "complete": True, "width": 0, "height": 0}]


def test_simulator_traceback_is_not_printed():
    error = AssertionError("EIE under Verilator: sparq.rtl:eie_images raised ValueError: bad input\n"
                           "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nValueError: bad")
    code, message, _ = explain(error)
    assert code == EXIT_MISMATCH and message.endswith("bad input") and "Traceback" not in message


def test_design_too_big_for_the_fpga_exit_code():
    from sparq.fpga.build import DoesNotFit, SynthesisError
    assert explain(DoesNotFit("eie does not fit the icebreaker: ICESTORM_LC 5678/5280"))[0] == EXIT_CAPACITY
    assert explain(SynthesisError("nextpnr failed; see top.tim"))[0] == 6


def test_winograd_cnn_on_the_golden_model(capsys, tmp_path):
    """The CNN lowered for a Winograd build: both convolutions by F(2x2, 3x3), run on the golden model, with the
    transform buffer's traffic counted."""
    from sparq.compiler.models import shipped_path
    code, out, _ = run(capsys, "lower", shipped_path("digits_cnn"), "--target", "systolic", "--array", "8",
                       "--winograd", "--out", tmp_path / "cnn")
    assert code == 0 and "Winograd" in out
    code, _, _ = run(capsys, "simulate", tmp_path / "cnn", "--images", "5")
    assert code == 0
    result = json.loads((tmp_path / "cnn" / "simulation-golden.json").read_text())
    assert result["accuracy"] >= 0.8 and result["activity"]["tb_reads"] > 0
    assert result["energy"]["parts_pj"]["transform buffer (Winograd)"] > 0


def test_winograd_is_a_systolic_switch(capsys, golden_workspace, tmp_path):
    config = tmp_path / "hw.toml"
    config.write_text("[systolic]\nwinograd = 2\n")
    code, _, err = run(capsys, "lower", golden_workspace / "compressed.npz", "--target", "systolic", "--config",
                       config, "--out", tmp_path / "s")
    assert code == EXIT_INPUT
    _one_error(err, "true or false")
    code, _, err = run(capsys, "lower", golden_workspace / "compressed.npz", "--target", "eie", "--winograd",
                       "--out", tmp_path / "e")
    assert code == EXIT_INPUT
    _one_error(err, "--winograd is a systolic parameter")


def test_simulation_results_read_back(golden_workspace):
    """simulation-<backend>.json reads back into the typed result, which writes the same keys and values."""
    from sparq.simulation import read_result
    from sparq.targets import TARGETS
    from sparq.workspace import read_record
    for target in TARGETS:
        path = golden_workspace / target.name / "simulation-golden.json"
        result = read_result(path, read_record(path.parent))
        assert result.target is target and isinstance(result.details, target.details)
        assert result.to_json() == json.loads(path.read_text())


def test_report_refuses_a_broken_simulation_result(capsys, golden_workspace, tmp_path):
    """A result missing a key, its record made to agree (an edit alone is caught by the record's SHA-256)."""
    lowered = tmp_path / "workspace" / "eie"
    shutil.copytree(golden_workspace / "eie", lowered)
    result = json.loads((lowered / "simulation-golden.json").read_text())
    del result["fifo_sweep"]
    (lowered / "simulation-golden.json").write_text(json.dumps(result))
    reseal(lowered)
    code, _, err = run(capsys, "report", tmp_path / "workspace")
    assert code == EXIT_INPUT
    _one_error(err, "simulation-golden.json", "unreadable simulation result", "fifo_sweep")

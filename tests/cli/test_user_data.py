"""Your model, your data (issue 20) from the command line: each bundled example through compress, both lowerings and
both RTLs with ``--data`` (a data .npz this test writes from the bundled splits), bit-exact against the golden
models; a model built with onnx.helper through every command on digits data from an .npz; the data set in the workspace record (a later step without ``--data`` uses it, a changed file is refused);
one-shot compression and the output drift; the sensitivity scan and its plot; the ONNX export; the EIE storage.

The RTL runs use the configurations other tests build, so no new Verilator build is made (``sparq_cli.EIE_RTL``
at -O2, ``--optimize``; ``sparq_cli.SYSTOLIC_RTL`` at -O0, ``--no-optimize``), 3 inputs each."""

import json

import numpy as np
import pytest
from onnx_models import image_mlp
from sparq_cli import EIE_RTL, SYSTOLIC_RTL, error, flags, reseal, run

from sparq.compiler.models import SHIPPED, shipped_path, shipped_split
from sparq.errors import EXIT_INPUT
from sparq.workspace import read_record

IMAGES = 3


@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    """The bundled split of each shipped model as a user's .npz (x_train, y_train, x_test, y_test)."""
    directory = tmp_path_factory.mktemp("data")
    paths = {}
    for name in SHIPPED:
        x_train, y_train, x_test, y_test = shipped_split(name)
        paths[name] = directory / f"{name}.npz"
        np.savez(paths[name], x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return paths


def _result(directory, backend):
    return json.loads((directory / f"simulation-{backend}.json").read_text())


def _simulate_both(capsys, lowered, *flags):
    """Golden then RTL on the same inputs: the RTL's predictions are the golden model's (every output was compared
    in the testbench and again by the target)."""
    code, out, _ = run(capsys, "simulate", lowered, "--images", IMAGES)
    assert code == 0 and "data: " in out
    code, out, err = run(capsys, "simulate", lowered, "--backend", "rtl", "--images", IMAGES, *flags)
    assert code == 0, err
    assert "every output bit-exact with the golden model" in out
    golden, rtl = _result(lowered, "golden"), _result(lowered, "rtl")
    assert rtl["predictions"] == golden["predictions"] and rtl["counter_source"] == "RTL performance counters"
    assert rtl["labels"] == golden["labels"] and rtl["accuracy"] == golden["accuracy"]
    return golden, rtl


@pytest.mark.parametrize("name", SHIPPED)
def test_bundled_example_through_both_rtls_with_data(capsys, tmp_path, data_files, name):
    workspace = tmp_path / name
    code, out, err = run(capsys, "compress", shipped_path(name), "--data", data_files[name], "--out", workspace)
    assert code == 0, err
    assert f"data: {name}.npz: the file's own split" in out and "test accuracy (retrained)" in out
    report = json.loads((workspace / "compression.json").read_text())
    assert report["accuracy"]["compressed"] >= report["accuracy"]["float"] - 0.02
    assert read_record(workspace).meta["data"]["path"] == str(data_files[name].resolve())

    code, out, err = run(capsys, "lower", workspace / "compressed.npz", "--target", "eie", *flags(EIE_RTL))
    assert code == 0, err
    assert "EIE image (4 PEs):" in out and "Deep Compression storage of the same layers" in out
    assert ("the host runs conv1" in out) == (name == "digits_cnn")  # a CNN's convolutions run on the host
    golden, rtl = _simulate_both(capsys, workspace / "eie", "--optimize")
    # The cycle model within 5 % on the digits MLP (the EIE RTL tests' tolerance); the tabular MLPs' layers are a
    # few dozen cycles each, where the per-layer costs the model leaves out weigh more.
    assert abs(rtl["compute_cycles"] - rtl["model_cycles"]) <= 0.1 * rtl["model_cycles"]

    code, out, err = run(capsys, "lower", workspace / "compressed.npz", "--target", "systolic", *flags(SYSTOLIC_RTL),
                         "--batch", IMAGES)
    assert code == 0 and f"calibrated on all {len(shipped_split(name)[0]):,} training samples of {name}.npz" in out
    _simulate_both(capsys, workspace / "systolic", "--no-optimize")
    assert read_record(workspace / "systolic").meta["data"] == read_record(workspace).meta["data"]


def test_a_later_step_uses_the_recorded_data_and_a_changed_file_is_refused(capsys, tmp_path, data_files):
    data = tmp_path / "wine.npz"
    data.write_bytes(data_files["wine_mlp"].read_bytes())
    workspace = tmp_path / "ws"
    assert run(capsys, "compress", shipped_path("wine_mlp"), "--data", data, "--no-retrain", "--out",
               workspace)[0] == 0
    code, out, _ = run(capsys, "lower", workspace / "compressed.npz", "--target", "eie")  # no --data: the record's
    assert code == 0 and "data: wine.npz" in out
    assert read_record(workspace / "eie").meta["data"]["path"] == str(data.resolve())
    code, out, _ = run(capsys, "simulate", workspace / "eie", "--images", 2)
    assert code == 0 and "2 test samples of wine.npz" in out

    with np.load(data) as arrays:
        changed = {k: arrays[k] for k in arrays.files}
    changed["x_test"] = changed["x_test"] * 1.5
    np.savez(data, **changed)
    code, message = error(capsys, "simulate", workspace / "eie")
    assert code == EXIT_INPUT and message.startswith(f"{data} has changed since `sparq lower` into")
    code, message = error(capsys, "lower", workspace / "compressed.npz", "--target", "systolic")
    assert code == EXIT_INPUT and message.startswith(f"{data} has changed since `sparq compress` into")
    code, out, _ = run(capsys, "simulate", workspace / "eie", "--data", data, "--images", 2)  # said explicitly
    assert code == 0 and _result(workspace / "eie", "golden")["data"].startswith("wine.npz: the file's own split")
    data.unlink()
    code, message = error(capsys, "simulate", workspace / "eie")
    assert code == EXIT_INPUT and message == f"{data}: missing, but `sparq lower` into {workspace / 'eie'} used it"

    meta = read_record(workspace / "eie").meta
    reseal(workspace / "eie", {**meta, "data": {"kind": "bundled", "name": "mnist"}})
    code, message = error(capsys, "simulate", workspace / "eie", "--data", "wine")
    assert code == EXIT_INPUT and message.startswith(f"{workspace / 'eie' / 'sparq.json'}: its data entry")


def test_the_default_data_and_a_data_file_that_does_not_fit_the_model(capsys, tmp_path, data_files):
    from workspaces import tiny_mlp
    model = tiny_mlp(tmp_path / "tiny.npz")  # 64 inputs, 10 outputs: digits by default
    code, message = error(capsys, "compress", model, "--sparsity", "0.5", "--data", data_files["wine_mlp"],
                          "--out", tmp_path / "a")
    assert code == EXIT_INPUT and "shape (13,)" in message and "(64,)" in message
    code, message = error(capsys, "lower", shipped_path("wine_mlp"), "--target", "systolic", "--data", "digits",
                          "--out", tmp_path / "b")
    assert code == EXIT_INPUT and "(64,)" in message and "(13,)" in message
    wine_like = tmp_path / "wine_like.onnx"
    wine_like.write_bytes(shipped_path("wine_mlp").read_bytes())  # not a shipped path: the default is digits
    code, _, err = run(capsys, "compress", wine_like, "--sparsity", "0.5", "--out", tmp_path / "c")
    assert code == EXIT_INPUT and "the default data, the bundled digits data" in err and "--data" in err
    code, message = error(capsys, "compress", model, "--sparsity", "0.5", "--data", tmp_path / "nowhere.npz")
    assert code == EXIT_INPUT and message == f"{tmp_path / 'nowhere.npz'}: no such data file"


def test_one_shot_on_x_alone_reports_the_drift_and_runs_unlabelled(capsys, tmp_path, data_files):
    x = np.concatenate([shipped_split("wine_mlp")[0], shipped_split("wine_mlp")[2]])
    np.savez(tmp_path / "x.npz", x=x)
    workspace = tmp_path / "ws"
    code, out, _ = run(capsys, "compress", shipped_path("wine_mlp"), "--data", tmp_path / "x.npz", "--sparsity",
                       "0.5", "--out", workspace)
    assert code == 0 and "178 unlabelled samples" in out and "accuracy was not measured" in out
    assert "outputs against the float model on 178 samples: relative RMS error" in out and "top-1 agreement" in out
    report = json.loads((workspace / "compression.json").read_text())
    assert report["mode"] == "one-shot" and report["accuracy"] == {} and report["output_drift"]["samples"] == 178
    for target in ("eie", "systolic"):
        assert run(capsys, "lower", workspace / "compressed.npz", "--target", target)[0] == 0
        code, out, _ = run(capsys, "simulate", workspace / target, "--images", 4)
        assert code == 0 and "not measured (no labels)" in out and "4 samples of x.npz" in out
        result = _result(workspace / target, "golden")
        assert result["accuracy"] is None and result["labels"] is None and result["float_agreement"] >= 0.75
    assert run(capsys, "report", workspace)[0] == 0
    markdown = (workspace / "report" / "report.md").read_text()
    assert "one-shot (no training)" in markdown and "Accuracy was not measured" in markdown

    code, out, _ = run(capsys, "compress", shipped_path("wine_mlp"), "--no-retrain", "--out", tmp_path / "labelled")
    assert code == 0 and "test accuracy (one-shot): float 98.15%" in out and "quantized" not in out.split(
        "test accuracy")[1].split("\n")[0]


def test_inputs_in_the_hundreds_get_a_calibrated_input_scale(capsys, tmp_path):
    """The wine features times 100 (as raw tabular data often is): the EIE lowering scales them into Q8.8 by a
    power of two recorded in the image, and the test inputs run without saturating."""
    x_train, y_train, x_test, y_test = shipped_split("wine_mlp")
    np.savez(tmp_path / "raw.npz", x_train=100 * x_train, y_train=y_train, x_test=100 * x_test, y_test=y_test)
    workspace = tmp_path / "ws"
    assert run(capsys, "compress", shipped_path("wine_mlp"), "--data", tmp_path / "raw.npz", "--no-retrain",
               "--out", workspace)[0] == 0
    code, out, _ = run(capsys, "lower", workspace / "compressed.npz", "--target", "eie")
    scale = json.loads((workspace / "eie" / "manifest.json").read_text())["scales"]["input"]
    assert code == 0 and scale == 2 ** np.ceil(np.log2(np.abs(100 * x_train).max() / 64))
    assert f"input scale {scale:g}" in out
    assert run(capsys, "simulate", workspace / "eie", "--images", 10)[0] == 0
    assert _result(workspace / "eie", "golden")["saturated"] == 0


def test_sensitivity_scan_chooses_the_sparsities_and_the_report_plots_it(capsys, tmp_path):
    workspace = tmp_path / "ws"
    code, out, _ = run(capsys, "compress", shipped_path("wine_mlp"), "--sparsity", "auto", "--max-drop", "0.5",
                       "--out", workspace)
    assert code == 0 and "sparsity chosen per layer by the sensitivity scan" in out
    report = json.loads((workspace / "compression.json").read_text())
    scan = report["sensitivity"]
    assert report["sparsity"] == scan["chosen"] and set(scan["chosen"]) == {"fc1", "fc2", "fc3"}
    assert scan["max_drop"] == 0.5 and len(scan["curves"]["fc1"]) == len(scan["grid"])
    kept = {row["name"]: row["kept_percent"] for row in report["layers"]}
    for name, sparsity in scan["chosen"].items():
        assert kept[name] == pytest.approx(100 * (1 - sparsity), abs=1.0)
    assert run(capsys, "report", workspace)[0] == 0
    assert (workspace / "report" / "sensitivity.png").stat().st_size > 10_000
    assert "Sparsities chosen by a sensitivity scan" in (workspace / "report" / "report.md").read_text()

    code, message = error(capsys, "compress", shipped_path("wine_mlp"), "--sparsity", "0.5", "--max-drop", "1",
                          "--out", tmp_path / "x")
    assert code == EXIT_INPUT and message.startswith("--max-drop is the accuracy budget of --sparsity auto")
    np.savez(tmp_path / "x.npz", x=shipped_split("wine_mlp")[0])
    code, message = error(capsys, "compress", shipped_path("wine_mlp"), "--sparsity", "auto", "--data",
                          tmp_path / "x.npz", "--out", tmp_path / "y")
    assert code == EXIT_INPUT and "no labels" in message


def test_export_writes_onnx_that_onnxruntime_runs(capsys, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from sparq.compiler.datasets import load_wine_split
    from sparq.compiler.ir import forward
    from sparq.workspace import load_compressed
    workspace = tmp_path / "ws"
    code, out, _ = run(capsys, "compress", shipped_path("wine_mlp"), "--no-retrain", "--onnx", "--out", workspace)
    assert code == 0 and str(workspace / "compressed.onnx") in out
    assert "compressed.onnx" in read_record(workspace).files
    model = load_compressed(workspace / "compressed.npz").model
    x = load_wine_split()[2]
    for path in (workspace / "compressed.onnx", tmp_path / "elsewhere.onnx"):
        if path.name == "elsewhere.onnx":
            code, out, _ = run(capsys, "export", workspace / "compressed.npz", "--out", path, "--no-softmax")
            assert code == 0 and f"wrote {path}" in out
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        np.testing.assert_allclose(got, forward(model, x), rtol=1e-5, atol=1e-5)
    assert run(capsys, "lower", workspace / "compressed.npz", "--target", "eie")[0] == 0
    code, message = error(capsys, "export", workspace / "compressed.npz", "--out", workspace / "eie" / "m.onnx")
    assert code == EXIT_INPUT and message == f"{workspace / 'eie'} is a directory sparq writes"
    (workspace / "compressed.onnx").unlink()
    code, message = error(capsys, "lower", workspace / "compressed.npz", "--target", "eie")
    assert code == EXIT_INPUT and "compressed.onnx: missing" in message


def test_an_onnx_helper_mlp_through_every_command(capsys, tmp_path):
    """A user's ONNX MLP on (1, 8, 8) images (Flatten, Gemm transB=0 and 1, MatMul + Add, Softmax) and the digits
    as (n, 1, 8, 8) images in an .npz: compress, export (onnxruntime agrees), both lowerings, golden and RTL runs,
    report."""
    ort = pytest.importorskip("onnxruntime")
    from sparq.compiler.datasets import load_digits_split
    from sparq.compiler.ir import probabilities
    from sparq.workspace import load_compressed
    model = image_mlp(tmp_path / "user_mlp.onnx")
    x_train, y_train, x_test, y_test = load_digits_split()
    data = tmp_path / "digits.npz"
    np.savez(data, x_train=x_train.reshape(-1, 1, 8, 8), y_train=y_train, x_test=x_test.reshape(-1, 1, 8, 8),
             y_test=y_test)
    workspace = tmp_path / "ws"
    code, out, err = run(capsys, "compress", model, "--data", data, "--no-retrain", "--sparsity", "fc1=0.8",
                         "--sparsity", "fc2=0.8", "--sparsity", "fc3=0.5", "--out", workspace)
    assert code == 0, err
    assert "samples of shape (1, 8, 8)" in out
    report = json.loads((workspace / "compression.json").read_text())
    assert report["accuracy"]["compressed"] >= report["accuracy"]["float"] - 0.05

    assert run(capsys, "export", workspace / "compressed.npz")[0] == 0
    session = ort.InferenceSession(str(workspace / "compressed.onnx"), providers=["CPUExecutionProvider"])
    images = x_test.reshape(-1, 1, 8, 8)[:100]
    compressed = load_compressed(workspace / "compressed.npz").model
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: images})[0],
                               probabilities(compressed, images), rtol=1e-5, atol=1e-5)

    code, out, err = run(capsys, "lower", workspace / "compressed.npz", "--target", "eie", *flags(EIE_RTL))
    assert code == 0 and "64 inputs -> 10 outputs" in out, err
    _simulate_both(capsys, workspace / "eie", "--optimize")
    assert run(capsys, "lower", workspace / "compressed.npz", "--target", "systolic", "--batch", 5)[0] == 0
    code, out, _ = run(capsys, "simulate", workspace / "systolic", "--images", 5)
    assert code == 0 and _result(workspace / "systolic", "golden")["accuracy"] >= 0.8
    assert run(capsys, "report", workspace)[0] == 0
    markdown = (workspace / "report" / "report.md").read_text()
    assert "## EIE image storage" in markdown and "## EIE against systolic" in markdown

"""The Python API (``sparq.api``, re-exported by ``sparq``): the README's example run as written, a weight matrix
alone compressed, lowered to EIE and simulated on the golden model and the RTL, data given as arrays, the errors
(the command's one line, as a SparqError with a short traceback), the files, and ``import sparq`` staying cheap."""

import gc
import os
import re
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest
from sparq_cli import EIE_RTL

import sparq
from sparq.errors import EXIT_CAPACITY, EXIT_INPUT, DoesNotFit, InputError, SparqError
from sparq.workspace import read_record

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example():
    """The Python block of the README's section on the API, as written."""
    text = README.read_text()
    section = text[text.index("## Your model, your data, from Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_example(), str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"\d+\.\dx smaller, test accuracy 98\.1% -> 9\d\.\d%", out[0]), out
    assert out[1].startswith("EIE image: ") and "smaller than float32" in out[1]
    assert out[2].endswith("bit-exact with the golden model: True")
    assert "cycles per input on 64 PEs, largest error against the float layer 0.00" in out[3]
    assert (tmp_path / "wine.npz").is_file() and (tmp_path / "wine_compressed.onnx").stat().st_size > 1000


def test_a_weight_matrix_alone_on_the_golden_model_and_the_rtl(tmp_path):
    """One 48 x 96 layer, no model file, no data: one-shot compression with the per-layer weight error, the EIE
    lowering calibrated on inputs given as an array, and the same inputs on the golden model and the RTL."""
    rng = np.random.default_rng(3)
    weight = rng.normal(0, 0.1, (48, 96)).astype(np.float32)
    compressed = sparq.compress(weight, sparsity=0.8, workspace=tmp_path / "ws")
    report = compressed.report
    assert report["mode"] == "one-shot" and report["accuracy"] == {} and report["data"].startswith("no data")
    assert "not measured" in report["accuracy_note"] and 0 < report["weight_error"]["fc"] < 1
    assert np.mean(compressed.model.model.layer("fc").weight == 0) == pytest.approx(0.8, abs=1e-3)
    assert read_record(tmp_path / "ws").meta["data"] == {"kind": "none"}

    x = rng.normal(0, 40, (3, 96)).astype(np.float32)  # inputs near Q8.8's range: the calibration scales them
    image = sparq.lower(compressed, target="eie", data=x, **EIE_RTL)
    assert image.directory == tmp_path / "ws" / "eie" and image.config.n_pe == 4
    assert image.lowered.compiled.input_scale > 1 and image.storage["total_bits"] > 0
    [source] = (tmp_path / "ws" / "sources").glob("data-*.npz")  # the array, saved where the record names it
    assert read_record(image.directory).meta["data"]["path"] == str(source)
    golden = sparq.simulate(image, x)
    reference = compressed.forward(x)
    assert golden.outputs.shape == (3, 48) and golden.bit_exact is None and golden.accuracy is None
    assert np.abs(golden.outputs - reference).max() <= 0.02 * np.abs(reference).max()
    assert golden.counters["saturated"] == 0 and golden.cycles == sum(golden.counters["per_image_cycles"])
    rtl = sparq.simulate(image, x, backend="rtl", optimize=True)  # CONFIG4 at -O2: the EIE RTL tests' build
    assert rtl.bit_exact is True and np.array_equal(rtl.outputs, golden.outputs)
    assert rtl.result.counter_source == "RTL performance counters" and rtl.path.name == "simulation-rtl.json"
    assert list(rtl.predictions) == list(golden.predictions)


def test_a_dict_of_weight_matrices_is_an_mlp(tmp_path):
    rng = np.random.default_rng(0)
    model = sparq.load({"up": rng.normal(0, 0.2, (32, 16)), "down": (rng.normal(0, 0.2, (4, 32)), np.ones(4))})
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Relu", "Dense"]
    assert model.input_shape == (16,) and np.array_equal(model.layer("down").bias, np.ones(4, np.float32))
    x = rng.normal(0, 1, (50, 16)).astype(np.float32)
    compressed = sparq.compress(model, data=x, sparsity={"up": 0.5, "down": 0.25})  # x alone: one-shot with drift
    assert compressed.report["output_drift"]["samples"] == 50 and compressed.ratio > 1
    systolic = sparq.lower(compressed, target="systolic", rows=4, cols=4)
    run = sparq.simulate(systolic, x[:6])
    assert run.outputs.shape == (6, 4) and run.counters["device_calls"] >= 1
    assert (run.predictions == compressed.forward(x[:6]).argmax(1)).mean() >= 0.5
    floating = sparq.lower(model, target="systolic", data=x)  # the float model, saved where its record names it
    [source] = (floating.directory.parent / "sources").glob("model-*.npz")
    assert read_record(floating.directory).meta["model"] == str(source)
    assert sparq.simulate(floating, x[:2]).outputs.shape == (2, 4)


def test_a_model_file_defaults_as_the_command_does(tmp_path):
    """A shipped model loaded from its file compresses on its own data with its own sparsities."""
    from sparq.compiler.models import shipped_path
    from sparq.compiler.pipeline import SHIPPED_SPARSITY
    model = sparq.load(shipped_path("breast_cancer_mlp"))
    compressed = sparq.compress(model, retrain=False, workspace=tmp_path / "ws")
    assert compressed.report["sparsity"] == SHIPPED_SPARSITY["breast_cancer_mlp"]
    assert read_record(tmp_path / "ws").meta["data"] == {"kind": "bundled", "name": "breast_cancer"}
    assert compressed.data.startswith("the bundled breast cancer data")
    path = sparq.export(compressed)
    assert path == tmp_path / "ws" / "compressed.onnx" and "compressed.onnx" in read_record(tmp_path / "ws").files


def _frames(error):
    return [frame.filename for frame in traceback.extract_tb(error.__traceback__)]


def test_errors_are_the_commands_one_line_with_a_short_traceback(tmp_path):
    from sparq.compiler.models import shipped_path
    with pytest.raises(InputError) as refused:
        sparq.lower(shipped_path("digits_mlp"), target="eie", out=tmp_path / "eie")
    error = refused.value
    assert error.code == EXIT_INPUT and "weight-shared" in str(error) and "sparq compress" in error.hint
    assert f"hint: {error.hint}" in error.__notes__
    assert all(not name.endswith(("flow.py", "workspace.py", "eie.py")) for name in _frames(error))
    assert error.__suppress_context__ and isinstance(error.original, SparqError)

    compressed = sparq.compress(np.eye(8, dtype=np.float32) + 0.5, sparsity=0.5)
    with pytest.raises(DoesNotFit) as big:
        sparq.lower(compressed, n_pe=4, spmat_depth=1)
    assert big.value.code == EXIT_CAPACITY and "spmat_depth" in str(big.value)
    with pytest.raises(InputError, match="eie has no parameter 'rows'"):
        sparq.lower(compressed, rows=8)
    with pytest.raises(InputError, match="x has samples of shape \\(3,\\) but the model takes input shape \\(8,\\)"):
        sparq.simulate(sparq.lower(compressed), np.ones((2, 3)))
    with pytest.raises(InputError, match="cannot load a str|no such model file"):
        sparq.load(str(tmp_path / "nowhere.onnx"))
    with pytest.raises(InputError, match="weight matrix 'w' has shape \\(3,\\)"):
        sparq.load({"w": np.ones(3)})


def test_a_temporary_workspace_lives_as_long_as_its_results():
    compressed = sparq.compress(np.eye(8, dtype=np.float32) + 0.5, sparsity=0.5)
    image = sparq.lower(compressed)
    root = compressed.workspace.parent
    assert root.name.startswith("sparq-api-") and image.directory.is_relative_to(root)
    del compressed
    gc.collect()
    assert root.is_dir() and sparq.simulate(image, np.ones((1, 8))).cycles > 0  # the image keeps it alive
    del image
    gc.collect()
    assert not root.exists()


def test_import_sparq_imports_nothing_else():
    probe = ("import sys, sparq; print(sorted(m for m in sys.modules if m.startswith('sparq'))); "
             "print('numpy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.stdout.splitlines() == ["['sparq']", "False"], done.stderr
    assert {"load", "compress", "lower", "simulate", "export"} <= set(dir(sparq))

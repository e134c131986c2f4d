"""The Deep Compression pipeline on the digits MLP: targets, the CompressedModel contract, the report, save/load."""

import json

import numpy as np
import pytest

from sparq.compiler.errors import CompileError, ConfigError, ModelFormatError
from sparq.compiler.ir import forward
from sparq.compiler.pipeline import CompressedModel, DeepCompressionConfig, compress, compress_digits_mlp, main
from sparq.compiler.report import FORMATS, print_report, write_report
from sparq.compiler.train import accuracy


def test_targets_ratio_and_accuracy(compressed_mlp):
    _, report = compressed_mlp
    total, acc = report["total"], report["accuracy"]
    assert total["ratio"]["huffman"] >= 30.0
    assert acc["compressed"] >= acc["float"] - 0.01
    assert total["ratio"]["pruned"] < total["ratio"]["quantized"] < total["ratio"]["huffman"]


def test_compressed_model_contract(compressed_mlp, digits):
    compressed, report = compressed_mlp
    assert set(compressed.shared) == {"fc1", "fc2", "fc3"}
    for name, shared in compressed.shared.items():
        layer = compressed.model.layer(name)
        assert shared.codes.dtype == np.uint8 and shared.codes.shape == layer.weight.shape
        assert shared.codebook.dtype == np.float32 and len(shared.codebook) == 16 and shared.codebook[0] == 0.0
        np.testing.assert_array_equal(layer.weight, shared.decode())
        np.testing.assert_array_equal(shared.codes == 0, layer.weight == 0)
        assert compressed.biases[name].dtype == np.float32
    measured = accuracy(compressed.model, digits[2], digits[3])
    assert measured == compressed.accuracy["compressed"] == report["accuracy"]["compressed"]


def test_report_rows(compressed_mlp):
    _, report = compressed_mlp
    rows = {row["name"]: row for row in report["layers"]}
    assert rows["fc1"]["weights"] == 19_200 and rows["fc1"]["weight_bits"] == 4 and rows["fc1"]["index_bits"] == 5
    assert rows["fc2"]["kept_percent"] == pytest.approx(5.0)
    for row in report["layers"]:
        assert 0 < row["huffman_weight_bits"] <= 4 and 0 < row["huffman_index_bits"] <= 5
        assert row["entries"] == row["kept"] + row["padding_entries"]
        bits = row["bits"]
        assert bits["original"] == 32 * (row["weights"] + row["biases"])
        assert bits["quantized"] == 32 * (row["biases"] + 16) + row["entries"] * 9
    assert report["total"]["bits"]["huffman"] == sum(r["bits"]["huffman"] for r in report["layers"])
    assert set(report["total"]["ratio"]) == set(FORMATS[1:])


def test_report_prints_and_writes_json(compressed_mlp, tmp_path, capsys):
    _, report = compressed_mlp
    print_report(report)
    out = capsys.readouterr().out
    assert "fc2" in out and "total" in out and "compressed" in out
    write_report(report, tmp_path / "report.json")
    assert json.loads((tmp_path / "report.json").read_text())["total"]["weights"] == 50_200


def test_save_and_load(compressed_mlp, tmp_path):
    compressed, _ = compressed_mlp
    compressed.save(tmp_path / "mlp.npz")
    back = CompressedModel.load(tmp_path / "mlp.npz")
    assert back.accuracy == compressed.accuracy
    for name, shared in compressed.shared.items():
        np.testing.assert_array_equal(back.shared[name].codes, shared.codes)
        np.testing.assert_array_equal(back.shared[name].codebook, shared.codebook)
    x = np.random.default_rng(0).random((5, 64), dtype=np.float32)
    np.testing.assert_array_equal(forward(back.model, x), forward(compressed.model, x))


def test_load_rejects_bad_files(compressed_mlp, tmp_path):
    compressed, _ = compressed_mlp
    compressed.save(tmp_path / "good.npz")
    arrays = dict(np.load(tmp_path / "good.npz"))
    arrays["fc2.codes"] = np.full_like(arrays["fc2.codes"], 20)
    np.savez(tmp_path / "codes.npz", **arrays)
    with pytest.raises(ModelFormatError, match="'fc2'.*corrupt"):
        CompressedModel.load(tmp_path / "codes.npz")
    np.savez(tmp_path / "plain.npz", w=np.ones(3))
    with pytest.raises(ModelFormatError, match="not a compressed model"):
        CompressedModel.load(tmp_path / "plain.npz")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "good.npz").read_bytes()[:500])
    with pytest.raises(ModelFormatError, match="not a readable"):
        CompressedModel.load(tmp_path / "cut.npz")


def test_mismatched_weights_are_refused(compressed_mlp):
    compressed, _ = compressed_mlp
    with pytest.raises(ModelFormatError, match="not the decoded shared weight"):
        CompressedModel(compressed.model, {"fc1": compressed.shared["fc2"]})


def test_fast_config_is_deterministic():
    fast = dict(prune_steps=1, prune_epochs=1, finetune_epochs=1, progress=False)
    a, report_a = compress_digits_mlp(bits=5, **fast)
    b, report_b = compress_digits_mlp(bits=5, **fast)
    assert report_a == report_b
    assert len(a.shared["fc1"].codebook) == 32
    np.testing.assert_array_equal(a.shared["fc1"].codebook, b.shared["fc1"].codebook)


def test_bad_settings():
    with pytest.raises(ConfigError, match="settings are"):
        compress_digits_mlp(speed=11)
    with pytest.raises(CompileError, match="sparsity of layer 'fc1'"):
        compress_digits_mlp(sparsity={"fc1": 1.0})


def test_conv_layers_compress_too(cnn, digits):
    config = DeepCompressionConfig(sparsity={"conv2": 0.5, "fc": 0.5}, bits=3, index_bits=3, prune_steps=1,
                                   prune_epochs=1, finetune_epochs=1)
    compressed, report = compress(cnn, digits, config, name="digits_cnn", progress=False)
    assert report["layer_types"] == {"conv1": "Conv", "conv2": "Conv", "fc": "Dense"}
    assert compressed.shared["conv2"].codes.shape == (16, 8, 3, 3)
    assert [row["kept_percent"] for row in report["layers"]] == pytest.approx([100.0, 50.0, 50.0], abs=0.5)
    assert report["accuracy"]["compressed"] > 0.8  # one epoch of retraining: only check nothing broke


@pytest.mark.slow
def test_command_line_writes_the_report_and_the_model(tmp_path, capsys):
    main(["--other-methods", "--json", str(tmp_path / "r.json"), "--save", str(tmp_path / "m.npz")])
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["other_methods"]["ternary_mlp"]["accuracy"] > 0.95
    assert CompressedModel.load(tmp_path / "m.npz").accuracy == report["accuracy"]


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_onnx_export_runs_in_onnxruntime_and_agrees_to_1e_5(which, compressed_mlp, cnn, digits, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    import onnx

    from sparq.compiler.onnx_io import read_onnx

    if which == "mlp":
        compressed = compressed_mlp[0]
    else:
        compressed, _ = compress(cnn, digits, DeepCompressionConfig({"conv2": 0.6, "fc": 0.6}, retrain=False),
                                 progress=False)
    path = tmp_path / "compressed.onnx"
    compressed.export_onnx(path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = digits[2]
    theirs = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(theirs, forward(compressed.model, x), rtol=1e-5, atol=1e-5)
    back = read_onnx(path)
    for name, shared in compressed.shared.items():
        np.testing.assert_array_equal(back.layer(name).weight, shared.decode())
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    layers = json.loads(props["sparq.compression"])
    assert set(layers) == set(compressed.shared) and all(0 < v["kept"] <= 1 and v["bits"] == 4
                                                         for v in layers.values())
    assert json.loads(props["sparq.accuracy"]) == compressed.accuracy

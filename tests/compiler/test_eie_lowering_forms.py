"""EIE lowering of the model forms users bring: inputs whose range does not fit Q8.8 (a calibrated input scale recorded
in the image, or a clear error, never a silent saturation), a CNN whose convolutions run on the host, the image's own
storage by memory against float32 and Deep Compression, and old images without scales."""

import copy
import json

import numpy as np
import pytest

from sparq.compiler.datasets import load_wine_split
from sparq.compiler.eie import (
    ACT_LIMIT,
    activation_scales,
    eie_inputs,
    eie_split,
    image_storage,
    lower_compressed,
    storage_lines,
)
from sparq.compiler.errors import UnsupportedError
from sparq.compiler.ir import forward
from sparq.compiler.models import load_shipped, shipped_split
from sparq.compiler.pipeline import SHIPPED_SPARSITY, DeepCompressionConfig, compress
from sparq.formats.eie import ACT_FRAC, EieConfig, EieImage, ImageError, to_fixed
from sparq.sim.eie import Golden

ROOMY = EieConfig(n_pe=4, ptr_depth=8192, spmat_depth=8192, act_depth=512, bias_depth=1024)


def raw_wine_model():
    """The shipped wine MLP with its input standardisation folded into fc1: it takes the raw features (proline is
    in the hundreds to 1,680) and gives the same logits."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    table = load_wine()
    x_train, x_test, y_train, y_test = train_test_split(table.data, table.target, test_size=0.3, random_state=0,
                                                        stratify=table.target)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    model = load_shipped("wine_mlp")
    fc1 = model.layer("fc1")
    fc1.bias = (fc1.bias - (fc1.weight / std) @ mean).astype(np.float32)
    fc1.weight = (fc1.weight / std).astype(np.float32)
    np.testing.assert_allclose(forward(model, x_train.astype(np.float32)), forward(load_shipped("wine_mlp"),
                               load_wine_split()[0]), rtol=1e-3, atol=1e-3)
    return model, (x_train.astype(np.float32), y_train, x_test.astype(np.float32), y_test)


@pytest.fixture(scope="module")
def raw_wine():
    model, data = raw_wine_model()
    compressed, _ = compress(model, data, DeepCompressionConfig({"fc1": 0.5, "fc2": 0.5}, retrain=False),
                             progress=False)
    return compressed, data


def test_inputs_in_the_hundreds_get_a_calibrated_input_scale(raw_wine, tmp_path):
    compressed, (x_train, _, x_test, y_test) = raw_wine
    image = lower_compressed(compressed, ROOMY, calibration_x=x_train)
    assert np.abs(x_train).max() > 1000 and image.input_scale == 32.0  # 1680 / 32 = 52.5 < ACT_LIMIT
    golden = Golden(image)
    logits = np.array([image.outputs(golden.run(a).output) for a in eie_inputs(compressed.model, image, x_test)])
    reference = forward(compressed.model, x_test)
    assert (logits.argmax(1) == reference.argmax(1)).mean() >= 0.95
    assert (logits.argmax(1) == y_test).mean() >= (reference.argmax(1) == y_test).mean() - 0.04
    assert np.abs(logits - reference).max() < 0.05 * np.abs(reference).max()
    assert all(sum(golden.run(a).saturated) == 0 for a in eie_inputs(compressed.model, image, x_train))
    image.save(tmp_path / "img")
    back = EieImage.load(tmp_path / "img")
    assert (back.input_scale, back.output_scale) == (image.input_scale, image.output_scale)


def test_without_calibration_the_same_inputs_are_refused_not_saturated(raw_wine):
    compressed, (x_train, _, x_test, _) = raw_wine
    image = lower_compressed(compressed, ROOMY)
    assert image.input_scale == 1.0
    with pytest.raises(ImageError, match=r"input value 1\d{3}(\.\d+)? at index \(\d+, 12\) is outside the image's "
                                         r"input range.*calibrating on data that covers"):
        eie_inputs(compressed.model, image, x_test)
    assert to_fixed(x_test, ACT_FRAC).max() == 32767  # what the plain conversion silently did
    calibrated = lower_compressed(compressed, ROOMY, calibration_x=x_train)
    with pytest.raises(ImageError, match="outside the image's input range"):
        calibrated.inputs(x_test * 1000)


def test_data_that_fits_keeps_scale_one_and_the_same_image(compressed_mlp, digits):
    compressed, _ = compressed_mlp
    plain = lower_compressed(compressed, ROOMY)
    calibrated = lower_compressed(compressed, ROOMY, calibration_x=digits[0])
    assert (calibrated.input_scale, calibrated.output_scale) == (1.0, 1.0)
    for a, b in zip((plain.codebooks, plain.ptr, plain.spmat, plain.bias),
                    (calibrated.codebooks, calibrated.ptr, calibrated.spmat, calibrated.bias)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(calibrated.inputs(digits[2][:3]), to_fixed(digits[2][:3], ACT_FRAC))


def test_hidden_activations_get_their_own_scales(compressed_mlp, digits):
    compressed, _ = compressed_mlp
    model = copy.deepcopy(compressed.model)
    dense = model.weighted()
    scales = activation_scales(dense, [True, True, False], digits[0] * 40)  # hidden peaks scale by 40 too
    assert scales[0] == 1.0 and all(s >= 1 and np.log2(s) == int(np.log2(s)) for s in scales)
    assert scales[-1] > 1.0 and ACT_LIMIT == 64.0


def test_old_images_without_scales_still_load(compressed_mlp, tmp_path):
    image = lower_compressed(compressed_mlp[0], ROOMY)
    image.save(tmp_path / "img")
    manifest = json.loads((tmp_path / "img" / "manifest.json").read_text())
    del manifest["scales"]
    (tmp_path / "img" / "manifest.json").write_text(json.dumps(manifest))
    back = EieImage.load(tmp_path / "img")
    assert (back.input_scale, back.output_scale) == (1.0, 1.0)
    np.testing.assert_array_equal(back.spmat, image.spmat)


def test_cnn_runs_its_convolutions_on_the_host_and_its_fc_layer_on_eie(cnn, digits):
    compressed, _ = compress(cnn, digits, DeepCompressionConfig(SHIPPED_SPARSITY["digits_cnn"], retrain=False),
                             progress=False)
    with pytest.raises(UnsupportedError, match="layer 'conv1' \\(Conv\\) is not one.*host_prefix=True"):
        lower_compressed(compressed, ROOMY)
    host, fc = eie_split(compressed.model, host_prefix=True)
    assert [layer.name for layer in fc] == ["fc"] and host[-1].name == "flatten"
    image = lower_compressed(compressed, ROOMY, calibration_x=digits[0], host_prefix=True)
    assert image.input_len == 64 and len(image.layers) == 1
    x_test = digits[2][:100]
    golden = Golden(image)
    predicted = [int(np.argmax(golden.run(a).output)) for a in eie_inputs(compressed.model, image, x_test,
                                                                           host_prefix=True)]
    reference = forward(compressed.model, x_test).argmax(1)
    assert np.mean(np.array(predicted) == reference) >= 0.97


def test_storage_by_memory_against_float32_and_deep_compression(compressed_mlp):
    compressed, report = compressed_mlp
    image = lower_compressed(compressed, EieConfig(n_pe=64, bias_depth=1024))
    storage = image_storage(image, report)
    memories = storage["memories"]
    assert set(memories) == {"pointers", "sparse_matrix", "codebook", "biases", "layer_table"}
    assert memories["pointers"] == 64 * (65 + 301 + 101) * image.config.ptr_width
    assert memories["sparse_matrix"] == image.spmat.size * 64 and memories["codebook"] == 3 * 16 * 16
    assert storage["total_bits"] == sum(memories.values())
    assert storage["float32_bits"] == report["total"]["bits"]["original"]
    assert storage["ratio"] == pytest.approx(storage["float32_bits"] / storage["total_bits"])
    assert storage["deep_compression"]["huffman"] == report["total"]["bits"]["huffman"]
    assert storage["ratio"] < storage["deep_compression_ratio"]["quantized"]  # the per-PE pointers cost
    lines = storage_lines(storage)
    assert "smaller than float32" in lines[0] and any("pointers" in line for line in lines)
    assert "Deep Compression storage" in lines[-1]


def test_pointers_dominate_a_short_wide_layer():
    """The classifier layer alone (10 x 100) on 64 PEs: 64 x 101 pointers outweigh its few hundred entries."""
    compressed, _ = compress(load_shipped("digits_mlp"), shipped_split("digits_mlp"),
                             DeepCompressionConfig({"fc3": 0.7}, retrain=False), progress=False)
    from sparq.compiler.eie import LayerSpec, lower

    shared = compressed.shared["fc3"]
    image = lower([LayerSpec(shared.codes, shared.codebook, None, relu=False)], EieConfig(n_pe=64))
    memories = image_storage(image)["memories"]
    assert memories["pointers"] > 3 * memories["sparse_matrix"]

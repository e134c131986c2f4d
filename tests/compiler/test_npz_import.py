""".npz import: named weight arrays plus a layer list."""

import numpy as np
import pytest

from sparq.compiler.errors import ModelFormatError, UnsupportedError
from sparq.compiler.ir import forward
from sparq.compiler.models import load_model
from sparq.compiler.npz_io import read_npz, write_npz


def test_write_then_read_round_trips(tmp_path, cnn):
    write_npz(cnn, tmp_path / "cnn.npz")
    back = load_model(tmp_path / "cnn.npz")
    assert [type(a) for a in back.layers] == [type(b) for b in cnn.layers]
    x = np.random.default_rng(0).random((4, 64), dtype=np.float32)
    np.testing.assert_array_equal(forward(back, x), forward(cnn, x))


def test_bare_arrays_with_a_layer_list(tmp_path):
    rng = np.random.default_rng(1)
    w1, b1, w2 = rng.normal(size=(5, 3)), rng.normal(size=5), rng.normal(size=(2, 5))
    np.savez(tmp_path / "bare.npz", W1=w1, b1=b1, **{"out.weight": w2})
    layers = [{"op": "Dense", "name": "hidden", "weight": "W1", "bias": "b1"}, {"op": "Relu", "name": "relu"},
              {"op": "Dense", "name": "out"}]
    model = read_npz(tmp_path / "bare.npz", layers=layers, input_shape=(3,))
    x = rng.normal(size=(4, 3)).astype(np.float32)
    expected = np.maximum(x @ w1.T + b1, 0) @ w2.T
    np.testing.assert_allclose(forward(model, x), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.layer("out").bias, 0.0)


def test_errors_name_the_problem(tmp_path):
    np.savez(tmp_path / "bare.npz", W=np.ones((2, 2)))
    with pytest.raises(ModelFormatError, match="no layer list.*pass layers="):
        read_npz(tmp_path / "bare.npz")
    with pytest.raises(ModelFormatError, match="'fc'.*weight array 'fc.weight'.*\\['W'\\]"):
        read_npz(tmp_path / "bare.npz", layers=[{"op": "Dense", "name": "fc"}], input_shape=(2,))
    with pytest.raises(UnsupportedError, match="op 'Sigmoid'"):
        read_npz(tmp_path / "bare.npz", layers=[{"op": "Sigmoid", "name": "s"}], input_shape=(2,))
    with pytest.raises(ModelFormatError, match="bad field"):
        read_npz(tmp_path / "bare.npz", layers=[{"op": "Relu", "name": "r", "slope": 2}], input_shape=(2,))
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFormatError, match="not a readable .npz archive.*write it again"):
        read_npz(tmp_path / "corrupt.npz")
    with pytest.raises(ModelFormatError, match="unknown model file type"):
        load_model(tmp_path / "model.h5")


@pytest.mark.parametrize("content,words", [
    ("onnx", "not an .npz archive.*another kind of file"), ("npy", "a single .npy array"),
    ("objects", "array 'layers' holds Python objects.*never loads"), ("truncated", "corrupt or truncated"),
])
def test_unsafe_or_foreign_files_are_refused_without_suggesting_pickle(tmp_path, content, words):
    from sparq.compiler.models import shipped_path

    path = tmp_path / "model.npz"
    if content == "onnx":
        path.write_bytes(shipped_path("digits_mlp").read_bytes())
    elif content == "npy":
        np.save(tmp_path / "a.npy", np.ones(3))
        path.write_bytes((tmp_path / "a.npy").read_bytes())
    elif content == "objects":
        np.savez(path, layers=np.array([{"op": "Dense"}], dtype=object))
    else:
        np.savez(path, W=np.ones((50, 50)))
        path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ModelFormatError, match=words) as info:
        load_model(path)
    assert "allow_pickle" not in str(info.value) and "\n" not in str(info.value)

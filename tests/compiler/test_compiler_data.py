"""A user's data from an .npz: the three layouts, shapes checked against the model, one clear line for bad files."""

import numpy as np
import pytest

from sparq.compiler.data import Dataset, fit_inputs, load_data, validation_split
from sparq.compiler.datasets import load_digits_split
from sparq.compiler.errors import DataError, ShapeError


def test_own_split_is_used_as_given(tmp_path, digits):
    x_train, y_train, x_test, y_test = digits
    np.savez(tmp_path / "d.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    data = load_data(tmp_path / "d.npz", (64,), (10,))
    assert data.labelled and data.source == "d.npz"
    for ours, theirs in zip(data.split, digits):
        np.testing.assert_array_equal(ours, theirs)
    assert "own split, 1,257 training and 540 test" in data.description and "10 classes" in data.description


def test_x_and_y_are_split_stratified_and_seeded_and_it_says_so(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 13)), np.repeat([0, 1, 2, 3], 50)
    np.savez(tmp_path / "t.npz", x=x, y=y.astype(np.float64))  # integral floats are labels too
    a, b = load_data(tmp_path / "t.npz", (13,), (4,)), load_data(tmp_path / "t.npz", (13,), (4,))
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert len(a.x_train) == 140 and len(a.x_test) == 60 and np.bincount(a.y_test).tolist() == [15] * 4
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64
    assert "split by sparq" in a.description and "stratified by class" in a.description and "seed 0" in a.description


def test_a_class_of_one_sample_gets_a_plain_split_and_it_says_so(tmp_path):
    np.savez(tmp_path / "t.npz", x=np.ones((10, 3)), y=[0] * 9 + [1])
    data = load_data(tmp_path / "t.npz", (3,), (2,))
    assert "not stratified" in data.description and len(data.x_test) == 3


def test_x_alone_is_unlabelled(tmp_path):
    np.savez(tmp_path / "x.npz", x=np.ones((7, 4), dtype=np.int16))
    data = load_data(tmp_path / "x.npz", (4,), (3,))
    assert not data.labelled and len(data.inputs) == 7 and "accuracy is not measured" in data.description
    with pytest.raises(DataError, match="no labels"):
        _ = data.split


@pytest.mark.parametrize("stored,model,ok", [
    ((64,), (64,), True), ((8, 8), (1, 8, 8), True), ((64,), (1, 8, 8), True), ((1, 8, 8), (64,), True),
    ((1, 64), (64,), True), ((3, 4, 4), (3, 4, 4), True), ((48,), (3, 4, 4), False), ((4, 4, 3), (3, 4, 4), False),
    ((63,), (64,), False), ((8, 8), (2, 4, 8), False),
])
def test_input_shapes(stored, model, ok):
    x = np.arange(5 * np.prod(stored), dtype=np.float32).reshape(5, *stored)
    if ok:
        fitted, note = fit_inputs(x, model)
        assert fitted.shape == (5, *model) and (note == "") == (stored == model)
        np.testing.assert_array_equal(fitted.reshape(5, -1), x.reshape(5, -1))
    else:
        with pytest.raises(ShapeError) as info:
            fit_inputs(x, model)
        assert str(stored) in str(info.value) and str(model) in str(info.value) and "\n" not in str(info.value)


def test_shape_error_names_both_shapes(tmp_path):
    np.savez(tmp_path / "x.npz", x=np.ones((5, 30)))
    with pytest.raises(ShapeError, match=r"x has samples of shape \(30,\) but the model takes input shape \(13,\)"):
        load_data(tmp_path / "x.npz", (13,), (3,))


@pytest.mark.parametrize("arrays,words", [
    (dict(x=np.ones((4, 2)), y=[0, 1, 2, 3]), "labels 0 .. 3 but the model has 3 outputs"),
    (dict(x=np.ones((4, 2)), y=[0, 1, 1]), "3 labels for 4 samples"),
    (dict(x=np.ones((4, 2)), y=[0.5, 1, 1, 0]), "non-integral"),
    (dict(x=np.ones((4, 2)), y=[-1, 0, 1, 0]), "relabel the classes from 0"),
    (dict(x=np.array([[1.0, np.nan]] * 4), y=[0, 1, 1, 0]), "NaN, infinite or beyond-float32.*index \\(0, 1\\)"),
    (dict(x=np.full((4, 2), 1e300), y=[0, 1, 1, 0]), "beyond-float32"),
    (dict(x=np.array([["a", "b"]] * 4)), "not numbers"),
    (dict(x=np.ones(4)), "one sample per row"),
    (dict(x_train=np.ones((4, 2)), y_train=[0, 1, 1, 0]), "holds exactly"),
    (dict(x=np.ones((4, 2)), labels=[0, 1, 1, 0]), "\\['labels', 'x'\\]"),
])
def test_bad_arrays_are_one_clear_line(tmp_path, arrays, words):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=words) as info:
        load_data(tmp_path / "bad.npz", (2,), (3,))
    assert "\n" not in str(info.value) and str(info.value).startswith("bad.npz")


def test_one_hot_labels(tmp_path):
    y = np.array([2, 0, 1, 1])
    np.savez(tmp_path / "oh.npz", x=np.ones((4, 2)), y=np.eye(3)[y])
    data = load_data(tmp_path / "oh.npz", (2,), (3,))
    assert sorted(np.concatenate([data.y_train, data.y_test]).tolist()) == sorted(y.tolist())


@pytest.mark.parametrize("kind", ["onnx", "pickle", "missing"])
def test_files_that_are_not_data(tmp_path, kind):
    from sparq.compiler.models import shipped_path

    path = tmp_path / "data.npz"
    if kind == "onnx":
        path.write_bytes(shipped_path("digits_mlp").read_bytes())
    elif kind == "pickle":
        np.savez(path, x=np.array([object(), object()], dtype=object))
    with pytest.raises(DataError) as info:
        load_data(path, (64,))
    assert "allow_pickle" not in str(info.value) and "\n" not in str(info.value)


def test_validation_split_never_touches_the_test_split(digits):
    x_train, y_train, x_test, _ = digits
    x_fit, y_fit, x_val, y_val = validation_split(x_train, y_train)
    assert len(x_fit) + len(x_val) == len(x_train) and len(x_val) == -(-len(x_train) // 5)
    rows = {row.tobytes() for row in x_train}
    assert all(row.tobytes() in rows for row in x_val)


def test_calibration_subset_is_seeded_and_stated():
    x_train, y_train, x_test, y_test = load_digits_split()
    data = Dataset(x_train, y_train, x_test, y_test, "d.npz: ...", "d.npz")
    x, line = data.calibration(limit=100)
    assert len(x) == 100 and "100 of the 1,257 training samples of d.npz (seed 0)" in line
    np.testing.assert_array_equal(x, data.calibration(limit=100)[0])
    assert len(data.calibration()[0]) == 1257

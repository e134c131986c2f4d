"""DSD: the sparse phase keeps pruned weights at exactly zero, the re-dense phase restores them from zero, shapes
never change, and the baseline spends the same epoch budget."""

import numpy as np
import pytest

from sparq.compiler.dsd import DsdSchedule, dense_baseline, dsd_train
from sparq.compiler.errors import ConfigError
from sparq.compiler.ir import Dense, Model, Relu


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 12)).astype(np.float32)
    y = (x[:, :3].sum(axis=1) > 0).astype(np.int64) + (x[:, 3] > 1)
    model = Model([Dense("fc1", rng.normal(0, 0.4, (16, 12)), np.zeros(16)), Relu("relu"),
                   Dense("fc2", rng.normal(0, 0.4, (3, 16)), np.zeros(3))], (12,))
    return model, x, y


def _schedule(redense_epochs):
    return DsdSchedule({"fc1": 0.5, "fc2": 0.25}, dense_epochs=2, sparse_epochs=2, redense_epochs=redense_epochs,
                       lr=1e-2, batch_size=16)


def test_sparse_phase_holds_pruned_weights_at_zero(problem):
    model, x, y = problem
    sparse, masks = dsd_train(model, x, y, _schedule(0), seed=3)
    for name, mask in masks.items():
        weight = sparse.layer(name).weight
        assert weight.shape == model.layer(name).weight.shape
        assert np.all(weight[~mask] == 0.0) and np.count_nonzero(~mask) == round(
            {"fc1": 0.5, "fc2": 0.25}[name] * mask.size)


def test_redense_restores_pruned_weights_from_zero(problem):
    model, x, y = problem
    sparse, masks = dsd_train(model, x, y, _schedule(0), seed=3)
    dense, masks_again = dsd_train(model, x, y, _schedule(2), seed=3)
    for name, mask in masks.items():
        assert np.array_equal(mask, masks_again[name])  # deterministic: the same phases up to re-dense
        revived = dense.layer(name).weight[~mask]
        assert np.count_nonzero(revived) == revived.size  # every pruned weight trained again
        assert dense.layer(name).weight.shape == model.layer(name).weight.shape
        # restarted from zero at a tenth of the rate: the revived weights are still small next to the kept ones
        assert np.abs(revived).mean() < np.abs(sparse.layer(name).weight[mask]).mean()
    assert [type(l) for l in dense.layers] == [type(l) for l in model.layers]


def test_baseline_spends_the_same_budget(problem):
    model, x, y = problem
    schedule = _schedule(2)
    assert schedule.total_epochs == 6
    baseline = dense_baseline(model, x, y, schedule, seed=3)
    assert all(np.count_nonzero(l.weight) == l.weight.size for l in baseline.weighted())


@pytest.mark.parametrize("make, match", [
    (lambda: DsdSchedule({}, 1, 1, 1), "at least one layer"),
    (lambda: DsdSchedule({"fc1": 0.5}, -1, 1, 1), "non-negative whole epochs"),
    (lambda: DsdSchedule({"fc1": 0.5}, 1, 1, 1, redense_lr_scale=2.0), "redense_lr_scale"),
])
def test_bad_schedules(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_unknown_layer_is_named(problem):
    model, x, y = problem
    with pytest.raises(ConfigError, match="no weighted layer called \\['conv9'\\]"):
        dsd_train(model, x, y, DsdSchedule({"conv9": 0.5}, 1, 1, 1))

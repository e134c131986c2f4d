"""Data and model parallelism: every split reassembles bit-exactly to the unsplit golden output (EIE and systolic,
MLP and CNN, K = 1 .. 5 including K above a layer's width), the communication model counts what it says, and the
Dask sweep runs on a two-worker LocalCluster."""

import numpy as np
import pytest

from sparq.compiler.datasets import load_digits_split
from sparq.compiler.eie import LayerSpec, lower
from sparq.compiler.errors import ConfigError
from sparq.compiler.models import load_shipped
from sparq.compiler.parallel import Link, batch_shares, gather_rows, shard_rows, split_eie_rows, split_gemm_columns
from sparq.compiler.systolic import compile_network
from sparq.formats.eie import ACT_FRAC, EieConfig, to_fixed
from sparq.sim.eie.golden import Golden
from sparq.sim.parallel import run_eie, run_systolic, scaling, sweep
from sparq.sim.systolic.golden import run_network
from sparq.sim.systolic.stimulus import config_for, random_layers

EIE = EieConfig(n_pe=2, fifo_depth=4, ptr_depth=1024, spmat_depth=1024, act_depth=128, bias_depth=256)


def eie_network(seed, dims=(20, 13, 7, 3), density=0.35):
    rng = np.random.default_rng(seed)
    specs = []
    for i, (n_in, n_out) in enumerate(zip(dims, dims[1:])):
        codes = rng.integers(1, 16, (n_out, n_in)) * (rng.random((n_out, n_in)) < density)
        codes[:, rng.integers(n_in)] = 0  # an empty column
        specs.append(LayerSpec(codes, np.r_[0.0, np.linspace(-0.6, 0.6, 15)], rng.normal(0, 0.2, n_out),
                               relu=i + 2 < len(dims)))
    return specs, rng.normal(0.5, 0.8, (6, dims[0]))


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


def test_shards_and_shares_cover_everything_once():
    for n, k in [(10, 3), (3, 5), (16, 4), (1, 1)]:
        rows = np.concatenate(shard_rows(n, k))
        assert sorted(rows) == list(range(n))
        values = np.arange(n) * 7
        assert np.array_equal(gather_rows([values[r] for r in shard_rows(n, k) if len(r)], axis=0), values)
        shares = batch_shares(n, k)
        assert [i for s in shares for i in range(n)[s]] == list(range(n))
        assert max(s.stop - s.start for s in shares) - min(s.stop - s.start for s in shares) <= 1


def test_link_model():
    link = Link(bytes_per_cycle=8, latency=100)
    assert link.cycles(0) == 0 and link.cycles(1) == 101 and link.cycles(64) == 108 and link.cycles(65) == 109
    with pytest.raises(ConfigError, match="bytes_per_cycle > 0"):
        Link(bytes_per_cycle=0)
    with pytest.raises(ConfigError, match="positive integer"):
        shard_rows(4, 0)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_eie_row_split_images_are_the_sub_matrices(k):
    """Instance i of the split holds exactly rows i, i+K, ... of every layer, and running the K single-layer
    images and interleaving gives, layer by layer, exactly the unsplit golden activations."""
    specs, inputs = eie_network(k)
    wide = lower(specs, EieConfig(n_pe=k * EIE.n_pe, fifo_depth=4, ptr_depth=1024, spmat_depth=1024,
                                 act_depth=128, bias_depth=256))
    shards = split_eie_rows(wide, k)
    reference = Golden(lower(specs, EIE))
    for x in inputs:
        trace = reference.run(to_fixed(x, ACT_FRAC))
        a = trace.acts[0]
        for l, layer in enumerate(shards):
            parts = [Golden(image).run(a).output for image in layer if image is not None]
            assert all(image.config.n_pe == EIE.n_pe for image in layer if image is not None)
            a = gather_rows(parts)
            np.testing.assert_array_equal(a, trace.acts[l + 1], err_msg=f"layer {l}, K={k}")


@pytest.mark.parametrize("mode", ["model", "data"])
def test_eie_runs_reassemble_bit_exactly(mode):
    specs, inputs = eie_network(7)
    reference = np.array([Golden(lower(specs, EIE)).run(to_fixed(x, ACT_FRAC)).output for x in inputs])
    runs = [run_eie(specs, EIE, inputs, 1, "data")]
    for k in (1, 2, 4):
        runs.append(run_eie(specs, EIE, inputs, k, mode))
        np.testing.assert_array_equal(runs[-1].output, reference, err_msg=f"{mode} parallel, K={k}")
    rows = scaling(runs)
    assert rows[0]["efficiency"] == 1.0 and all(r["cycles"] > 0 for r in rows)
    if mode == "data":  # the same bytes move, only on more links; the image is loaded into every instance
        assert len({r["bytes_moved"] for r in rows}) == 1
        assert rows[-1]["setup_bytes"] == 4 * rows[0]["setup_bytes"]


def test_gemm_column_split_keeps_per_column_parameters():
    layer = random_layers(np.random.default_rng(0), [9, 7])[0]
    parts = split_gemm_columns(layer, 3)
    assert [p.n for p in parts] == [3, 2, 2]
    np.testing.assert_array_equal(gather_rows([p.weight for p in parts], axis=1), layer.weight)
    np.testing.assert_array_equal(gather_rows([p.shift for p in parts], axis=0), layer.shift)
    assert split_gemm_columns(layer, 9)[7] is None  # more instances than columns


@pytest.mark.parametrize("name", ["digits_mlp", "digits_cnn"])
@pytest.mark.parametrize("mode", ["model", "data"])
def test_systolic_runs_reassemble_bit_exactly(digits, name, mode):
    x_train, _, x_test, _ = digits
    network = compile_network(load_shipped(name), x_train, config_for(8), name=name, batch=3)
    images = x_test[:7]
    reference, calls = run_network(network, images)
    for k in (1, 2, 3, 4):
        run = run_systolic(network, images, k, mode)
        np.testing.assert_array_equal(run.output, reference, err_msg=f"{name}, {mode} parallel, K={k}")
        assert {c.instance for c, _, _ in run.calls} == set(range(min(k, len(images)) if mode == "data" else k))
    single = run_systolic(network, images, 1, "data")
    assert len(single.calls) == len(calls)


def test_dask_sweep_on_two_workers(digits):
    specs, inputs = eie_network(3)
    payload = {"images": inputs, "eie": {"random": (specs, EIE)}, "systolic": {}}
    points = [{"accelerator": "eie", "model": "random", "mode": mode, "k": k, "bytes_per_cycle": 16,
               "latency": 10} for mode, k in [("data", 1), ("data", 2), ("model", 2)]]
    results = sweep(points, payload, n_workers=2)
    direct = [run_eie(specs, EIE, inputs, p["k"], p["mode"], Link(16, 10)).cycles for p in points]
    assert [r["cycles"] for r in results] == direct
    assert results[0]["efficiency"] == 1.0 and 0 < results[1]["efficiency"] <= 1.0

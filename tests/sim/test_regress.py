"""``sparq regress``: a few hundred seeded random cases through the command on a 2-worker LocalCluster, a wrong
expectation reported as a mismatch with the command that reproduces it, and the same seed giving the same case.

The configurations are the ones other default-suite tests build too (the EIE RTL tests' ``CONFIG4`` and the 2x2 and
4x4 systolic arrays), plus the 1-PE EIE at FIFO depth 1, so the builds are shared."""

import json
import os

import numpy as np
import pytest

from sparq.cli import main
from sparq.errors import EXIT_MISMATCH
from sparq.sim import regress

EIE = "pe1-fifo1,pe4-fifo8"
SYSTOLIC = "2x2,4x4"


def _regress_ok(capsys, tmp_path, target, configs, seeds, *where):
    out = tmp_path / "regress.json"
    code = main(["regress", "--target", target, "--seeds", str(seeds), "--start", "1000", "--configs", configs,
                 *where, "--json", str(out)])
    printed = capsys.readouterr().out
    summary = json.loads(out.read_text())
    assert code == 0, printed
    assert summary["cases"] == seeds and summary["mismatches"] == 0 and summary["workers"] == 2
    used = summary["configurations"]
    assert set(used) == set(configs.split(","))
    assert all(row["cases"] > 0 and row["cycle_checks"] >= row["cases"] for row in used.values())
    assert sum(row["cases"] for row in used.values()) == seeds
    for name in used:
        assert name in printed  # the summary table
    assert os.getcwd() not in out.read_text()  # no absolute paths in the JSON


def test_eie_cases_on_a_local_cluster(tmp_path, capsys):
    _regress_ok(capsys, tmp_path, "eie", EIE, 200, "--workers", "2")


def test_systolic_cases_on_a_scheduler(tmp_path, capsys):
    """``--scheduler``: the cases run on the workers of a cluster started elsewhere (here, a 2-worker LocalCluster)."""
    from dask.distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster:
        _regress_ok(capsys, tmp_path, "systolic", SYSTOLIC, 120, "--scheduler", cluster.scheduler_address)


def _fail(capsys, argv, what):
    code = main(argv)
    printed = capsys.readouterr()
    assert code == EXIT_MISMATCH, printed.out + printed.err
    assert what in printed.out
    return printed.out


def test_a_wrong_cycle_expectation_is_a_mismatch(capsys, monkeypatch):
    """An EIE cycle model one cycle off: every case fails, each printed with the command that reproduces it."""
    right = regress.eie_compute_bounds
    monkeypatch.setattr(regress, "eie_compute_bounds", lambda *a: tuple(b + 1 for b in right(*a)))
    printed = _fail(capsys, ["regress", "--target", "eie", "--seeds", "3", "--start", "7", "--configs", "pe4-fifo8",
                             "--workers", "0"], "compute cycles")
    for seed in (7, 8, 9):
        assert f"reproduce: sparq regress --target eie --seeds 1 --start {seed} --configs pe4-fifo8" in printed


def test_a_wrong_golden_output_is_a_mismatch(capsys, monkeypatch):
    """A golden model whose first output is off by one: the RTL (right) differs from it, and the message says where."""
    class Wrong(regress.Golden):
        def run(self, a):
            trace = super().run(a)
            trace.acts[-1] = trace.acts[-1].copy()
            trace.acts[-1][0] += 1
            return trace

    monkeypatch.setattr(regress, "Golden", Wrong)
    printed = _fail(capsys, ["regress", "--target", "eie", "--seeds", "1", "--start", "3", "--configs", "pe1-fifo1",
                             "--workers", "0"], "output differs from the golden model, first difference at index 0")
    assert "reproduce: sparq regress --target eie --seeds 1 --start 3 --configs pe1-fifo1" in printed


def test_a_wrong_systolic_prediction_is_a_mismatch(capsys, monkeypatch):
    right = regress.predict

    def predict(config, instructions):
        estimate = right(config, instructions)
        estimate.mac_busy += 1
        return estimate

    monkeypatch.setattr(regress, "predict", predict)
    printed = _fail(capsys, ["regress", "--target", "systolic", "--seeds", "2", "--configs", "2x2", "--workers", "0"],
                    "mac_busy")
    assert "reproduce: sparq regress --target systolic --seeds 1 --start 1 --configs 2x2" in printed


def _same_eie(a, b):
    assert (a.config_name, a.inputs, a.gap_probability, a.stall_probability) == \
           (b.config_name, b.inputs, b.gap_probability, b.stall_probability)
    for x, y in zip(a.layers, b.layers, strict=True):
        assert np.array_equal(x.codes, y.codes) and np.array_equal(x.codebook, y.codebook)
        assert np.array_equal(x.bias, y.bias) and x.relu == y.relu


def test_same_seed_same_case():
    """A case is a function of its seed (and of the configuration list): generated twice, it is the same; the
    seeds around it are different cases; every configuration is drawn."""
    for seed in (0, 1, 12345):
        _same_eie(regress.eie_case(seed), regress.eie_case(seed))
        a, b = regress.systolic_case(seed), regress.systolic_case(seed)
        assert a.program.encoded() == b.program.encoded()
        assert np.array_equal(a.input_words, b.input_words) and a.config_name == b.config_name
    shapes = {tuple(layer.codes.shape for layer in regress.eie_case(seed).layers) for seed in range(20)}
    assert len(shapes) == 20
    assert {regress.eie_case(s).config_name for s in range(200)} == set(regress.EIE_CONFIGS)
    assert {regress.systolic_case(s).config_name for s in range(200)} == set(regress.SYSTOLIC_CONFIGS)
    with pytest.raises(ValueError, match="no eie configuration pe99"):
        regress.eie_case(0, ["pe99"])


def test_a_case_alone_runs_as_in_its_batch():
    """``--seeds 1 --start S`` reruns case S exactly: alone, it gives the RTL cycles it gave in a batch."""
    seeds = regress.plan("eie", range(40), ["pe1-fifo1", "pe4-fifo8"])["pe4-fifo8"][:4]
    batch = regress.run_batch("eie", "pe4-fifo8", seeds, ["pe1-fifo1", "pe4-fifo8"])
    alone = regress.run_batch("eie", "pe4-fifo8", seeds[2:3], ["pe1-fifo1", "pe4-fifo8"])
    assert all(o.ok for o in batch) and alone[0].ok
    assert alone[0].rtl_cycles == batch[2].rtl_cycles and alone[0].description == batch[2].description

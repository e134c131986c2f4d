"""K = 1, 2, 4 systolic instances on the RTL (Verilator): every call of a model- and a data-parallel run of the
digits MLP checked byte for byte against the golden model, under random host gaps and back-pressure, and the RTL's
cycles equal to the cycle model's that the scaling numbers use. Slow: one accelerator build, tens of calls."""

import pytest

from sparq.compiler.datasets import load_digits_split
from sparq.compiler.models import load_shipped
from sparq.compiler.systolic import compile_network
from sparq.sim.parallel import replay_on_rtl, run_systolic
from sparq.sim.systolic.stimulus import config_for


@pytest.mark.slow
@pytest.mark.parametrize("mode, k", [("data", 1), ("model", 2), ("model", 4), ("data", 2), ("data", 4)])
def test_instances_on_rtl(tmp_path, mode, k):
    x_train, _, x_test, _ = load_digits_split()
    network = compile_network(load_shipped("digits_mlp"), x_train, config_for(8), name="digits_mlp")
    run = run_systolic(network, x_test[:4], k, mode)
    calls = replay_on_rtl(run, tmp_path, seed=k, gap_probability=0.2, stall_probability=0.2)
    assert {c["instance"] for c in calls} == set(range(k))
    for number, call in enumerate(calls):
        assert call["rtl_cycles"] == call["model_cycles"], f"call {number}: {call}"


@pytest.mark.slow
@pytest.mark.parametrize("mode, k", [("data", 1), ("model", 2), ("model", 4), ("data", 2)])
def test_eie_instances_on_rtl(tmp_path, mode, k):
    """The compressed digits MLP on K EIE instances of 4 PEs: every call's output checked against the golden model
    by the testbench; the RTL's compute cycles within 5 % of the cycle model's (the EIE RTL tests' tolerance)."""
    from sparq.compiler.pipeline import compress_digits_mlp
    from sparq.formats.eie import EieConfig
    from sparq.sim.parallel import replay_eie_on_rtl, run_eie

    config = EieConfig(n_pe=4, fifo_depth=8, ptr_depth=1024, spmat_depth=1024, act_depth=128, bias_depth=256,
                      max_layers=4)
    compressed, _ = compress_digits_mlp(bits=4, progress=False)
    _, _, x_test, _ = load_digits_split()
    run = run_eie(compressed, config, x_test[:3], k, mode)
    calls = replay_eie_on_rtl(run, tmp_path, seed=k, gap_probability=0.2, stall_probability=0.2)
    assert {c["instance"] for c in calls} == set(range(k))
    rtl, model = sum(c["rtl_cycles"] for c in calls), sum(c["model_cycles"] for c in calls)
    assert abs(rtl - model) <= 0.05 * model, (rtl, model)

"""``sparq simulate --backend rtl`` runs the native runner by default and cocotb with ``--runner cocotb``; the two give
the same outputs, cycles and counters on the same lowering, on EIE and on the systolic array, from the command line
and from the API (issue 16).

The configurations are the ones other tests build for both runners, so no new Verilator build is made: EIE
``sparq_cli.EIE_RTL`` at -O2 (tests/eie_rtl), the 4x4 systolic array of ``config_for(4)`` at -O0 (tests/sim)."""

import numpy as np
import pytest
from sparq_cli import EIE_RTL, flags, run

import sparq
from sparq.cli import build_parser
from sparq.errors import EXIT_INPUT, InputError
from sparq.sim.systolic.stimulus import config_for
from sparq.simulation import RUNNERS

SYSTOLIC_4 = {"rows": 4, "cols": 4, **{k: getattr(config_for(4), k) for k in ("ub_depth", "wb_depth", "acc_depth")}}
IMAGES = 3


def _timeless(result):
    """A simulation result's JSON without its wall-clock times."""
    data = result.to_json()
    del data["seconds"], data["build_seconds"]
    return data


@pytest.mark.parametrize("target, params, optimize", [("eie", EIE_RTL, True), ("systolic", SYSTOLIC_4, False)])
def test_native_and_cocotb_give_the_same_run(capsys, tiny, target, params, optimize):
    lowered = tiny / f"rtl-{target}"
    extra = ["--batch", "2"] if target == "systolic" else []  # 3 images: two device calls, one padded
    assert run(capsys, "lower", tiny / "compressed.npz", "--target", target, *flags(params), *extra,
               "--out", lowered)[0] == 0
    optimize_flag = "--optimize" if optimize else "--no-optimize"
    code, out, err = run(capsys, "simulate", lowered, "--backend", "rtl", "--runner", "cocotb", "--images", IMAGES,
                         optimize_flag)
    assert code == 0 and "every output bit-exact with the golden model" in out, err
    cocotb = sparq.simulate(lowered, backend="rtl", images=IMAGES, optimize=optimize, runner="cocotb")
    native = sparq.simulate(lowered, backend="rtl", images=IMAGES, optimize=optimize)  # the default runner
    assert native.bit_exact and np.array_equal(native.outputs, cocotb.outputs)
    assert _timeless(native.result) == _timeless(cocotb.result)
    assert native.result.counter_source == "RTL performance counters" and native.cycles > 0


def test_the_runner_flag(capsys, tiny):
    assert RUNNERS[0] == "native"
    assert build_parser().parse_args(["simulate", "somewhere"]).runner == "native"
    with pytest.raises(SystemExit):
        run(capsys, "simulate", tiny / "eie", "--backend", "rtl", "--runner", "vpi")
    assert "invalid choice: 'vpi'" in capsys.readouterr().err
    with pytest.raises(InputError) as raised:
        sparq.simulate(tiny / "eie", backend="rtl", runner="vpi")
    assert raised.value.code == EXIT_INPUT and "unknown runner 'vpi'" in str(raised.value)

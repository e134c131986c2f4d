"""The harness itself: build caching, per-design build directories, failure reporting, waveforms."""

import os
import re
import subprocess
import sys

import pytest

from sparq.hw.common.fifo import StreamFIFO
from sparq.hw.common.mac import MACCell
from sparq.sim.bench import port_map
from sparq.sim.golden.mac import accumulate
from sparq.sim.harness import build_verilator, run_amaranth, run_verilator
from sparq.sim.stimulus import FreeRunningMAC, lfsr_operands


def test_rebuild_is_skipped_for_identical_verilog():
    first = build_verilator(StreamFIFO(8, 4), name="cache-check")
    stamp = first / "sparq-build.ok"
    mtime = stamp.stat().st_mtime_ns
    again = build_verilator(StreamFIFO(8, 4), name="cache-check")
    assert again == first and stamp.stat().st_mtime_ns == mtime


def test_each_parameter_set_gets_its_own_build_directory():
    assert build_verilator(StreamFIFO(8, 4), name="cache-check") != build_verilator(StreamFIFO(8, 3), name="cache-check")


def test_port_map_follows_amaranth_naming():
    ports = port_map(StreamFIFO(8, 4))
    assert ports["i.payload"].verilog_name == "i__payload" and ports["level"].width == 3
    assert port_map(MACCell(a_width=4))["a"].signed


def test_failure_message_crosses_the_simulator_boundary():
    """A mismatch inside the Verilator process reaches pytest with the first differing index, expected and got."""
    params = dict(a_width=8, b_width=8, acc_width=12, saturate=True)
    with pytest.raises(AssertionError, match=r"first at index \d+: expected -?\d+, got -?\d+"):
        run_verilator(MACCell(**params), "sparq.sim.tb.mac:accumulate_sequence", a=[-128] * 4, b=[-128] * 4,
                      **{**params, "saturate": False})


@pytest.mark.parametrize("run", [run_amaranth, run_verilator])
def test_free_running_mac_matches_golden(run):
    cycles = 3000
    dut = FreeRunningMAC(a_width=8, b_width=8, acc_width=24, saturate=False)
    result = run(dut, "sparq.sim.tb.mac:free_running", cycles=cycles)
    # After reset the MAC has taken `cycles` updates; the LFSR state in each was the next one in sequence.
    a, b = lfsr_operands(dut.seed, cycles, 8, 8)
    expected = accumulate(a, b, a_width=8, b_width=8, acc_width=24, saturate=False)[-1]
    assert result["y"] == expected


def test_waves_flag_writes_an_fst_file(tmp_path):
    """``SPARQ_WAVES=1`` builds with tracing and prints the path of a real FST file, with no network: pip and any
    HTTP client are pointed at a closed port (the LZ4 compressor the FST writer needs ships with sparq)."""
    code = ("from sparq.hw.common.mac import MACCell; from sparq.sim.harness import run_verilator; "
            "run_verilator(MACCell(), 'sparq.sim.tb.mac:random_mac', seed=1, n=20, a_width=8, b_width=8, "
            "acc_width=32, saturate=False)")
    offline = {name: "http://127.0.0.1:9" for name in ("PIP_INDEX_URL", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
                                                       "https_proxy", "ALL_PROXY")}
    env = {**os.environ, **offline, "PIP_FIND_LINKS": "", "PIP_NO_INDEX": "1", "SPARQ_WAVES": "1",
           "SPARQ_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    path = re.search(r"waveform: (\S+\.fst)", out.stderr).group(1)
    with open(path, "rb") as fst:
        assert fst.read(1) == b"\x00" and os.path.getsize(path) > 100  # FST's header block comes first

"""The report parsers and checks, on log excerpts shaped like Yosys 0.70 and nextpnr 0.11 output: no tools run."""

import pytest

from sparq.fpga.report import (
    MemoryInLogic,
    MemoryMapping,
    SynthesisReport,
    Usage,
    parse_memory_mapping,
    parse_rtlil,
    parse_utilisation_log,
)

RTLIL = r"""
module \top.dut.storage
  attribute \src "amaranth/lib/fifo.py:289"
  memory width 16 size 1023 \storage
  memory width 8 size 4 \small
end
module \top.dut
  cell $mul $7
    parameter \A_SIGNED 1
    parameter \A_WIDTH 16
    parameter \B_WIDTH 16
    parameter \Y_WIDTH 32
    connect \A \port$23$0 [15:0]
    connect \B \port$23$0 [31:16]
    connect \Y $1
  end
  cell $mul $8
    parameter \A_WIDTH 8
    parameter \B_WIDTH 4
    connect \A \x [7:0]
    connect \B 4'0101
    connect \Y $2
  end
  cell $mul $9
    parameter \A_WIDTH 1
    parameter \B_WIDTH 8
    connect \A \en
    connect \B \x [7:0]
    connect \Y $3
  end
end
"""

YOSYS_LOG = """
2.25. Executing MEMORY_LIBMAP pass (mapping memories to cells).
mapping memory top.dut.storage.storage via $__ICE40_RAM4K_
using FF mapping for memory top.dut.storage.small
<suppressed ~68 debug messages>
"""

NEXTPNR_LOG = """
Info: Device utilisation:
Info: 	         ICESTORM_LC:   6012/   5280   113%
Info: 	        ICESTORM_RAM:      4/     30    13%
Info: 	        ICESTORM_DSP:      1/      8    12%
"""


def test_rtlil_memories_and_multipliers():
    memories, multipliers = parse_rtlil(RTLIL)
    assert memories == {"top.dut.storage.storage": (16, 1023), "top.dut.storage.small": (8, 4)}
    assert multipliers == 1, "a constant operand or a 1-bit operand is not a multiplier that needs a DSP"


def test_memory_mapping_from_yosys_log():
    memories = {**parse_rtlil(RTLIL)[0], "top.gone": (8, 512)}
    mapping = {m.name: m.mapped_to for m in parse_memory_mapping(YOSYS_LOG, memories)}
    assert mapping == {"top.dut.storage.storage": "SB_RAM40_4K", "top.dut.storage.small": "flip-flops",
                       "top.gone": "removed"}


def test_utilisation_from_nextpnr_log():
    usage = parse_utilisation_log(NEXTPNR_LOG)
    assert usage["ICESTORM_LC"] == Usage(6012, 5280)
    assert usage["ICESTORM_DSP"] == Usage(1, 8)


def _report(memories, *, multipliers=0, dsp_used=0, dsp=True):
    return SynthesisReport(design="d", board="icebreaker", device="iCE40UP5K-SG48", family="ice40", params={},
                           dsp=dsp, resources={"DSP": Usage(dsp_used, 8)}, cells={}, clocks=[], critical_paths=[],
                           memories=memories, multipliers=multipliers, harness=None, build_dir="build/x")


def test_large_memory_in_logic_fails_loudly():
    big = MemoryMapping("top.dut.buffer", 16, 128, "flip-flops")
    with pytest.raises(MemoryInLogic, match=r"top\.dut\.buffer \(128 x 16 bits\) went to flip-flops"):
        _report([big]).check()
    with pytest.raises(MemoryInLogic, match="LUT RAM"):
        _report([MemoryMapping("top.m", 32, 256, "LUT RAM")]).check()
    _report([MemoryMapping("top.regfile", 16, 75, "LUT RAM"), MemoryMapping("top.acc", 256, 16, "LUT RAM")]).check()


def test_small_or_shallow_memory_in_logic_is_a_warning():
    report = _report([MemoryMapping("top.q", 8, 4, "flip-flops"), MemoryMapping("top.b", 16, 1024, "DP16KD"),
                      MemoryMapping("top.instr", 128, 15, "LUT RAM")])
    assert report.check() is report
    assert any("top.q (4x8, flip-flops), top.instr (15x128, LUT RAM)" in w for w in report.warnings)


def test_multipliers_outside_dsps_are_flagged():
    assert _report([], multipliers=2, dsp_used=2).warnings == []
    assert "1 of 2 multipliers are built from LUTs" in _report([], multipliers=2, dsp_used=1).warnings[0]
    assert "--no-dsp" in _report([], multipliers=1, dsp=False).warnings[0]

"""The FPGA flow end to end with the real tools: one small synthesis by default, the failure paths when slow.

The default test builds one small design for the iCEBreaker (iCE40 UP5K) that holds one multiplier and one memory,
so that a single run proves DSP inference, block-RAM mapping, the report and its JSON. About ten seconds once YoWASP
has compiled its tools; the very first run on a machine adds a minute or two for that compilation.
"""

import json
from pathlib import Path

import pytest
from amaranth import Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from sparq.fpga.build import DoesNotFit, synthesize
from sparq.fpga.report import MemoryInLogic
from sparq.hw.common.fifo import StreamFIFO
from sparq.hw.common.mac import MACCell


class Smoke(wiring.Component):
    """A MACCell and a 512-deep StreamFIFO side by side: one SB_MAC16 and one SB_RAM40_4K expected."""

    def __init__(self):
        self._mac = MACCell(a_width=8, b_width=8, acc_width=20)
        self._fifo = StreamFIFO(8, 512)
        super().__init__({"mac": Out(self._mac.signature), "fifo": Out(self._fifo.signature)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mac, m.submodules.fifo = self._mac, self._fifo
        wiring.connect(m, wiring.flipped(self.mac), self._mac)
        wiring.connect(m, wiring.flipped(self.fifo), self._fifo)
        return m


def test_smoke_synthesis_on_up5k(tmp_path):
    report = synthesize(Smoke(), "icebreaker", name="smoke")
    assert report.device == "iCE40UP5K-SG48"
    assert report.multipliers == 1 and report.resources["DSP"].used == 1, report.cells
    assert [(m.depth, m.width, m.mapped_to) for m in report.memories] == [(511, 8, "SB_RAM40_4K")]
    assert report.resources["BRAM"].used == 1 and report.resources["BRAM"].available == 30
    assert 0 < report.resources["LC"].used < 1000
    assert report.fmax_mhz > 12, "the design must at least run at the iCEBreaker's 12 MHz"
    assert report.critical_paths and report.critical_paths[0].delay_ns > 0
    assert report.harness["ff"] == (8 + 8 + 20 + 1 + 8 + 1 + 1) + (20 + 1 + 1 + 8 + 1 + 10) + 1
    saved = json.loads(report.write_json(tmp_path / "smoke.json").read_text())
    assert saved["fmax_mhz"] == report.fmax_mhz and saved["resources"]["DSP"]["used"] == 1
    assert report.warnings == []


def test_the_router_and_the_placement_seed_are_nextpnrs_given_and_their_own_builds():
    """``router`` and ``pnr_seed`` reach nextpnr's command line, build apart from the default's build and are in the
    report; an unknown router or a bad seed is refused before any tool runs."""
    default = synthesize(Smoke(), "icebreaker", name="smoke")
    routed = synthesize(Smoke(), "icebreaker", name="smoke", router="router2", pnr_seed=7)
    assert routed.build_dir != default.build_dir
    assert "--router router2 --seed 7" in (Path(routed.build_dir) / "build_top.sh").read_text()
    assert not {"--router", "--seed"} & set((Path(default.build_dir) / "build_top.sh").read_text().split())
    assert routed.fmax_mhz > 12 and routed.resources["DSP"].used == 1
    assert (routed.router, routed.pnr_seed, default.router, default.pnr_seed) == ("router2", 7, None, None)
    assert routed.to_json()["pnr_seed"] == 7 and "router2, placement seed 7" in routed.table().title
    with pytest.raises(ValueError, match="unknown nextpnr router 'router3'; nextpnr has router1, router2"):
        synthesize(Smoke(), "icebreaker", name="smoke", router="router3")
    for bad in (-1, 1 << 31, 1.5, True):
        with pytest.raises(ValueError, match="placement seed must be an integer from 0 to 2147483647"):
            synthesize(Smoke(), "icebreaker", name="smoke", pnr_seed=bad)


class AsyncReadTable(wiring.Component):
    """A 128 x 16 memory with a combinational read port: no iCE40 block RAM can hold it."""
    addr: In(7)
    data: Out(16)

    def elaborate(self, platform):
        m = Module()
        m.submodules.table = table = memory.Memory(shape=16, depth=128, init=range(128))
        port = table.read_port(domain="comb")
        m.d.comb += [port.addr.eq(self.addr), self.data.eq(port.data)]
        return m


@pytest.mark.slow
def test_memory_in_logic_fails_loudly():
    with pytest.raises(MemoryInLogic, match=r"table \(128 x 16 bits\) went to flip-flops.*synchronous read port"):
        synthesize(AsyncReadTable(), "icebreaker")


@pytest.mark.slow
def test_too_big_names_the_resource_and_a_way_out():
    with pytest.raises(DoesNotFit, match=r"does not fit the icebreaker.*ICESTORM_RAM \d+/30.*--board ulx3s-85f"):
        synthesize(StreamFIFO(16, 16384), "icebreaker", name="fifo")

"""The native runner (sparq.sim.native): the systolic accelerator against the cocotb path on the same jobs (the EIE's
is in tests/eie_rtl/test_eie_native.py), its stream agents and monitors on small designs, some breaking the rules;
and the build cache's cheap key and Verilog without zero initialisation."""

from pathlib import Path

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.eie import EieConfig
from sparq.hw.common.fifo import StreamFIFO
from sparq.hw.eie import EIE
from sparq.hw.systolic.accelerator import SystolicAccelerator
from sparq.sim import harness, verilog
from sparq.sim.harness import build_verilator, run_verilator
from sparq.sim.native import run_native
from sparq.sim.native.build import build_native
from sparq.sim.native.script import Job, NativeFailure, NativeProcess, Sink, Source
from sparq.sim.systolic.stimulus import config_for, random_gemm

PRESSURE = dict(gap_probability=0.3, stall_probability=0.3)
CONFIG = EieConfig(n_pe=2, ptr_depth=64, spmat_depth=64, act_depth=16, bias_depth=16, max_layers=2)


def test_systolic_native_equals_cocotb(tmp_path):
    """Random GEMM chains on the 4x4 array with gaps on both input streams and the instruction stream, and
    back-pressure on host_out: the same counters (stall cycles included) and outputs."""
    config = config_for(4)
    runs = []
    for case, (m, dims) in enumerate([(7, [9, 3]), (14, [7, 9, 3]), (1, [1, 1])]):
        program, words, _ = random_gemm(400 + case, m, dims, config)
        folder = tmp_path / f"case{case}"
        folder.mkdir()
        from sparq.formats.systolic import save_program
        save_program(program, folder / "program.npz")
        np.save(folder / "inputs.npy", words)
        runs.append(dict(name=f"case {case}", program=str(folder / "program.npz"), inputs=str(folder / "inputs.npy"),
                         seed=case, instr_gap_probability=0.2, **PRESSURE))
    body = "sparq.sim.tb.systolic:run_program_files"
    cocotb = run_verilator(SystolicAccelerator(config), body, runs=runs, optimize=False)
    native = run_native(SystolicAccelerator(config), body, runs=runs)
    assert native == cocotb
    assert all(r["stall_cycles"] > 2 for r in native)
    single = run_native(SystolicAccelerator(config), "sparq.sim.tb.systolic:run_program_file",
                        **{k: v for k, v in runs[1].items() if k != "name"})
    assert single == {k: v for k, v in cocotb[1].items() if k != "name"}


class _BrokenSource(wiring.Component):
    """An output stream that breaks a rule: ``mode`` "drop" lowers valid every other cycle whatever ready says,
    "change" changes the payload every cycle while holding valid; "good" keeps the rules."""
    o: Out(stream.Signature(8))

    def __init__(self, mode: str):
        self.mode = mode
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        count = Signal(8)
        m.d.sync += count.eq(count + 1)
        if self.mode == "drop":
            m.d.comb += [self.o.valid.eq(count[0]), self.o.payload.eq(count)]
        elif self.mode == "change":
            m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(count)]
        else:
            value = Signal(8)
            with m.If(self.o.ready):
                m.d.sync += value.eq(value + 1)
            m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(value)]
        return m


@pytest.mark.parametrize("mode, rule", [("drop", "valid fell before its transfer"),
                                        ("change", "the payload changed from 0x[0-9a-f]+ to 0x[0-9a-f]+ while ready "
                                                   "was low")])
def test_monitor_names_port_cycle_and_rule(mode, rule):
    build = build_native(_BrokenSource(mode), name=f"broken-{mode}")
    job = Job(build)
    job.seed(1)
    job.reset()
    job.run([Sink("o", 50, stall_probability=0.5)], max_cycles=1000, label="collect")
    with NativeProcess(build) as process, \
            pytest.raises(NativeFailure, match=rf"^collect: stream rule broken on `o` at cycle \d+: {rule}"):
        process.run(job)


def test_stream_agents_on_a_fifo():
    """A FIFO with gaps and back-pressure: every item through once, in order; a sink that gets more than it asked
    for fails with the port named; the pressure counts add up."""
    build = build_native(StreamFIFO(16, 4), name="fifo-native")
    items = np.random.default_rng(1).integers(0, 1 << 16, 500)
    job = Job(build)
    job.seed(3)
    job.reset()
    out, counts = job.run([Source("i", items, 0.4), Sink("o", 500, 0.4)], max_cycles=100_000)
    with NativeProcess(build) as process:
        reply = process.run(job)
        assert np.array_equal(reply.data[out].values(), items) and reply.data[counts] == [500, 500]
        assert reply.streams["i"]["transfers"] == reply.streams["o"]["transfers"] == 500
        assert reply.streams["i"]["starved"] > 0 and reply.streams["o"]["stalled"] > 0
        again = Job(build)
        again.run([Source("i", items[:20]), Sink("o", 2, waited_for=False)], max_cycles=100, label="short sink")
        with pytest.raises(NativeFailure, match=r"^short sink: `o`: unexpected extra item 0x[0-9a-f]+ after the 2"):
            process.run(again)


def test_cached_build_needs_no_verilog(monkeypatch):
    """A cached build is found by the design key alone; a component that does not keep its arguments is keyed by
    its Verilog instead."""
    first = build_verilator(StreamFIFO(8, 4), name="cache-check")

    def refuse(*args, **kwargs):
        raise AssertionError("converted a design whose build is cached")
    monkeypatch.setattr(harness, "convert", refuse)
    assert build_verilator(StreamFIFO(8, 4), name="cache-check") == first
    assert verilog.design_key(StreamFIFO(8, 4)) != verilog.design_key(StreamFIFO(8, 3))
    config = config_for(2)
    assert verilog.design_key(SystolicAccelerator(config)) == verilog.design_key(SystolicAccelerator(config))
    assert verilog.design_key(EIE(CONFIG)) != verilog.design_key(EIE(CONFIG, pe_counters=False))

    class Forgetful(StreamFIFO):
        def __init__(self, depth):
            super().__init__(8, depth)
            del self.depth
    assert verilog.design_key(Forgetful(4)) is None


class _Memories(wiring.Component):
    addr: In(4)
    data: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.submodules.rom = rom = memory.Memory(shape=8, depth=16, init=[0, 5, 7, 0, 0, 255])
        m.submodules.ram = ram = memory.Memory(shape=8, depth=16, init=[])
        read, other, write = rom.read_port(domain="comb"), ram.read_port(domain="comb"), ram.write_port()
        m.d.comb += [read.addr.eq(self.addr), other.addr.eq(self.addr), self.data.eq(read.data ^ other.data),
                     write.addr.eq(self.addr), write.data.eq(self.addr), write.en.eq(1)]
        return m


def test_verilog_has_no_zero_initialisation():
    text = verilog.convert(_Memories())
    assignments = [line.strip() for line in text.splitlines() if "] = 8'h" in line]
    assert assignments == ["rom[1] = 8'h05;", "rom[2] = 8'h07;", "rom[5] = 8'hff;"]


@pytest.mark.slow
def test_native_waves(tmp_path, monkeypatch, capsys):
    """``SPARQ_WAVES=1``: an FST file from the native runner."""
    monkeypatch.setenv("SPARQ_WAVES", "1")
    monkeypatch.setenv("SPARQ_CACHE", str(tmp_path))
    config = config_for(2)
    program, words, _ = random_gemm(3, 3, [3, 2], config)
    from sparq.formats.systolic import save_program
    save_program(program, tmp_path / "p.npz")
    np.save(tmp_path / "x.npy", words)
    run_native(SystolicAccelerator(config), "sparq.sim.tb.systolic:run_program_file", program=str(tmp_path / "p.npz"),
               inputs=str(tmp_path / "x.npy"))
    path = Path(capsys.readouterr().err.split("waveform: ")[1].split()[0])
    assert path.stat().st_size > 0

"""sparq.sim.formal itself: the tool wrappers, and that a false property fails with a named counterexample."""

import shutil
import subprocess

import pytest
from amaranth import Module

from sparq.hw.common.fifo import StreamFIFO
from sparq.sim.formal import ProofFailed, ProofInconclusive, Property, cover, prove
from sparq.sim.formal.fifo import QueueLevel, QueueOrder
from sparq.sim.formal.toolchain import TOOLS, formal_path, warm


class AcceptsWhenFull(StreamFIFO):
    """A deliberately broken StreamFIFO: ``i.ready`` is always high, so an item offered to a full queue is taken
    and dropped."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i.ready.eq(1)
        return m


class ShowsInput(StreamFIFO):
    """A deliberately broken StreamFIFO whose output shows the input's payload instead of the oldest item's (its
    level and flow control are right)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.o.payload.eq(self.i.payload)
        return m


def _failure(wrapper, **kwargs) -> ProofFailed:
    with pytest.raises(ProofFailed) as caught:
        prove(wrapper, **kwargs)
    return caught.value


def _check_trace(failure: ProofFailed, signal: str):
    assert failure.trace is not None and failure.trace.is_file(), failure
    text = failure.trace.read_text()
    assert "$enddefinitions" in text and signal in text
    assert str(failure.trace) in str(failure)
    shutil.rmtree(failure.workdir)


def test_tools_on_path():
    """Every name SymbiYosys calls resolves to a wrapper that runs the PyPI tool."""
    warm()
    warm()  # idempotent
    path = formal_path()
    for name in TOOLS:
        found = shutil.which(name, path=path)
        assert found and found.startswith(path.split(":")[0]), name
    version = subprocess.run([shutil.which("boolector", path=path), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip()
    assert "Preparing" not in version.stdout + version.stderr


def test_broken_fifo_level_fails_with_trace():
    failure = _failure(QueueLevel(AcceptsWhenFull(8, 2)))
    assert type(failure) is ProofFailed
    assert "i.ready while full" in failure.failed
    assert "QueueLevel[AcceptsWhenFull depth 2]" in str(failure)
    _check_trace(failure, "i__ready")


def test_broken_fifo_order_fails_with_trace():
    failure = _failure(QueueOrder(ShowsInput(8, 2)))
    assert ("the marked item delivered with another item's payload (an item lost, duplicated or reordered)"
            in failure.failed), failure.failed
    _check_trace(failure, "o__payload")


def test_not_inductive_is_inconclusive():
    """The tracked-item property holds (BMC) but is not k-inductive: prove mode says so, with the induction trace."""
    with pytest.raises(ProofInconclusive) as caught:
        prove(QueueOrder(StreamFIFO(8, 2)), mode="prove", depth=6)
    assert "is not 6-inductive" in str(caught.value) and caught.value.trace.name == "trace_induct.vcd"
    shutil.rmtree(caught.value.workdir)


class _Unreachable(Property):
    """A counter that counts to 3 and wraps: 5 is never reached."""

    def elaborate(self, platform):
        from amaranth import Signal
        from amaranth.hdl import Cover
        m = Module()
        count = Signal(3)
        m.d.sync += count.eq((count + 1) % 4)
        m.d.comb += [Cover(count == 3, "three"), Cover(count == 5, "five")]
        return m


def test_unreached_cover_is_named():
    with pytest.raises(ProofFailed, match="five") as caught:
        cover(_Unreachable(), depth=8)
    assert caught.value.failed == ["five"] and caught.value.trace is None
    shutil.rmtree(caught.value.workdir)


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        prove(QueueLevel(StreamFIFO(8, 2)), mode="cover")
    with pytest.raises(ValueError, match="depth"):
        prove(QueueLevel(StreamFIFO(8, 2)), depth=0)

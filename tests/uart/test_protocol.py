"""The shared protocol framing (sparq.formats.uart) against the device-side reference model, in pure Python."""

import pytest

from sparq.formats import uart as protocol
from sparq.formats.uart import DeviceError, ProtocolError, Status
from sparq.sim.uart.model import HostBridgeModel


def test_framing_round_trips_through_the_model():
    model = HostBridgeModel(n_counters=3)
    def run(op):
        return protocol.drive(op, model.transact)
    assert run(protocol.hello()) == protocol.Info(version=protocol.VERSION, n_counters=3)
    words = list(range(0xFFFFFFF0, 0xFFFFFFFF)) + list(range(600))
    run(protocol.write_words(protocol.SPACE_IMAGE, 7, words, chunk=100))
    assert run(protocol.read_words(protocol.SPACE_IMAGE, 7, len(words), chunk=256)) == words
    assert run(protocol.read(protocol.SPACE_IMAGE, 0, 2)) == [0, 0]
    model.counters = [1, 2**32 - 1, 5]
    assert run(protocol.counters(3)) == [1, 2**32 - 1, 5]
    run(protocol.start())
    model.done, model.sticky["overrun"] = True, True
    assert run(protocol.status()) == Status(busy=False, done=True, frame_error=False, overrun=True, timeout=False)
    assert run(protocol.status()).overrun is False, "sticky bits clear on read"
    assert model.starts == 1


def test_run_job_sequence():
    model = HostBridgeModel(n_counters=2)
    model.memory[protocol.SPACE_OUTPUT] = {0: 11, 1: 22}
    model.done, model.counters = True, [9, 8]
    outputs, counters = protocol.drive(protocol.run_job([5, 6, 7], 2, n_counters=2), model.transact)
    assert (outputs, counters) == ([11, 22], [9, 8])
    assert model.memory[protocol.SPACE_INPUT] == {0: 5, 1: 6, 2: 7} and model.starts == 1


def test_status_byte_and_the_error_bit():
    """Bit 5 is the accelerator's error (live, not cleared by a STATUS); waiting for a run raises DeviceError on it."""
    assert Status.from_byte(0b100010) == Status(busy=False, done=True, frame_error=False, overrun=False,
                                                timeout=False, error=True)
    assert all(Status.from_byte(b).to_byte() == b for b in range(64))
    model = HostBridgeModel(n_counters=1)
    model.done = model.error = True
    assert protocol.drive(protocol.status(), model.transact).error
    assert protocol.drive(protocol.status(), model.transact).error, "error is live, not sticky in the bridge"
    with pytest.raises(DeviceError, match="stopped on an error"):
        protocol.drive(protocol.run_job([1], 1, n_counters=1), model.transact)


def test_wire_bytes_are_the_documented_ones():
    assert protocol.write(2, 0x1234, [0xA1B2C3D4]).request == bytes.fromhex("01 02 3412 0100 d4c3b2a1")
    assert protocol.read(1, 3, 2).request == bytes.fromhex("02 01 0300 0200")
    assert protocol.read(1, 3, 2).reply_length == 9


@pytest.mark.parametrize("reply, message", [
    (b"\xff\x00\x00\x00\x00", "got NAK"),
    (b"\x80SQ", "expected a 5-byte reply, got 3"),
    (b"\x80XY\x01\x04", "bad magic"),
    (b"\x80SQ\x09\x04", "protocol version 9"),
])
def test_bad_replies_raise_protocol_error(reply, message):
    with pytest.raises(ProtocolError, match=message):
        protocol.hello().decode(reply)


@pytest.mark.parametrize("make, message", [
    (lambda: protocol.write(256, 0, [1]), "space must be an integer in 0..255"),
    (lambda: protocol.write(0, 0, [2**32]), "word must be an integer"),
    (lambda: protocol.read(0, 70000, 1), "addr must be"),
    (lambda: list(protocol.write_words(0, 65530, [0] * 10)), "run past the 16-bit address space"),
])
def test_bad_arguments_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_wait_done_stops_on_link_errors():
    model = HostBridgeModel()
    model.sticky["frame_error"] = True
    with pytest.raises(ProtocolError, match="link error"):
        protocol.drive(protocol.wait_done(), model.transact)

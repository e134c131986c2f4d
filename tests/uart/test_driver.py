"""The pyserial driver against the protocol model standing in for a board (no hardware, no serial port)."""

import pytest

from sparq.formats import uart as protocol
from sparq.formats.uart import DeviceError, ProtocolError
from sparq.fpga.driver import Device
from sparq.sim.uart.model import HostBridgeModel


class ModelPort:
    """The parts of ``serial.Serial`` the driver uses, answered by a :class:`HostBridgeModel`."""

    def __init__(self, model, *, alive=True):
        self.model, self.alive, self.pending, self.closed = model, alive, b"", False

    def write(self, data):
        if self.alive:
            self.pending += self.model.feed(data)

    def read(self, n):
        reply, self.pending = self.pending[:n], self.pending[n:]
        return reply

    def reset_input_buffer(self):
        self.pending = b""

    def close(self):
        self.closed = True


def test_driver_runs_a_job():
    model = HostBridgeModel(n_counters=2)
    model.memory[protocol.SPACE_OUTPUT] = {k: 100 + k for k in range(10)}
    model.done, model.counters = True, [1234, 5]
    port = ModelPort(model)
    with Device(port) as board:
        assert board.hello().n_counters == 2
        board.load_image(range(300))
        outputs, counters = board.run_job([7] * 64, n_outputs=10)
        assert board.read(protocol.SPACE_IMAGE, 290, 10) == list(range(290, 300))
        assert not board.status().busy
        assert board.resync(silence=0).version == protocol.VERSION
    assert outputs == list(range(100, 110)) and counters == [1234, 5]
    assert model.memory[protocol.SPACE_INPUT] == {k: 7 for k in range(64)} and model.starts == 1
    assert port.closed


def test_accelerator_error_is_surfaced():
    """A board whose accelerator stopped on an error: status() shows it and run_job raises DeviceError."""
    model = HostBridgeModel(n_counters=4)
    model.done = model.error = True
    with Device(ModelPort(model)) as board:
        assert board.status().error
        with pytest.raises(DeviceError, match="an instruction it does not execute"):
            board.run_job([1, 2], n_outputs=1)


def test_silent_board_is_a_clear_error():
    with pytest.raises(ProtocolError, match="got 0 byte.*is the board programmed and the baud rate right"):
        Device(ModelPort(HostBridgeModel(), alive=False)).hello()


def test_missing_port_is_a_clear_error():
    with pytest.raises(RuntimeError, match="cannot open serial port '/dev/sparq-no-such-port'.*plugged in"):
        Device("/dev/sparq-no-such-port")

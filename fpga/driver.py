"""The host side of a sparq board: a pyserial driver for the protocol of :mod:`sparq.formats.uart`.

::

    from sparq.fpga.driver import Device

    with Device("/dev/ttyUSB1") as board:          # iCEBreaker: the second FTDI port; ULX3S: /dev/ttyUSB0
        print(board.hello())                        # Info(version=1, n_counters=4)
        outputs, counters = board.run_job(input_words, n_outputs=10)

Every method runs a transaction or sequence of :mod:`sparq.formats.uart` with :func:`sparq.formats.uart.drive`; the
cocotb link :class:`sparq.sim.uart.bfm.UARTLink` runs the very same ones in simulation, so what the board-top tests
verify is what this driver sends.
"""

import math
import time

from sparq.formats import uart as protocol

__all__ = ["Device", "DEFAULT_BAUD", "EIE_IMAGE_PARTS", "protocol_parts", "to_protocol_words", "from_protocol_words",
           "systolic_job", "eie_job", "eie_load", "eie_spmat_load", "eie_counters"]

DEFAULT_BAUD = 115_200
EIE_IMAGE_PARTS = 4
"""Protocol words per EIE load-port word in the image space of an EIE board (:class:`sparq.fpga.top.EieHost`)."""


def protocol_parts(lanes: int) -> int:
    """32-bit protocol words per host word of ``lanes`` int8 lanes on a systolic board (a power of two)."""
    return 1 << math.ceil(math.log2(math.ceil(lanes / 4)))


def to_protocol_words(host_words, lanes: int) -> list[int]:
    """Host-port integers (``sparq.formats.systolic.words_to_ints``) as 32-bit protocol words, low part first."""
    parts = protocol_parts(lanes)
    return [(word >> (32 * j)) & 0xFFFFFFFF for word in host_words for j in range(parts)]


def from_protocol_words(words, lanes: int) -> list[int]:
    """Inverse of :func:`to_protocol_words`, truncated to ``lanes`` bytes per host word."""
    parts = protocol_parts(lanes)
    mask = (1 << (8 * lanes)) - 1
    return [sum(words[i + j] << (32 * j) for j in range(parts)) & mask for i in range(0, len(words), parts)]


def systolic_job(program, x):
    """A :mod:`sparq.formats.uart` sequence running ``program`` (the one baked into the board) on the int8 matrix
    ``x``: returns ``(outputs, counters)``, the int8 output words of the run (``sparq.formats.systolic`` layout) and
    the counters ``sparq.formats.systolic.COUNTERS`` (``cycles``, ``mac_busy``, ``stall_cycles``,
    ``active_cycles``). Raises :class:`sparq.formats.uart.DeviceError` if the accelerator stops on an error
    (STATUS bit ``error``: an instruction it does not execute)."""
    from sparq.formats.systolic import COUNTERS, ints_to_words, pack_matrix, words_to_ints
    lanes = program.config.lanes
    inputs = to_protocol_words(words_to_ints(pack_matrix(x, lanes)), lanes)
    words, counters = yield from protocol.run_job(inputs, program.output_words * protocol_parts(lanes),
                                                  n_counters=len(COUNTERS))
    return ints_to_words(from_protocol_words(words, lanes), lanes), dict(zip(COUNTERS, counters))


def eie_counters(values, n_pe: int) -> dict:
    """An EIE board's COUNTERS as a dict: ``sparq.formats.eie.COUNTERS`` (``cycles``, ``compute_cycles``) and, if the
    board has them (``2 + 3 * n_pe`` counters), the per-PE lists of ``sparq.formats.eie.PE_COUNTERS``
    (``busy_cycles``, ``starve_cycles``, ``stall_cycles``)."""
    from sparq.formats.eie import COUNTERS, PE_COUNTERS
    result = dict(zip(COUNTERS, values))
    per_pe = values[len(COUNTERS):]
    if len(per_pe) == len(PE_COUNTERS) * n_pe:
        for k, name in enumerate(PE_COUNTERS):
            result[name] = list(per_pe[k * n_pe:(k + 1) * n_pe])
    return result


def eie_job(image, x):
    """A :mod:`sparq.formats.uart` sequence running ``image`` (a ``sparq.formats.eie.EieImage``, the one on the EIE
    board) on the input vector ``x`` (``image.input_len`` Q8.8 integers): returns ``(outputs, counters)``, the network's
    output as an ``np.int16`` array and :func:`eie_counters` (their number is asked with HELLO)."""
    import numpy as np
    x = np.asarray(x)
    if x.shape != (image.input_len,) or not np.issubdtype(x.dtype, np.integer) or \
            x.size and (x.min() < -(1 << 15) or x.max() >= 1 << 15):
        raise ValueError(f"the input must be {image.input_len} int16 values (Q8.8), got {x.dtype} of shape {x.shape}")
    info = yield protocol.hello()
    inputs = [int(v) & 0xFFFF for v in x]
    words, values = yield from protocol.run_job(inputs, image.output_len, n_counters=info.n_counters)
    outputs = np.asarray(words, dtype=np.uint32).astype(np.uint16).view(np.int16)  # sign-extended: low half
    return outputs, eie_counters(values, image.config.n_pe)


def eie_load(load_words, *, chunk: int = 256):
    """A :mod:`sparq.formats.uart` sequence writing EIE load-port words (``sparq.formats.eie.load_word``; a whole
    image: ``sparq.formats.eie.image_words(image)``) into an EIE board's image space, :data:`EIE_IMAGE_PARTS`
    protocol words each, low part first. Only an address's low bits count on the board, so every chunk goes to
    address 0 and an image of any size fits."""
    if chunk % EIE_IMAGE_PARTS:
        raise ValueError(f"chunk must be a multiple of {EIE_IMAGE_PARTS}, not {chunk}")
    words = to_protocol_words(load_words, 4 * EIE_IMAGE_PARTS)  # as host words of 4 * parts bytes
    for offset in range(0, len(words), chunk):
        yield protocol.write(protocol.SPACE_IMAGE, 0, words[offset:offset + chunk])


def eie_spmat_load(image):
    """The sequence an EIE board built with ``spram=True`` (``sparq synth --design eie-board -p spram=True``) needs
    once after power-up, before its first run: every PE's sparse-matrix words through the image space
    (:func:`eie_load`). The iCE40 SPRAM that holds them has no bitstream initialisation; every other memory of the
    image is baked in. Digits MLP on 4 PEs: 484 words, about 0.7 s at 115200 baud."""
    from sparq.formats.eie import spmat_words
    yield from eie_load([word for k in range(image.config.n_pe) for word in spmat_words(image, k)])


class Device:
    """A sparq board on a serial port.

    Parameters
    ----------
    port : str or serial.Serial
        A port name (``/dev/ttyUSB1``, ``COM4``) to open, or an already open ``serial.Serial`` (or anything with its
        ``read``, ``write``, ``reset_input_buffer`` and ``close`` methods).
    baud : int
        Must match the board top's divisor (``clock_hz // baud``); sparq's board tops use :data:`DEFAULT_BAUD`.
    timeout : float
        Seconds to wait for each reply before :class:`sparq.formats.uart.ProtocolError`.
    """

    def __init__(self, port, *, baud: int = DEFAULT_BAUD, timeout: float = 2.0):
        if isinstance(port, str):
            import serial
            try:
                port = serial.Serial(port, baudrate=baud, timeout=timeout)
            except serial.SerialException as error:
                raise RuntimeError(f"cannot open serial port {port!r}: {error}; check the board is plugged in and "
                                   f"the port name (ls /dev/ttyUSB*)") from None
        self.serial = port
        self.n_counters = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self.serial.close()

    def _transact(self, request: bytes, reply_length: int) -> bytes:
        self.serial.write(request)
        return self.serial.read(reply_length)

    def run(self, operation):
        """Run any transaction or sequence of :mod:`sparq.formats.uart`; return its value."""
        return protocol.drive(operation, self._transact)

    def resync(self, *, silence: float = 0.5) -> protocol.Info:
        """Recover from a link that is out of step: stay silent for longer than the board's command timeout, drop
        whatever arrived, and say HELLO."""
        time.sleep(silence)
        self.serial.reset_input_buffer()
        return self.hello()

    def hello(self) -> protocol.Info:
        info = self.run(protocol.hello())
        self.n_counters = info.n_counters
        return info

    def write(self, space: int, addr: int, words) -> None:
        self.run(protocol.write_words(space, addr, words))

    def read(self, space: int, addr: int, count: int) -> list[int]:
        return self.run(protocol.read_words(space, addr, count))

    def load_image(self, words) -> None:
        """Replace the model image (a WRITE to :data:`sparq.formats.uart.SPACE_IMAGE` from address 0)."""
        self.write(protocol.SPACE_IMAGE, 0, words)

    def start(self) -> None:
        self.run(protocol.start())

    def status(self) -> protocol.Status:
        return self.run(protocol.status())

    def counters(self) -> list[int]:
        if self.n_counters is None:
            self.hello()
        return self.run(protocol.counters(self.n_counters))

    def run_job(self, inputs, n_outputs: int, *, max_polls: int = 10_000):
        """Load ``inputs``, start, wait for done, and return ``(outputs, counters)``. Raises
        :class:`sparq.formats.uart.DeviceError` if the board reports that its accelerator stopped on an error
        (:meth:`status` shows the flag as ``error``)."""
        if self.n_counters is None:
            self.hello()
        return self.run(protocol.run_job(inputs, n_outputs, n_counters=self.n_counters, max_polls=max_polls))

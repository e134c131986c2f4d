"""Job scripts for the native driver, and the process that runs them.

A :class:`Job` is a list of operations on the design (seed the random numbers, reset, set a port, tick, run stream
agents until they are done, wait for a port, snapshot ports), built in Python and sent to the driver in one piece;
:meth:`NativeProcess.run` returns everything the job produced in one :class:`Reply`.

Why a subprocess with binary messages over pipes, and not ctypes: the Verilated model runs in its own process, so a
failure inside it (a Verilator fatal error, a crash, a hang that has to be killed) ends that process and is reported
as a clear error, never taking the Python caller or a pytest worker with it; builds of many designs coexist without
symbol clashes between their models and their copies of Verilator's runtime; and waveforms are closed cleanly when
the process ends. What crosses the pipe is small next to the simulation (a 64-PE image is 8 MB of words), and one
process serves every job of a call, so the model keeps its state from job to job as a cocotb simulation does.

Wire format (little-endian 32-bit words; ``driver.cpp`` is the other side)
-------------------------------------------------------------------------
Job: ``MAGIC, n`` then ``n`` words of operations, each an opcode and its arguments (64-bit numbers as two words, low
first; probabilities as the 64 bits of a double)::

    SEED n key[n]                    random.Random(seed): init_by_array(key), key = abs(seed) in 32-bit words
    RESET cycles                     rst high for ``cycles`` cycles (sparq.sim.bench.Bench.reset)
    SET port value[words(port)]      drive an input port
    TICK cycles64                    idle cycles
    RUN n until stop max64 agent[n]  Bench.run of StreamSource / StreamSink agents: until every agent marked
                                     waited-for is done and port ``until`` is high, or port ``stop`` is high
                                     (0xffffffff: no such port); data: each sink's items, then per agent the
                                     count of items it sent or received (64 bits)
        agent: kind(0 source, 1 sink) stream count64 probability64 waited_for [items: count * words]
    WAIT port poll max64             while not port: tick ``poll`` cycles (error after ``max`` cycles)
    SNAPSHOT n port[n]               the ports' current values, into the reply's data

Reply: ``MAGIC, status, x``. Status 0: ``x`` data words (each sink's items, then snapshots, in operation order),
``m``, then ``m`` 64-bit timing numbers (cycles and nanoseconds of each operation), then per stream of the design
three 64-bit counts since the process started: transfers, cycles stalled (valid without ready) and cycles starved
(ready without valid). Status 1: ``x`` is the index of the failed operation, then a byte count and the message; the
process then exits.
"""

import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .build import NativeBuild

__all__ = ["Source", "Sink", "Job", "Reply", "NativeProcess", "NativeFailure", "NativeCrash", "Snapshot", "Items",
           "to_words", "from_words", "waveform_path"]

MAGIC = 0x31515053
SEED, RESET, SET, TICK, RUN, WAIT, SNAPSHOT = range(1, 8)
_NO_PORT = 0xFFFFFFFF


class NativeFailure(AssertionError):
    """A job failed inside the driver: a stream rule broken, a timeout, an unexpected item. The message names the
    operation (``label``), the port, the cycle and the rule."""


class NativeCrash(NativeFailure):
    """The driver process stopped or garbled its reply: the simulator failed, not the design (the message ends with
    the process's last words)."""


def to_words(values, width: int, signed: bool = False) -> np.ndarray:
    """``values`` (ints or an integer array) as raw ``width``-bit port values, an ``(n, words)`` uint32 array.

    Raises :class:`ValueError` for a value that does not fit, like :meth:`sparq.sim.bench.PortInfo.to_raw`.
    """
    words = max(1, -(-width // 32))
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu" and width <= 63:
        array = values.astype(np.int64).ravel()
        bad = (array < lo) | (array > hi)
        if bad.any():
            raise ValueError(f"value {int(array[bad][0])} does not fit a {'signed' if signed else 'unsigned'} "
                             f"{width}-bit port")
        raw = (array & ((1 << width) - 1)).astype(np.uint64)
        out = np.empty((len(raw), words), dtype=np.uint32)
        out[:, 0] = raw & 0xFFFFFFFF
        if words > 1:
            out[:, 1] = raw >> np.uint64(32)
        return out
    values = [int(v) for v in values]
    for value in values:
        if not lo <= value <= hi:
            raise ValueError(f"value {value} does not fit a {'signed' if signed else 'unsigned'} {width}-bit port")
    mask, size = (1 << width) - 1, 4 * words
    raw = b"".join((v & mask).to_bytes(size, "little") for v in values)
    return np.frombuffer(raw, dtype="<u4").reshape(len(values), words).copy()


def from_words(words: np.ndarray, width: int, signed: bool = False):
    """The inverse of :func:`to_words`: an int64 array for ports up to 63 bits, else a list of Python ints."""
    words = np.asarray(words, dtype=np.uint32)
    if width <= 63:
        raw = words[:, 0].astype(np.int64)
        if words.shape[1] > 1:
            raw |= words[:, 1].astype(np.int64) << 32
        if signed:
            raw = np.where(raw >> (width - 1) & 1, raw - (1 << width), raw)
        return raw
    values = [int.from_bytes(row.tobytes(), "little") for row in words]
    return [v - (1 << width) if signed and v >> (width - 1) else v for v in values]


@dataclass
class Source:
    """``sparq.sim.bench.StreamSource``: ``items`` into stream port ``stream`` with valid gaps."""
    stream: str
    items: object  # ints, an integer array, or an (n, words) uint32 array from to_words
    gap_probability: float = 0.0
    waited_for: bool = True


@dataclass
class Sink:
    """``sparq.sim.bench.StreamSink``: ``count`` payloads from stream port ``stream`` with back-pressure."""
    stream: str
    count: int
    stall_probability: float = 0.0
    waited_for: bool = True


@dataclass
class _Op:
    label: str
    outputs: list = field(default_factory=list)  # (key, ports or stream, count) of the data this op produces


class Snapshot:
    """The port values a SNAPSHOT returned, read like a bench: ``get(name)`` with the port's signedness, and
    ``ports`` (so functions written for a :class:`sparq.sim.bench.Bench`, such as
    :func:`sparq.sim.tb.eie.counters`, read it unchanged)."""

    def __init__(self, values: dict):
        self._values = values
        self.ports = dict.fromkeys(values)

    def get(self, name: str):
        return self._values[name]


class Job:
    """A job script for one :class:`NativeBuild`; each method appends an operation (``label`` names it in errors)."""

    def __init__(self, build: NativeBuild):
        self.build = build
        self._chunks, self._ops = [], []

    def _op(self, label, *words, data=None):
        self._chunks.append(np.array(words, dtype=np.uint64).astype(np.uint32) if data is None else
                            np.concatenate([np.array(words, dtype=np.uint32), data.ravel()]))
        op = _Op(label)
        self._ops.append(op)
        return op

    @staticmethod
    def _u64(value):
        value = int(value)
        return value & 0xFFFFFFFF, value >> 32

    def seed(self, seed: int, label="seed"):
        """``random.Random(seed)`` for the agents of the operations that follow."""
        n = abs(int(seed))
        key = [(n >> (32 * i)) & 0xFFFFFFFF for i in range(max(1, -(-n.bit_length() // 32)))]
        self._op(label, SEED, len(key), *key)

    def reset(self, cycles: int = 2, label="reset"):
        self._op(label, RESET, cycles)

    def set(self, port: str, value: int, label=None):
        index = self.build.port(port)
        info = self.build.ports[index]
        if not info.input:
            raise ValueError(f"port {port} is an output of the design")
        self._op(label or f"set {port}", SET, index, data=to_words([value], info.width, info.signed))

    def tick(self, cycles: int, label="tick"):
        self._op(label, TICK, *self._u64(cycles))

    def wait(self, port: str, *, poll: int, max_cycles: int, label=None):
        """Until ``port`` is high, checked every ``poll`` cycles (``sim.tb.eie``'s ``_wait_done``)."""
        self._op(label or f"wait for {port}", WAIT, self.build.port(port), poll, *self._u64(max_cycles))

    def run(self, agents, *, max_cycles: int, until: str | None = None, stop: str | None = None, label="run"):
        """``Bench.run(agents, until=..., max_cycles=...)``: until every agent with ``waited_for`` is done and port
        ``until`` (if any) is high, or port ``stop`` (if any) is high. Returns the keys, in the reply's data, of the
        sinks' items and then of the list of the agents' counts of items sent or received."""
        ports = [_NO_PORT if p is None else self.build.port(p) for p in (until, stop)]
        words, keys, outputs = [RUN, len(agents), *ports, *self._u64(max_cycles)], [], []
        chunks = []
        for agent in agents:
            index = self.build.stream(agent.stream)
            stream = self.build.streams[index]
            source = isinstance(agent, Source)
            if source != stream.driven:
                raise ValueError(f"{agent.stream} is {'an input' if stream.driven else 'an output'} of the design; "
                                 f"it takes a {'Source' if stream.driven else 'Sink'}")
            payload = None if stream.payload is None else self.build.ports[stream.payload]
            probability = agent.gap_probability if source else agent.stall_probability
            if source:
                items = agent.items
                if payload is None:
                    count, items = len(items), np.zeros((len(items), 0), dtype=np.uint32)
                elif not (isinstance(items, np.ndarray) and items.dtype == np.uint32 and items.ndim == 2):
                    items = to_words(items, payload.width, payload.signed)
                count = len(items)
            else:
                count = agent.count
                key = (len(self._ops), len(outputs))
                outputs.append((key, "items", agent.stream, count))
                keys.append(key)
            head = [int(not source), index, *self._u64(count),
                    *struct.unpack("<2I", struct.pack("<d", probability)), int(agent.waited_for)]
            chunks.append(np.array(head, dtype=np.uint32))
            if source:
                chunks.append(np.ascontiguousarray(items, dtype=np.uint32).ravel())
        self._chunks.append(np.concatenate([np.array(words, dtype=np.uint32), *chunks]))
        key = (len(self._ops), len(outputs))
        outputs.append((key, "counts", None, len(agents)))
        keys.append(key)
        self._ops.append(_Op(label, outputs))
        return keys

    def snapshot(self, ports, label="snapshot"):
        """The values of ``ports`` now; returns the key of the :class:`Snapshot` in the reply."""
        indices = [self.build.port(p) for p in ports]
        key = (len(self._ops), 0)
        self._op(label, SNAPSHOT, len(indices), *indices).outputs.append((key, "snapshot", tuple(ports), None))
        return key

    def encode(self) -> bytes:
        body = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.uint32)
        return np.array([MAGIC, len(body)], dtype="<u4").tobytes() + body.astype("<u4").tobytes()


@dataclass
class Reply:
    """What a job produced: ``data[key]`` for the keys :meth:`Job.run` and :meth:`Job.snapshot` returned (a sink's
    :class:`Items`, a run's list of items sent or received per agent, a :class:`Snapshot`), per operation ``(label,
    cycles, seconds)``, and per stream port ``{"transfers", "stalled", "starved"}`` counted over this job."""
    data: dict
    timings: list
    streams: dict

    def seconds(self, prefix: str) -> float:
        """Wall time of the operations whose label starts with ``prefix``."""
        return sum(s for label, _, s in self.timings if label.startswith(prefix))

    def cycles(self, prefix: str) -> int:
        """Cycles of the operations whose label starts with ``prefix``."""
        return sum(c for label, c, _ in self.timings if label.startswith(prefix))


class NativeProcess:
    """The driver of ``build`` in a process of its own, serving :class:`Job` after :class:`Job` (a context
    manager). ``fst``: write a waveform there (a build with ``waves``). ``coverage``: after each job that succeeds,
    the driver writes that job's coverage counts there, in Verilator's ``coverage.dat`` format (a build with
    ``coverage``; read them with :func:`sparq.sim.coverage.read_counts`)."""

    def __init__(self, build: NativeBuild, *, fst: Path | None = None, coverage: Path | None = None,
                 name: str | None = None):
        if coverage is not None and not build.coverage:
            raise ValueError(f"{build.directory.name} was not built with coverage=True")
        self.build, self.name, self.coverage = build, name or build.directory.name, coverage
        self._stderr = tempfile.TemporaryFile()
        command = [str(build.executable), *(["--fst", str(fst)] if fst else []),
                   *(["--coverage", str(coverage)] if coverage else [])]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        self._streams = np.zeros((len(build.streams), 3), dtype=np.uint64)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._process.poll() is None:
            try:
                self._process.stdin.close()
                self._process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        self._stderr.close()

    def _read(self, count: int, what: str) -> bytes:
        data = self._process.stdout.read(count)
        if len(data) != count:
            self._process.wait()
            self._stderr.seek(0)
            tail = self._stderr.read().decode(errors="replace").splitlines()[-20:]
            raise NativeCrash(f"{self.name}: the native model stopped (exit code {self._process.returncode}) "
                                f"while sending {what}" + (":\n" + "\n".join(tail) if tail else ""))
        return data

    def _words(self, count: int, what: str, dtype="<u4") -> np.ndarray:
        size = np.dtype(dtype).itemsize
        return np.frombuffer(self._read(size * count, what), dtype=dtype)

    def run(self, job: Job) -> Reply:
        """Send ``job``, wait for its reply; raise :class:`NativeFailure` with the driver's message if it failed."""
        if self._process.poll() is not None:
            raise NativeCrash(f"{self.name}: the native model is no longer running")
        try:
            self._process.stdin.write(job.encode())
            self._process.stdin.flush()
        except BrokenPipeError:
            self._read(1, "its reply")  # raises with the process's last words
        magic, status, x = self._words(3, "its reply")
        if magic != MAGIC:
            raise NativeCrash(f"{self.name}: garbled reply from the native model")
        if status:
            (length,) = self._words(1, "the failure")
            message = self._read(int(length), "the failure").decode(errors="replace")
            label = job._ops[x].label if x < len(job._ops) else "?"
            self._process.wait()
            raise NativeFailure(f"{label}: {message}")
        data = self._words(int(x), "the data")
        (n_timing,) = self._words(1, "the timings")
        timing = self._words(int(n_timing), "the timings", "<u8").reshape(-1, 2)
        streams = self._words(3 * len(self.build.streams), "the stream counts", "<u8").reshape(-1, 3)
        delta, self._streams = streams - self._streams, streams.copy()
        return Reply(self._parse(job, data), [(op.label, int(c), int(ns) * 1e-9)
                                               for op, (c, ns) in zip(job._ops, timing)],
                     {s.name: dict(zip(("transfers", "stalled", "starved"), map(int, row)))
                      for s, row in zip(self.build.streams, delta)})

    def _parse(self, job: Job, data: np.ndarray) -> dict:
        out, at = {}, 0
        ports = self.build.ports
        for op in job._ops:
            for key, kind, what, count in op.outputs:
                if kind == "counts":  # each agent's items done, 64 bits
                    out[key] = [int(lo) | int(hi) << 32 for lo, hi in data[at:at + 2 * count].reshape(-1, 2)]
                    at += 2 * count
                elif kind == "snapshot":
                    values = {}
                    for name in what:
                        port = ports[self.build.port(name)]
                        values[name] = int(from_words(data[at:at + port.words].reshape(1, -1), port.width,
                                                      port.signed)[0])
                        at += port.words
                    out[key] = Snapshot(values)
                else:
                    stream = self.build.streams[self.build.stream(what)]
                    port = ports[stream.payload] if stream.payload is not None else None
                    words = port.words if port else 0
                    out[key] = Items(data[at:at + count * words].reshape(count, words), port)
                    at += count * words
        return out


class Items:
    """A sink's items: ``raw``, an ``(n, words)`` uint32 array of the payloads; :meth:`values`, the port's
    integers."""

    def __init__(self, raw: np.ndarray, port):
        self.raw, self._port = raw, port

    def values(self):
        """An int64 array (ports up to 63 bits) or a list of ints, with the port's signedness."""
        if self._port is None:
            return np.zeros(len(self.raw), dtype=np.int64)
        return from_words(self.raw, self._port.width, self._port.signed)

    def __len__(self):
        return len(self.raw)


def waveform_path(build: NativeBuild) -> Path:
    """A fresh ``dump.fst`` path in the build's ``runs`` folder (printed to stderr, like the cocotb harness)."""
    runs = build.directory / "runs"
    runs.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="run-", dir=runs)) / "dump.fst"
    print(f"waveform: {path}", file=sys.stderr)
    return path


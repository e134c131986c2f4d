"""Prove a property wrapper with SymbiYosys: ``rtlil.convert`` -> ``yowasp-sby`` -> ``smtbmc boolector``.

A property wrapper is an Amaranth ``Elaboratable`` (usually a :class:`Property`) that instantiates a block, drives
its inputs (free values from ``AnySeq``/``AnyConst``, constrained by ``Assume``) and states what the block
guarantees with ``Assert`` (and what must be reachable with ``Cover``). Each ``Assert``/``Cover`` carries a message:
that message is how a failure names the property.

* :func:`prove` runs ``mode prove`` (k-induction of the given length: a pass is a proof for every reachable state
  and every number of cycles) or ``mode bmc`` (bounded model checking: no violation within the given number of
  cycles from reset). On a counterexample it raises :class:`ProofFailed` naming the violated assertions and the VCD
  trace SymbiYosys wrote; when the induction step fails but the base case holds (the property may be true but is not
  k-inductive at that length) it raises :class:`ProofInconclusive`, a :class:`ProofFailed` whose trace is the
  induction step's.
* :func:`cover` runs ``mode cover``: every ``Cover`` must be reached within the depth (a check that the
  environment's ``Assume``\\ s leave the interesting behaviour possible), else :class:`ProofFailed` names the
  unreached ones.

Runs happen in a fresh folder under ``cache_root()/formal``, removed after a pass and kept after a failure, so that
the trace stays where the error says; concurrent runs (pytest-xdist) never share a folder.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth import Elaboratable
from amaranth.back import rtlil

from ..toolchain import cache_root
from .toolchain import formal_path, sby_command, warm

__all__ = ["Property", "ProofResult", "ProofFailed", "ProofInconclusive", "ProofError", "prove", "cover"]

MODES = ("prove", "bmc")


class Property(Elaboratable):
    """Base class of the property wrappers: ``mode`` (``"prove"`` or ``"bmc"``) and ``depth`` say how
    :func:`prove` checks it by default (the k-induction length, or the BMC bound in cycles); ``name`` names its
    runs and its failures. Subclasses set them in ``__init__`` and state them in their docstring."""

    mode = "prove"
    depth = 20

    @property
    def name(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class ProofResult:
    """A passed check: ``mode`` and ``depth`` as run, and the wall-clock ``seconds`` it took."""
    name: str
    mode: str
    depth: int
    seconds: float

    @property
    def verdict(self) -> str:
        """``"proved"`` (k-induction), ``"bounded to depth D"`` (BMC) or ``"all covered within depth D"``."""
        if self.mode == "prove":
            return "proved"
        if self.mode == "bmc":
            return f"bounded to depth {self.depth}"
        return f"all covered within depth {self.depth}"


class ProofFailed(Exception):
    """A property does not hold: ``failed`` lists the messages of the violated (or, for :func:`cover`, unreached)
    statements, ``trace`` is the counterexample VCD (None for unreached covers), ``workdir`` the kept run folder."""

    def __init__(self, name: str, mode: str, depth: int, failed: list[str], trace: Path | None, workdir: Path):
        self.name, self.mode, self.depth, self.failed, self.trace, self.workdir = name, mode, depth, failed, trace, workdir
        super().__init__(self._describe())

    def _describe(self) -> str:
        what = "; ".join(self.failed) or "(no statement named)"
        where = f"counterexample trace: {self.trace}" if self.trace else f"run folder: {self.workdir}"
        return f"{self.name} ({self.mode}, depth {self.depth}) fails: {what}; {where}"


class ProofInconclusive(ProofFailed):
    """The base case holds to ``depth`` but the induction step does not: the trace shows an unreachable-or-not
    state from which the listed assertions fail. Strengthen the property or raise the depth, or check it by BMC."""

    def _describe(self) -> str:
        return (f"{self.name} is not {self.depth}-inductive: the induction step fails "
                f"{'; '.join(self.failed) or '(no statement named)'} (the base case holds); "
                f"induction trace: {self.trace}")


class ProofError(RuntimeError):
    """SymbiYosys did not produce a verdict (a tool error or a timeout); the message quotes its log."""


def prove(wrapper: Elaboratable, *, mode: str | None = None, depth: int | None = None, name: str | None = None,
          timeout: int | None = None) -> ProofResult:
    """Check every ``Assert`` of ``wrapper`` by k-induction (``mode="prove"``) or BMC (``mode="bmc"``) of
    ``depth`` cycles; ``mode``, ``depth`` and ``name`` default to the wrapper's attributes (see :class:`Property`).

    Returns a :class:`ProofResult`; raises :class:`ProofFailed` (a counterexample), :class:`ProofInconclusive`
    (not inductive at this depth) or :class:`ProofError`. ``timeout`` (seconds) is passed to SymbiYosys.
    """
    mode = mode or getattr(wrapper, "mode", "prove")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}; use cover() for Cover statements")
    return _run(wrapper, mode, depth, name, timeout)


def cover(wrapper: Elaboratable, *, depth: int | None = None, name: str | None = None,
          timeout: int | None = None) -> ProofResult:
    """Check that every ``Cover`` of ``wrapper`` is reachable within ``depth`` cycles (under its ``Assume``\\ s)."""
    return _run(wrapper, "cover", depth, name, timeout)


def _run(wrapper, mode, depth, name, timeout) -> ProofResult:
    depth = depth if depth is not None else getattr(wrapper, "depth", None)
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive number of cycles, not {depth!r}")
    name = name or getattr(wrapper, "name", None) or type(wrapper).__name__
    # platform "formal": amaranth.lib.fifo then adds its own invariants (pointers against level), which BMC takes
    # as lemmas and k-induction needs.
    design = rtlil.convert(wrapper, name="top", platform="formal", ports=[])
    messages = _check_messages(design)

    warm()
    root = cache_root() / "formal"
    root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"{_slug(name)}-{mode}-", dir=root))
    (workdir / "design.il").write_text(design)
    (workdir / "proof.sby").write_text(_sby_file(mode, depth, timeout))
    start = time.monotonic()
    done = subprocess.run([*sby_command(), "-f", "-d", "run", "proof.sby"], cwd=workdir, capture_output=True,
                          text=True, env=_env())
    seconds = time.monotonic() - start
    log = done.stdout + done.stderr
    (workdir / "sby.log").write_text(log)

    verdict = re.search(r"DONE \((\w+), rc=\d+\)", log)
    verdict = verdict.group(1) if verdict else "ERROR"
    if verdict == "PASS":
        shutil.rmtree(workdir, ignore_errors=True)
        return ProofResult(name, mode, depth, round(seconds, 1))
    if mode == "cover" and verdict == "FAIL":
        raise ProofFailed(name, mode, depth, _unreached(log, messages), None, workdir)
    traces = _traces(log, workdir, messages)
    if verdict == "FAIL" and "basecase" in traces:
        raise ProofFailed(name, mode, depth, traces["basecase"][1], traces["basecase"][0], workdir)
    if verdict == "UNKNOWN" and mode == "prove" and "induction" in traces:
        raise ProofInconclusive(name, mode, depth, traces["induction"][1], traces["induction"][0], workdir)
    if "Assumptions are unsatisfiable" in log:
        raise ProofError(f"{name}: the assumptions contradict each other (no behaviour is left to check); "
                         f"log {workdir / 'sby.log'}")
    tail = "\n".join(line for line in log.splitlines() if "summary" in line or "ERROR" in line or "error" in line)
    raise ProofError(f"{name}: SymbiYosys gave no verdict ({verdict}); log {workdir / 'sby.log'}:\n"
                     f"{tail or log[-2000:]}")


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = formal_path()
    return env


def _sby_file(mode: str, depth: int, timeout: int | None) -> str:
    options = [f"mode {mode}", f"depth {depth}"] + ([f"timeout {timeout}"] if timeout else [])
    return "\n".join([
        "[options]", *options, "",
        "[engines]", "smtbmc boolector", "",
        "[script]", "read_rtlil design.il", "prep -flatten -top top", "",
        "[files]", "design.il", "",
    ])


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", name)[:60]


def _check_messages(design: str) -> dict[str, str]:
    """``{"check_N": message}`` for the ``$check`` cells (Assert/Assume/Cover) of the top module."""
    top = design[design.index("module \\top\n"):]
    top = top[:top.index("\nend\n")]
    cells = re.finditer(r'attribute \\src "([^"]*)"\n\s*cell \$check \$(\d+)\n\s*parameter \\FORMAT "((?:[^"\\]|\\.)*)"',
                        top)
    return {f"check_{cell[2]}": (cell[3].replace("{{", "{").replace("}}", "}") or cell[1]) for cell in cells}


def _statement(name: str, src: str, messages: dict[str, str]) -> str:
    """The message of statement ``name`` (``top._witness_.check_N``) if it is one of the top module's, else its
    hierarchical name and source location (an assertion inside a block, such as ``amaranth.lib.fifo``'s own)."""
    top = re.fullmatch(r"top\._witness_\.(check_\d+)", name)
    return messages[top[1]] if top and top[1] in messages else f"{name} ({src})"


def _unreached(log: str, messages: dict[str, str]) -> list[str]:
    """The messages of the covers the summary lists as unreached."""
    after = log.split("unreached cover statements:", 1)
    found = re.findall(r"summary:\s+(\S+) at (\S+)", after[1]) if len(after) > 1 else []
    return list(dict.fromkeys(_statement(name, src, messages) for name, src in found))


def _traces(log: str, workdir: Path, messages: dict[str, str]) -> dict[str, tuple[Path, list[str]]]:
    """``{kind: (vcd, failed assertion messages)}`` from the summary, ``kind`` being ``"basecase"`` (BMC, or the
    base case of k-induction: a counterexample from reset) or ``"induction"`` (the induction step)."""
    traces, current = {}, None
    for line in log.splitlines():
        trace = re.search(r"summary: counterexample trace(?: \[(\w+)\])?: (\S+)", line)
        if trace:
            current = "induction" if trace[1] == "induction" else "basecase"
            traces[current] = ((workdir / trace[2]).resolve(), [])
            continue
        failed = re.search(r"summary:\s+failed assertion (\S+) at (\S+)", line)
        if failed and current:
            message = _statement(failed[1], failed[2], messages)
            if message not in traces[current][1]:
                traces[current][1].append(message)
    return traces

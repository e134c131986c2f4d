"""Read what Yosys and nextpnr say about a build into one report: resources, clocks, critical paths, mapping checks.

Sources, all in the build directory that :func:`sparq.fpga.build.synthesize` fills:

* ``top.il`` (Amaranth's RTLIL): the design's memories (name, width, depth) and multipliers (operand widths), before
  any tool touched them;
* ``top.rpt`` (the Yosys log): which primitive each memory went to (``mapping memory X via $__ICE40_RAM4K_``) or
  whether it fell to flip-flops (``using FF mapping for memory X``);
* ``top.json`` (the Yosys netlist): cell counts by type (LUTs, flip-flops, carries, block RAMs, DSPs);
* ``report.json`` (``nextpnr --report``): placed utilisation against the device's capacity, the achieved and the
  constrained frequency of every clock, and the critical path of every clock pair; ``top.tim`` (the nextpnr log)
  stands in when a build fails before the report is written.

:func:`check_memories` (and :meth:`SynthesisReport.check`) raise :class:`MemoryInLogic` when a memory that belongs
in block RAM (:func:`belongs_in_block_ram`) was built from flip-flops or LUT RAM, and :attr:`SynthesisReport.warnings`
says when multipliers were left in logic although the device has DSP blocks.
"""

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["Usage", "ClockTiming", "CriticalPath", "MemoryMapping", "SynthesisReport", "MemoryInLogic",
           "LOGIC_MEMORY_LIMIT_BITS", "LOGIC_MEMORY_MAX_DEPTH", "LUT_RAM_LIMIT_BITS", "belongs_in_block_ram",
           "memory_mappings",
           "check_memories", "parse_build", "parse_utilisation_log", "print_reports"]

#: Memories of fewer bits than this may live in flip-flops: 1 Kbit is a quarter of an iCE40 SB_RAM40_4K.
LOGIC_MEMORY_LIMIT_BITS = 1024
#: Memories this shallow may too, however wide: a 16-entry, 128-bit queue in flip-flops costs less than the eight
#: iCE40 block RAMs (one per 16 bits of width) it would take.
LOGIC_MEMORY_MAX_DEPTH = 64
#: LUT RAM (ECP5) is Yosys's own cost-based choice for small memories, the FPGA form of a register file; up to this
#: many bits (a quarter of a DP16KD, 64 LUT-RAM slices) it is accepted. A larger memory in LUT RAM is one Yosys
#: could not put in block RAM (an asynchronous read port, say).
LUT_RAM_LIMIT_BITS = 4096

# Per family: the Yosys memory-mapping targets and what they are, and the nextpnr utilisation names of each resource.
_MEMORY_TARGETS = {
    "$__ICE40_RAM4K_": "SB_RAM40_4K",
    "$__ICE40_SPRAM_": "SB_SPRAM256KA",
    "$__DP16KD_": "DP16KD",
    "$__PDPW16KD_": "DP16KD",
    "$__TRELLIS_DPR16X4_": "LUT RAM",
}
_BLOCK_MEMORIES = {"SB_RAM40_4K", "SB_SPRAM256KA", "DP16KD"}
_NEXTPNR_RESOURCES = {
    "ice40": {"LC": "ICESTORM_LC", "BRAM": "ICESTORM_RAM", "SPRAM": "ICESTORM_SPRAM", "DSP": "ICESTORM_DSP",
              "IO": "SB_IO", "PLL": "ICESTORM_PLL"},
    "ecp5": {"LUT": "TRELLIS_COMB", "FF": "TRELLIS_FF", "LUTRAM": "TRELLIS_RAMW", "BRAM": "DP16KD",
             "DSP": "MULT18X18D", "ALU54": "ALU54B", "IO": "TRELLIS_IO", "PLL": "EHXPLLL"},
}
# Resources counted from the Yosys netlist where nextpnr does not report them on their own.
_NETLIST_RESOURCES = {
    "ice40": {"LUT": ("SB_LUT4",), "FF": ("SB_DFF",), "CARRY": ("SB_CARRY",)},
    "ecp5": {"CARRY": ("CCU2C",)},
}
_CAPACITY_FROM = {"ice40": {"LUT": "LC", "FF": "LC"}, "ecp5": {}}
_TABLE_ORDER = ("LC", "LUT", "FF", "CARRY", "LUTRAM", "BRAM", "SPRAM", "DSP", "ALU54", "IO", "PLL")


class MemoryInLogic(RuntimeError):
    """A memory that belongs in block RAM was built from flip-flops or LUTs."""


@dataclass
class Usage:
    used: int
    available: int | None = None

    def __str__(self):
        if not self.available:
            return str(self.used)
        return f"{self.used} / {self.available} ({100 * self.used / self.available:.0f}%)"


@dataclass
class ClockTiming:
    name: str
    achieved_mhz: float
    constraint_mhz: float

    @property
    def met(self) -> bool:
        return self.achieved_mhz >= self.constraint_mhz


@dataclass
class CriticalPath:
    """The slowest path of one clock pair as nextpnr reports it, summarised.

    ``sources`` are the Python (or Verilog) source lines of the nets along the path, in order, without repeats: the
    place to look when pipelining.
    """
    from_clock: str
    to_clock: str
    delay_ns: float
    logic_ns: float
    routing_ns: float
    logic_levels: int
    start: str
    end: str
    sources: list[str] = field(default_factory=list)


@dataclass
class MemoryMapping:
    name: str
    width: int
    depth: int
    mapped_to: str  # "SB_RAM40_4K", "SB_SPRAM256KA", "DP16KD", "LUT RAM", "flip-flops", or "removed"

    @property
    def bits(self) -> int:
        return self.width * self.depth

    @property
    def in_logic(self) -> bool:
        return self.mapped_to in ("LUT RAM", "flip-flops")


def belongs_in_block_ram(memory: MemoryMapping) -> bool:
    """Whether ``memory``, as mapped, should have gone to block RAM: in LUT RAM, more than
    :data:`LUT_RAM_LIMIT_BITS` bits; otherwise at least :data:`LOGIC_MEMORY_LIMIT_BITS` bits and more than
    :data:`LOGIC_MEMORY_MAX_DEPTH` words."""
    if memory.mapped_to == "LUT RAM":
        return memory.bits > LUT_RAM_LIMIT_BITS
    return memory.bits >= LOGIC_MEMORY_LIMIT_BITS and memory.depth > LOGIC_MEMORY_MAX_DEPTH


def check_memories(memories, *, design: str, board: str, build_dir) -> None:
    """Raise :class:`MemoryInLogic` naming every memory that belongs in block RAM but went to logic."""
    bad = [m for m in memories if m.in_logic and belongs_in_block_ram(m)]
    if bad:
        names = "; ".join(f"{m.name} ({m.depth} x {m.width} bits) went to {m.mapped_to}" for m in bad)
        raise MemoryInLogic(
            f"{design} on {board}: memory fell into logic instead of block RAM: {names}. Give the memory a "
            f"synchronous read port (amaranth.lib.memory.Memory read_port(domain='sync')) and no more ports than the "
            f"block RAM has; see {build_dir}/top.rpt, section MEMORY_LIBMAP")


@dataclass
class SynthesisReport:
    """Everything one build measured; :meth:`to_json` and :meth:`table` are its two presentations."""
    design: str
    board: str
    device: str
    family: str
    params: dict
    dsp: bool
    resources: dict[str, Usage]
    cells: dict[str, int]
    clocks: list[ClockTiming]
    critical_paths: list[CriticalPath]
    memories: list[MemoryMapping]
    multipliers: int
    harness: dict | None
    build_dir: str
    seconds: float | None = None
    router: str | None = None    # nextpnr's router, None: its default (router1)
    pnr_seed: int | None = None  # nextpnr's placement seed, None: its default

    @property
    def fmax_mhz(self) -> float | None:
        """The lowest achieved frequency over the clocks: what the whole design runs at."""
        return min((c.achieved_mhz for c in self.clocks), default=None)

    @property
    def dsp_used(self) -> int:
        return self.resources["DSP"].used if "DSP" in self.resources else 0

    @property
    def warnings(self) -> list[str]:
        notes = []
        if self.multipliers and self.dsp_used < self.multipliers:
            reason = ("DSP inference is off (--no-dsp)" if not self.dsp else
                      "Yosys left them in logic (too narrow, or an operand is constant)")
            notes.append(f"{self.multipliers - self.dsp_used} of {self.multipliers} multipliers are built from LUTs, "
                         f"not DSP blocks: {reason}")
        small = [m for m in self.memories if m.in_logic and not belongs_in_block_ram(m)]
        if small:
            notes.append("small memories kept in logic: " + ", ".join(
                f"{m.name} ({m.depth}x{m.width}, {m.mapped_to})" for m in small))
        for c in self.clocks:
            if not c.met:
                notes.append(f"clock {c.name} misses its {c.constraint_mhz:.1f} MHz constraint "
                             f"({c.achieved_mhz:.1f} MHz achieved)")
        return notes

    def check(self) -> "SynthesisReport":
        """:func:`check_memories` on this build; returns ``self``."""
        check_memories(self.memories, design=self.design, board=self.board, build_dir=self.build_dir)
        return self

    def to_json(self) -> dict:
        data = asdict(self)
        data["resources"] = {k: asdict(v) for k, v in self.resources.items()}
        data["fmax_mhz"] = self.fmax_mhz
        data["warnings"] = self.warnings
        for memory, mapping in zip(data["memories"], self.memories):
            memory["bits"] = mapping.bits
        return data

    def write_json(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    def table(self):
        """A rich table: resources, clocks, memories, multipliers and the critical path."""
        from rich.table import Table

        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        nextpnr = "".join([f", {self.router}" if self.router else "",
                           f", placement seed {self.pnr_seed}" if self.pnr_seed is not None else ""])
        table = Table(title=f"{self.design}({params}) on {self.board} ({self.device}), "
                            f"DSP inference {'on' if self.dsp else 'off'}{nextpnr}")
        table.add_column("measure")
        table.add_column("value")
        for key in _TABLE_ORDER:
            if key in self.resources:
                table.add_row(key, str(self.resources[key]))
        for clock in self.clocks:
            table.add_row(f"Fmax {clock.name}", f"{clock.achieved_mhz:.1f} MHz "
                          f"({'meets' if clock.met else 'MISSES'} {clock.constraint_mhz:.1f} MHz)")
        for path in self.critical_paths:
            where = " -> ".join(path.sources[-3:]) or f"{path.start} -> {path.end}"
            table.add_row("critical path", f"{path.delay_ns:.2f} ns, {path.logic_levels} logic levels "
                          f"({path.logic_ns:.2f} ns logic, {path.routing_ns:.2f} ns routing): {where}")
        for memory in self.memories:
            table.add_row(f"memory {memory.name}", f"{memory.depth} x {memory.width} -> {memory.mapped_to}")
        table.add_row("multipliers", f"{self.multipliers} in RTL, {self.dsp_used} DSP blocks used")
        if self.harness:
            table.add_row("timing harness", f"included above: {self.harness['ff']} FF, ~{self.harness['lut']} LUT")
        if self.seconds is not None:
            table.add_row("build time", f"{self.seconds:.0f} s")
        for note in self.warnings:
            table.add_row("[yellow]warning[/]", note)
        return table


def print_reports(reports, *, console=None) -> None:
    """Print each report's table."""
    from rich.console import Console
    console = console or Console()
    for report in reports:
        console.print(report.table())


# ---- parsers -------------------------------------------------------------------------------------------------------

_MODULE = re.compile(r"^module \\(\S+)$")
_MEMORY = re.compile(r"^\s*memory width (\d+) size (\d+) \\(\S+)$")
_CELL = re.compile(r"^\s*cell \$(\w+) ")
_CONNECT = re.compile(r"^\s*connect \\([AB]) (.*)$")
_PARAM = re.compile(r"^\s*parameter \\([AB])_WIDTH (\d+)$")
_CONSTANT = re.compile(r"^\d+'[01xz]+$")


def parse_rtlil(text: str) -> tuple[dict[str, tuple[int, int]], int]:
    """Memories (full name -> (width, depth)) and the number of multipliers with two non-constant operands of at
    least 2 bits, from Amaranth's RTLIL. Amaranth writes one RTLIL module per instance, so counts need no scaling."""
    memories, multipliers = {}, 0
    module, in_mul, widths, constant = None, False, {}, False
    for line in text.splitlines():
        if match := _MODULE.match(line):
            module = match.group(1)
        elif match := _MEMORY.match(line):
            memories[f"{module}.{match.group(3)}"] = (int(match.group(1)), int(match.group(2)))
        elif match := _CELL.match(line):
            in_mul, widths, constant = match.group(1) == "mul", {}, False
        elif in_mul and (match := _PARAM.match(line)):
            widths[match.group(1)] = int(match.group(2))
        elif in_mul and (match := _CONNECT.match(line)):
            constant |= bool(_CONSTANT.match(match.group(2).strip()))
        elif in_mul and line.strip() == "end":
            if not constant and min(widths.values(), default=0) >= 2:
                multipliers += 1
            in_mul = False
    return memories, multipliers


_LIBMAP = re.compile(r"^mapping memory (\S+) via (\S+)$")
_FFMAP = re.compile(r"^using FF mapping for memory (\S+)$")


def parse_memory_mapping(yosys_log: str, memories: dict[str, tuple[int, int]]) -> list[MemoryMapping]:
    """What Yosys's ``memory_libmap`` did with each memory of the RTLIL; memories it never saw were optimised away."""
    mapped = {}
    for line in yosys_log.splitlines():
        if match := _LIBMAP.match(line):
            mapped[match.group(1)] = _MEMORY_TARGETS.get(match.group(2), match.group(2))
        elif match := _FFMAP.match(line):
            mapped[match.group(1)] = "flip-flops"
    return [MemoryMapping(name, width, depth, mapped.get(name, "removed"))
            for name, (width, depth) in memories.items()]


def parse_netlist_cells(netlist: dict) -> dict[str, int]:
    """Cell counts by type over the design's modules of a Yosys JSON netlist: the primitive library's blackbox
    models and ``$scopeinfo`` bookkeeping cells are left out, and parametrised types count under their base name
    (``$paramod$...\\SB_RAM40_4K`` as ``SB_RAM40_4K``)."""
    cells = {}
    for module in netlist["modules"].values():
        if int(module.get("attributes", {}).get("blackbox", "0"), 2):
            continue
        for cell in module.get("cells", {}).values():
            kind = cell["type"].rpartition("\\")[2] if cell["type"].startswith("$paramod") else cell["type"]
            if kind != "$scopeinfo":
                cells[kind] = cells.get(kind, 0) + 1
    return dict(sorted(cells.items()))


_UTILISATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%$")


def parse_utilisation_log(nextpnr_log: str) -> dict[str, Usage]:
    """The ``Device utilisation`` block of a nextpnr log (present even when placement then fails)."""
    usage = {}
    for line in nextpnr_log.splitlines():
        if match := _UTILISATION.match(line.strip()):
            usage[match.group(1)] = Usage(int(match.group(2)), int(match.group(3)))
    return usage


def _critical_path(entry: dict) -> CriticalPath:
    steps = entry["path"]
    logic = [s for s in steps if s["type"] in ("logic", "clk-to-q", "setup")]
    sources = []
    for step in steps:
        for source in step.get("sources", []):
            if source.startswith("/share/"):  # Yosys's own techmap library
                continue
            short = re.sub(r"^.*/site-packages/", "", source)
            short = re.sub(r"^.*?/(hw|fpga|sim)/", r"\1/", short)
            if short not in sources:
                sources.append(short)
    return CriticalPath(
        from_clock=entry["from"], to_clock=entry["to"],
        delay_ns=sum(s["delay"] for s in steps),
        logic_ns=sum(s["delay"] for s in logic),
        routing_ns=sum(s["delay"] for s in steps if s["type"] == "routing"),
        logic_levels=sum(1 for s in steps if s["type"] == "logic"),
        start=f"{steps[0]['from']['cell']}.{steps[0]['from']['port']}",
        end=f"{steps[-1]['to']['cell']}.{steps[-1]['to']['port']}",
        sources=sources)


def memory_mappings(build_dir) -> list[MemoryMapping]:
    """Every memory of the build's RTLIL and what Yosys mapped it to (needs only the Yosys step to have run)."""
    build_dir = Path(build_dir)
    memories, _ = parse_rtlil((build_dir / "top.il").read_text())
    return parse_memory_mapping((build_dir / "top.rpt").read_text(errors="replace"), memories)


def parse_build(build_dir, *, design: str, board: str, device: str, family: str, params: dict, dsp: bool,
                harness: dict | None, seconds: float | None = None, router: str | None = None,
                pnr_seed: int | None = None) -> SynthesisReport:
    """Read a finished build directory into a :class:`SynthesisReport`."""
    build_dir = Path(build_dir)
    _, multipliers = parse_rtlil((build_dir / "top.il").read_text())
    mapping = memory_mappings(build_dir)
    cells = parse_netlist_cells(json.loads((build_dir / "top.json").read_text()))
    nextpnr = json.loads((build_dir / "report.json").read_text())
    placed = {name: Usage(u["used"], u["available"]) for name, u in nextpnr["utilization"].items()}

    resources = {}
    for key, name in _NEXTPNR_RESOURCES[family].items():
        if name in placed:
            resources[key] = placed[name]
    for key, prefixes in _NETLIST_RESOURCES[family].items():
        capacity = resources.get(_CAPACITY_FROM[family].get(key))
        resources[key] = Usage(sum(n for cell, n in cells.items() if cell.startswith(prefixes)),
                               capacity.available if capacity else None)

    clocks = [ClockTiming(name.removeprefix("$glbnet$"), t["achieved"], t["constraint"])
              for name, t in sorted(nextpnr["fmax"].items())]
    paths = [_critical_path(p) for p in nextpnr["critical_paths"]
             if p["path"] and "<async>" not in (p["from"], p["to"]) and "GND_NET" not in p["from"] + p["to"]]
    return SynthesisReport(design=design, board=board, device=device, family=family, params=params, dsp=dsp,
                           resources=resources, cells=cells, clocks=clocks, critical_paths=paths, memories=mapping,
                           multipliers=multipliers, harness=harness, build_dir=str(build_dir), seconds=seconds,
                           router=router, pnr_seed=pnr_seed)

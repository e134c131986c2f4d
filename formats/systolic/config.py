"""The configuration of one systolic accelerator build (array size, memory depths, Winograd).

Machine model
-------------
A ``rows x cols`` weight-stationary array (TPU v1 style) with three on-chip memories, all sized by
:class:`SystolicConfig`:

* **unified buffer** (UB): ``ub_depth`` words of ``rows`` int8 lanes -- layer inputs and outputs;
* **weight buffer** (WB): ``wb_depth`` words of ``cols`` int8 lanes -- weight tiles and activation parameters;
* **accumulators** (ACC): ``acc_depth`` words of ``cols`` int32 lanes;
* with ``winograd=True`` only, the **transform buffer** (TB): ``tb_depth`` words of ``rows`` lanes of
  :data:`WINOGRAD_V_BITS` bits -- transformed input tiles ``V = B^T d B`` (see Winograd below).

The accelerator as built requires ``rows == cols`` (one host word fits both buffers, and an output tile is the next
layer's input tile); the array blocks themselves take any ``rows x cols``.

The unified buffer is two banks, the even and the odd addresses, each with one read and one write port, so that the
host transfers and the computation use it at the same time (:mod:`sparq.formats.systolic.timing`, bank slots);
``ub_depth`` must therefore be at least 2.

Host side: an instruction stream (128-bit words, :func:`encode`), a data stream in (``host_in``, one UB/WB word per
transfer) and a data stream out (``host_out``). The words a program reads from ``host_in`` come in program order:
each ``READ_WEIGHTS`` takes ``count`` words of the static weight image from word ``src``, each ``READ_HOST``
``count`` words of the run-time input from word ``src`` (:func:`host_stream`).
"""

import json
from dataclasses import asdict, dataclass, fields

from ..common import check_positive_ints
from .isa import FIELDS, FormatError
from .numerics import PARAM_WORDS

__all__ = ["SystolicConfig"]

_ADDRESS_BITS = {f"{name}_depth": bits for name, bits in FIELDS if name in ("acc", "ub", "wb", "tb")}
"""The width of the instruction field that addresses each memory (the instruction and output queues, which no field
addresses, are held to the same limit as the unified buffer)."""


@dataclass(frozen=True)
class SystolicConfig:
    """Parameters of one accelerator build. Every depth is a number of words.

    ``instr_depth`` is the instruction queue, ``out_depth`` the host output queue (at least 3; WRITE_HOST streams
    one word a cycle from :data:`~sparq.formats.systolic.timing.FULL_RATE_OUT_DEPTH` on). ``winograd`` builds the
    Winograd datapath (transform units, transform buffer of ``tb_depth`` words, 10 x 12-bit PE operands); without
    it ``tb_depth`` is ignored and the Winograd instructions are refused.
    """
    rows: int = 8
    cols: int = 8
    ub_depth: int = 1024
    wb_depth: int = 1024
    acc_depth: int = 256
    instr_depth: int = 16
    out_depth: int = 8
    winograd: bool = False
    tb_depth: int = 1024

    def __post_init__(self):
        if not isinstance(self.winograd, bool):
            raise FormatError(f"SystolicConfig.winograd must be True or False, not {self.winograd!r}")
        check_positive_ints(self, FormatError, skip=("winograd",))
        for f in fields(self):
            limit = _ADDRESS_BITS.get(f.name, _ADDRESS_BITS["ub_depth"])
            if f.name.endswith("depth") and getattr(self, f.name) >= 1 << limit:
                raise FormatError(f"SystolicConfig.{f.name}={getattr(self, f.name)} does not fit the {limit}-bit "
                                  f"address fields")
        if self.rows != self.cols:
            raise FormatError(f"the accelerator needs a square array (rows == cols, got {self.rows} x {self.cols}): "
                              "a unified-buffer word is one array row and an output tile is the next layer's input")
        if self.ub_depth < 2:
            raise FormatError(f"SystolicConfig.ub_depth must be at least 2 (got {self.ub_depth}): the unified buffer "
                              "is two banks, the even and the odd addresses")
        if self.out_depth < 3:
            raise FormatError(f"SystolicConfig.out_depth must be at least 3 (got {self.out_depth})")
        if self.wb_depth < max(self.rows, PARAM_WORDS):
            raise FormatError(f"SystolicConfig.wb_depth={self.wb_depth} cannot hold one weight tile "
                              f"({self.rows} words); raise wb_depth")

    @property
    def lanes(self) -> int:
        """int8 lanes in a UB, WB or host word."""
        return self.rows

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "SystolicConfig":
        return cls(**json.loads(text))

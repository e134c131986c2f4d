"""The designs ``sparq synth`` can build, by name: each a factory taking keyword parameters with defaults.

::

    from sparq.fpga.designs import make_design
    design, params = make_design("fifo", depth=1024)   # params: {"width": 16, "depth": 1024}

A factory's keyword parameters and their defaults are the design's parameters; :func:`make_design` refuses a name or
a parameter it does not know, naming what it does know. Register a design with :func:`register`.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DesignEntry", "DESIGNS", "register", "get_design", "make_design", "parse_param"]


@dataclass(frozen=True)
class DesignEntry:
    name: str
    factory: Callable
    summary: str

    @property
    def defaults(self) -> dict:
        """The factory's keyword parameters and their default values."""
        return {name: p.default for name, p in inspect.signature(self.factory).parameters.items()}


DESIGNS: dict[str, DesignEntry] = {}


def register(name: str, summary: str):
    """Decorator: register ``factory`` as design ``name``. Every parameter of the factory must have a default."""
    def decorate(factory):
        missing = [p for p, v in inspect.signature(factory).parameters.items() if v.default is inspect.Parameter.empty]
        if missing:
            raise TypeError(f"design {name!r}: parameters {missing} need defaults")
        DESIGNS[name] = DesignEntry(name, factory, summary)
        return factory
    return decorate


def get_design(name: str) -> DesignEntry:
    """The registered design ``name``; raises :class:`ValueError` listing the known designs otherwise."""
    try:
        return DESIGNS[name]
    except KeyError:
        raise ValueError(f"unknown design {name!r}; known designs: {', '.join(DESIGNS)}") from None


def make_design(name: str, **params):
    """Build design ``name`` with ``params`` over its defaults; return ``(design, all parameters)``.

    Raises :class:`ValueError` for an unknown parameter or a value of the wrong type, and passes on the design's own
    :class:`ValueError` for a value it refuses.
    """
    entry = get_design(name)
    defaults = entry.defaults
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        known = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
        raise ValueError(f"design {name!r} has no parameter {', '.join(map(repr, unknown))}; its parameters are "
                         f"{known}")
    for key, value in params.items():
        default = defaults[key]
        if default is not None and type(value) is not type(default) and not (
                isinstance(default, float) and type(value) is int):
            raise ValueError(f"design {name!r} parameter {key!r} takes a {type(default).__name__} "
                             f"(default {default!r}), not {value!r}")
    resolved = {**defaults, **params}
    return entry.factory(**resolved), resolved


def parse_param(text: str) -> tuple[str, object]:
    """``"depth=512"`` -> ``("depth", 512)``; values are Python literals (``16``, ``True``, ``0.5``), else strings."""
    import ast
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"parameter {text!r} is not NAME=VALUE (for example depth=512)")
    try:
        return key.strip(), ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        return key.strip(), value.strip()


@register("mac", "sparq.hw.common.mac.MACCell: signed multiply-accumulate, y <= fit(c + a*b)")
def _mac(a_width: int = 8, b_width: int = 8, acc_width: int = 32, saturate: bool = False):
    from sparq.hw.common.mac import MACCell
    return MACCell(a_width=a_width, b_width=b_width, acc_width=acc_width, saturate=saturate)


@register("fifo", "sparq.hw.common.fifo.StreamFIFO: ready/valid queue on block RAM")
def _fifo(width: int = 16, depth: int = 512):
    from sparq.hw.common.fifo import StreamFIFO
    return StreamFIFO(width, depth)


@register("bridge", "sparq.hw.uart.bridge.HostBridge: the UART host protocol engine (115200 baud at 12 MHz by default)")
def _bridge(divisor: int = 104, n_counters: int = 4):
    from sparq.hw.uart.bridge import HostBridge
    return HostBridge(divisor=divisor, n_counters=n_counters)


@register("systolic", "sparq.hw.systolic.accelerator.SystolicAccelerator: size x size weight-stationary int8 array")
def _systolic(size: int = 4, ub_depth: int = 256, wb_depth: int = 256, acc_depth: int = 64):
    from sparq.formats.systolic import SystolicConfig
    from sparq.hw.systolic.accelerator import SystolicAccelerator
    return SystolicAccelerator(SystolicConfig(rows=size, cols=size, ub_depth=ub_depth, wb_depth=wb_depth,
                                              acc_depth=acc_depth))


@register("systolic-board", "sparq.fpga.top.SystolicHost on the board: baked program and image, UART host, LEDs "
                            "(image: 'digits' or a saved sparq.formats.systolic program)")
def _systolic_board(size: int = 8, image: str = "digits", ub_depth: int = 64, wb_depth: int = 8192,
                    acc_depth: int = 16, baud: int = 115_200):
    from sparq.formats.systolic import SystolicConfig

    from .images import load_image
    from .top import BoardTop, SystolicHost
    program = load_image(image, SystolicConfig(rows=size, cols=size, ub_depth=ub_depth, wb_depth=wb_depth,
                                               acc_depth=acc_depth))
    return BoardTop(lambda divisor: SystolicHost(program, divisor=divisor), baud=baud)


@register("eie", "sparq.hw.eie.EIE: n_pe processing elements (image: 'digits' bakes the compressed digits MLP into "
                 "memory init with memories sized to it, 'none' the same sizes empty, or a saved image directory; "
                 "pe_counters=False leaves out the per-PE busy/stall/starve counters; spram=True puts each PE's "
                 "sparse matrix in an iCE40 SPRAM, which has no init: the host loads it)")
def _eie(n_pe: int = 4, fifo_depth: int = 8, image: str = "digits", pe_counters: bool = True, spram: bool = False):
    from sparq.hw.eie import EIE

    from .images import eie_image
    return EIE(*eie_image(image, n_pe=n_pe, fifo_depth=fifo_depth), pe_counters=pe_counters, spram=spram)


@register("eie-board", "sparq.fpga.top.EieHost on the board: an EIE of n_pe PEs with the image baked in (as for 'eie'; "
                       "with spram=True the host loads the sparse matrices first: sparq.fpga.driver.eie_load), UART host, "
                       "LEDs")
def _eie_board(n_pe: int = 4, fifo_depth: int = 8, image: str = "digits", pe_counters: bool = False,
               spram: bool = False, baud: int = 115_200):
    from .images import eie_image
    from .top import BoardTop, EieHost
    config, baked = eie_image(image, n_pe=n_pe, fifo_depth=fifo_depth)
    return BoardTop(lambda divisor: EieHost(config, baked, divisor=divisor, pe_counters=pe_counters, spram=spram),
                    baud=baud)


@register("systolic-pe", "sparq.hw.systolic.pe.WeightStationaryPE: one PE (arithmetic: 'int8', or 'fp16' / 'bf16' "
                         "multiplies with fp32 accumulation)")
def _systolic_pe(arithmetic: str = "int8"):
    from sparq.hw.systolic.pe import WeightStationaryPE
    return WeightStationaryPE(arithmetic=arithmetic)


@register("systolic-array", "sparq.hw.systolic.array.SystolicArray: size x size PEs, no buffers (arithmetic: 'int8', "
                            "'fp16' or 'bf16')")
def _systolic_array(size: int = 2, arithmetic: str = "int8"):
    from sparq.hw.systolic.array import SystolicArray
    return SystolicArray(size, size, arithmetic=arithmetic)

"""sparq: Deep Compression, EIE and a TPU-like systolic array as verified, synthesizable hardware, with the compiler
that feeds it.

The Python API (:mod:`sparq.api`) is available here: ``sparq.load``, ``sparq.compress``, ``sparq.lower``,
``sparq.simulate`` and ``sparq.export``, with their results ``sparq.Compressed``, ``sparq.Image`` and
``sparq.Simulation``, and the errors they raise, ``sparq.SparqError`` and its subclasses (:mod:`sparq.errors`).
``import sparq`` imports none of it: the API is imported on first use, so the ``sparq`` command starts as fast as
before. The layers are subpackages: ``sparq.formats``, ``sparq.compiler``, ``sparq.hw``, ``sparq.sim``,
``sparq.fpga``.
"""

_API = ("load", "compress", "lower", "simulate", "export", "Compressed", "Image", "Simulation")
_ERRORS = ("SparqError", "InputError", "DoesNotFit", "VerificationFailed", "ToolFailed", "WorkspaceBusy",
           "InternalError")

__all__ = [*_API, *_ERRORS]


def __getattr__(name):
    if name in _API:
        from . import api
        return getattr(api, name)
    if name in _ERRORS:
        from . import errors
        return getattr(errors, name)
    raise AttributeError(f"module 'sparq' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})

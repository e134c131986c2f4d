"""The accelerators the front door knows, each a :class:`Target` (:mod:`sparq.targets.base`): EIE
(:mod:`sparq.targets.eie`) and the systolic array (:mod:`sparq.targets.systolic`).

A third engine is one new module here with its :class:`Target` subclass, imported below and added to
:data:`TARGETS`; the command line's ``--target`` choices, the TOML tables and the report follow from that.
"""

from ..errors import InputError
from .base import Lowered, RunOptions, Target
from .eie import EIE
from .systolic import SYSTOLIC

__all__ = ["Target", "Lowered", "RunOptions", "TARGETS", "EIE", "SYSTOLIC", "names", "get"]

TARGETS = (EIE, SYSTOLIC)
"""Every target, in the order the command line, the report and its plots list them."""


def names():
    """The targets' names, as ``--target`` takes them."""
    return tuple(target.name for target in TARGETS)


def get(target):
    """The :class:`Target` named ``target`` (a Target is returned as it is); an unknown name is an
    :class:`sparq.errors.InputError`."""
    if isinstance(target, Target):
        return target
    for known in TARGETS:
        if known.name == target:
            return known
    raise InputError(f"unknown target {target!r}", f"choose one of {', '.join(names())}")

"""Numpy models of EIE that run a :mod:`sparq.formats.eie` image: the bit-exact :mod:`.golden` model and the event-level
:mod:`.cycle` model. They import ``formats`` only, never ``compiler`` or ``hw``."""

from .cycle import CycleStats, run, simulate
from .golden import Golden, Trace

__all__ = ["Golden", "Trace", "CycleStats", "simulate", "run"]

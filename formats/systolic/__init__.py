"""The systolic accelerator's program format, shared by ``sparq.compiler.systolic`` (which writes it) and ``sparq.hw.systolic``
and ``sparq.sim.systolic`` (which execute it). Pure Python plus numpy; imports neither ``compiler`` nor ``hw``.

Format version
--------------
:data:`FORMAT_VERSION` is written into every saved program and checked on load. Any change to the encoding, the
field widths, the parameter-record layout or the integer semantics below bumps it. Version 2 added the Winograd
instructions (TRANSFORM_IN, TRANSFORM_OUT, wide weight tiles, MATMUL from the transform buffer) and the ``tb``
field; a version-1 file is refused with a message to recompile.

Modules
-------
* :mod:`.isa` -- opcodes, flags, fields, the encoding and the listing (the instruction set);
* :mod:`.config` -- :class:`SystolicConfig` and the machine model;
* :mod:`.numerics` -- requantization, parameter records and the Winograd transforms (the integer semantics);
* :mod:`.layout` -- matrices, weight tiles and host words in memory;
* :mod:`.host` -- the ``host_in`` stream of a program;
* :mod:`.timing` -- the drain latencies and the performance counters (the timing contract);
* :mod:`.files` -- :class:`SystolicProgram` and its ``.npz`` file.

Everything is importable from this package as well.
"""

from . import config, files, host, isa, layout, numerics, timing
from .config import *  # noqa: F403
from .files import *  # noqa: F403
from .host import *  # noqa: F403
from .isa import *  # noqa: F403
from .layout import *  # noqa: F403
from .numerics import *  # noqa: F403
from .timing import *  # noqa: F403

__all__ = [*isa.__all__, *config.__all__, *numerics.__all__, *layout.__all__, *host.__all__, *timing.__all__, *files.__all__]

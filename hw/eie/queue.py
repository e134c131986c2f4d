"""The activation queue between the central control unit and a PE."""

from ..common.fifo import StreamFIFO
from .layouts import broadcast_layout

__all__ = ["ActivationQueue"]


class ActivationQueue(StreamFIFO):
    """The foundation :class:`~sparq.hw.common.fifo.StreamFIFO` carrying :func:`~.layouts.broadcast_layout` items
    (a non-zero activation and its index).

    Ports and latency are those of ``StreamFIFO``: ``i``, ``o``, ``level``; two cycles through an empty queue, one
    item per cycle in steady state. The CCU writes only while its credits say every PE has room, which includes
    ``i.ready`` (see :class:`~.pe.ProcessingElement`).
    """

    def __init__(self, depth: int):
        super().__init__(broadcast_layout(), depth)

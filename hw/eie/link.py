"""The link between the central control unit and one processing element."""

from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.eie import EieConfig

from .layouts import act, broadcast_layout, layer_layout

__all__ = ["PELinkSignature"]


class PELinkSignature(wiring.Signature):
    """What :class:`~.ccu.CentralControlUnit` and one :class:`~.pe.ProcessingElement` exchange, from the CCU's side
    (``Out`` members are driven by the CCU). The CCU has one link per PE (``pes``), each PE one (``ccu``), joined
    with ``wiring.connect``.

    Members
    -------
    bcast : Out(stream.Signature(broadcast_layout(), always_ready=True))
        A non-zero activation and its index ``j``, sent to every PE in the same cycle, from a register. The CCU
        sends one only while the PE holds fewer than ``fifo_depth`` activations by its count (broadcasts sent, minus
        ``freed``), so no PE ever refuses one.
    freed : In(1)
        The PE finished an activation's column in the cycle before (registered): a credit back to the CCU.
    busy : In(1)
        The cycle before, the PE issued an entry or read the pointers of an empty column (the ``busy_cycles``
        counter); registered.
    idle : In(1)
        In the cycle before, the PE held no activation, none was arriving and no entry was in flight (registered).
    layer : Out(layer_layout()), layer_index : Out(range(max_layers)), parity : Out(1)
        The running layer's table word, its index (which codebook) and which activation bank is the source; steady
        during a layer.
    act_addr : Out; act_data : In(act)
        Read of the PE's source activations in every cycle, on ``act_data`` two cycles after ``act_addr`` (the
        read, then a register): the CCU's scan during a run, the host's reads (:class:`~.top.EIE` ``read``)
        between runs.
    flush_addr, flush_en, flush_write, bias_addr : Out
        Write-back of local row ``flush_addr``: the accumulator is read and cleared and, with ``flush_write``,
        finished into the destination activations (visible to ``act_*`` reads five cycles later) with the PE's bias
        ``bias_addr`` (the layer's ``bias_base + flush_addr``, added in the CCU).
    """

    def __init__(self, config: EieConfig):
        super().__init__({
            "bcast": Out(stream.Signature(broadcast_layout(), always_ready=True)),
            "freed": In(1),
            "busy": In(1),
            "idle": In(1),
            "layer": Out(layer_layout()),
            "layer_index": Out(range(config.max_layers)),
            "parity": Out(1),
            "act_addr": Out(range(config.act_depth)),
            "act_data": In(act),
            "flush_addr": Out(range(config.act_depth)),
            "flush_en": Out(1),
            "flush_write": Out(1),
            "bias_addr": Out(range(config.bias_depth)),
        })

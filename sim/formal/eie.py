"""Properties of EIE's control path: the leading non-zero detector, the CCU's scan and broadcast, and its
handshake with the PEs.

The CCU runs against an abstract environment written from the PEs' documented contracts (``freed``, ``idle``, the
one-cycle activation read), not against real PEs: the properties are about the CCU, and a PE's datapath
(multipliers, memories) would only slow the solver down. :class:`_CCUPorts` is the one place that reads the CCU's
ports and wires them as :class:`~sparq.hw.eie.top.EIE` does.
"""

from amaranth import Cat, Const, Module, Mux, Signal, Value
from amaranth.asserts import AnySeq, Initial
from amaranth.hdl import Assert, Assume, Cover
from amaranth.lib import data

from sparq.formats.eie import EieConfig
from sparq.hw.eie.ccu import CentralControlUnit
from sparq.hw.eie.layouts import act
from sparq.hw.eie.lnzd import LeadingNonZeroDetector

from .prove import Property
from .rules import delayed, free_inputs, no_reset, transfer

__all__ = ["LeadingNonZero", "ccu_config", "two_layers", "LayerScan", "CCUHandshake"]


class LeadingNonZero(Property):
    """The detector of ``n`` lanes, for every mask and every value (combinational, so k-induction of length 1 is a
    complete proof): ``valid`` is high exactly when some lane is set; then ``lane`` is the lowest set lane and
    ``value`` its activation."""

    def __init__(self, n: int):
        self.n, self.mode, self.depth = n, "prove", 1

    @property
    def name(self):
        return f"LeadingNonZero[{self.n} lanes]"

    def elaborate(self, platform):
        m = Module()
        m.submodules.lnzd = lnzd = LeadingNonZeroDetector(self.n)
        free_inputs(m, lnzd)
        below = (Const(1, self.n + 1) << lnzd.lane) - 1  # the lanes under `lane`
        m.d.comb += [
            Assert(lnzd.valid == lnzd.mask.any(), "valid is not 'some lane set'"),
            Assert(~lnzd.valid | lnzd.mask.bit_select(lnzd.lane, 1), "lane is not set"),
            Assert(~lnzd.valid | ((lnzd.mask & below) == 0), "a lower lane is set"),
            Assert(~lnzd.valid | (lnzd.value == lnzd.values[lnzd.lane]), "value is not the lane's activation"),
        ]
        return m


def ccu_config(n_pe: int, act_depth: int, max_layers: int = 2) -> EieConfig:
    """A small EIE configuration for the CCU properties (the PE memories' depths do not matter to the CCU)."""
    return EieConfig(n_pe=n_pe, fifo_depth=2, ptr_depth=2, spmat_depth=1, act_depth=act_depth, bias_depth=1,
                     max_layers=max_layers)


def two_layers(config: EieConfig) -> int:
    """A BMC bound that holds two complete dense layers of ``config`` after the table is written, with stalls to
    spare: a dense layer takes about ``n_pe * act_depth + act_depth + 18`` cycles (LAYER, LOAD, the fetch's 6
    cycles to the first broadcast, one broadcast per activation, DRAIN, WRITEBACK, SETTLE, NEXT), a run starts with
    ``act_depth`` cycles of CLEAR."""
    length, a = config.n_pe * config.act_depth, config.act_depth
    return config.max_layers + a + 2 * (length + 3 * a + 20)


class _CCUPorts:
    """The CCU in an abstract EIE. Host side: in its first ``max_layers`` cycles the host writes every layer-table
    entry (any layer that fits the configuration: ``1 <= in_len, out_len <= n_pe * act_depth``, other fields
    zero, as the CCU only sequences them), then starts runs of any ``n_layers <= max_layers`` at any time, and
    reads activations (``host_en``) at any time between runs. PE side (the :class:`~sparq.hw.eie.link.PELinkSignature` links): ``freed`` and ``busy`` free, ``idle``
    the register of the free :attr:`idle_now` (a property may constrain them); the source activations are read from :attr:`acts` with one cycle of latency, as
    from the PEs' activation registers.

    ``acts`` (``n_pe * act_depth`` activations, index ``j`` at PE ``j % n_pe``, local address ``j // n_pe``) takes
    new free values whenever a layer begins (``start``, or ``parity`` flipping) and holds during the layer.
    (Letting the host write the table in any idle cycle instead makes BMC several times slower, for no behaviour
    of the CCU's that this misses: it reads the table only in LAYER.)

    The CCU drives every link with the same control signals; :attr:`bcast`, :attr:`layer`, :attr:`layer_index`,
    :attr:`parity` and :attr:`flush_write` are those of link 0, and a property checks that the others agree
    (:meth:`links_agree`). :attr:`freed` and :attr:`idle` gather the PEs' bits.
    """

    def __init__(self, m, config: EieConfig):
        self.config = c = config
        n, length = c.n_pe, c.n_pe * c.act_depth
        m.submodules.ccu = self.ccu = ccu = CentralControlUnit(c, pe_counters=False)
        free_inputs(m, ccu, skip=["table_en", "table_addr", "table_data"]
                    + [f"pes.{k}.{name}" for k in range(n) for name in ("act_data", "idle")])
        links = ccu.pes
        link = links[0]
        self.bcast, self.layer, self.layer_index = link.bcast, link.layer, link.layer_index
        self.parity, self.flush_write = link.parity, link.flush_write
        self.freed, self.idle = Cat(pe.freed for pe in links), Cat(pe.idle for pe in links)
        self.idle_now = Signal(n)  # the PEs' own idle bits, which their links carry registered
        m.d.comb += self.idle_now.eq(AnySeq(n))
        m.d.sync += [pe.idle.eq(self.idle_now[k]) for k, pe in enumerate(links)]
        written = Signal(range(c.max_layers + 1))
        table = ccu.table_data
        with m.If(written != c.max_layers):
            m.d.sync += written.eq(written + 1)
            m.d.comb += [ccu.table_en.eq(1), ccu.table_addr.eq(written),
                         table.in_len.eq(AnySeq(table.in_len.shape())), table.out_len.eq(AnySeq(table.out_len.shape())),
                         Assume((table.in_len >= 1) & (table.in_len <= length) & (table.out_len >= 1)
                                & (table.out_len <= length), "layers fit the configuration"),
                         Assume(~ccu.start, "no run before the table is written")]
        m.d.comb += Assume(ccu.n_layers <= c.max_layers, "n_layers within the table")

        self.length = length
        self.acts = acts = Signal(data.ArrayLayout(act, length))
        self.layer_begins = Signal()
        parity_was = delayed(m, self.parity, "parity_was")
        m.d.comb += self.layer_begins.eq((ccu.start & ~ccu.running) | (self.parity != parity_was))
        with m.If(self.layer_begins):
            m.d.sync += acts.eq(AnySeq(len(acts.as_value())))
        for k in range(n):  # the PEs' read: the word at act_addr, registered twice (the memory, the register)
            word = Signal(act, name=f"read{k}")
            m.d.sync += [word.eq(acts.as_value().word_select(links[k].act_addr * n + k, act.width)),
                         links[k].act_data.eq(word)]

    def links_agree(self, m):
        """Assert that every link carries link 0's broadcast and control signals in every cycle."""
        link = self.ccu.pes[0]
        names = ["layer", "layer_index", "parity", "act_addr", "flush_addr", "flush_en", "flush_write", "bias_addr"]
        for k, other in enumerate(self.ccu.pes[1:], 1):
            same = [Value.cast(getattr(other, name)) == Value.cast(getattr(link, name)) for name in names]
            same += [other.bcast.valid == link.bcast.valid,
                     ~link.bcast.valid | (Value.cast(other.bcast.payload) == Value.cast(link.bcast.payload))]
            m.d.comb += Assert(Cat(same).all(), f"link {k} differs from link 0")


class _CCUProperty(Property):
    """A BMC property of the CCU in :class:`_CCUPorts`, from reset (no reset after), to ``depth`` cycles (default
    :func:`two_layers`); subclasses state it in :meth:`check`."""

    def __init__(self, config: EieConfig, *, depth: int | None = None):
        self.config, self.mode = config, "bmc"
        self.depth = depth if depth is not None else two_layers(config)

    @property
    def name(self):
        return f"{type(self).__name__}[{self.config.n_pe} PEs, act_depth {self.config.act_depth}]"

    def elaborate(self, platform):
        m = Module()
        no_reset(m)
        self.check(m, _CCUPorts(m, self.config))
        return m


class LayerScan(_CCUProperty):
    """The CCU's scan broadcasts the non-zero activations of each layer exactly once, lowest index first, with
    their values: BMC from reset to ``depth`` cycles (default :func:`two_layers`).

    Environment (:class:`_CCUPorts`): any layer sizes that fit, any source activations (new ones each layer), any
    credits back from the PEs (``freed``). Guarantees, for every broadcast offered (``bcast.valid``): its index is
    below the layer's ``in_len``, its activation is non-zero and is the one at that index, it has not been sent in
    this layer, and every non-zero below it has (so the index is the lowest non-zero not yet sent); and when the
    layer's write-back starts every non-zero has been sent. ``bcast`` keeps the stream rules.
    """

    def check(self, m, env):
        bcast = env.bcast
        env.links_agree(m)
        length, acts = env.length, env.acts

        nonzero = Signal(length)
        m.d.comb += nonzero.eq(Cat((acts[j] != 0) & (j < env.layer.in_len) for j in range(length)))
        sent = Signal(length)
        index = bcast.payload.index
        one = Signal(length)  # the bit of `index`, none when out of range (an assertion below catches that)
        m.d.comb += one.eq(Mux(index < length, Const(1, length) << index[:(length - 1).bit_length()], 0))
        below = one - 1
        with m.If(env.layer_begins):
            m.d.sync += sent.eq(0)
        with m.Elif(transfer(bcast)):
            m.d.sync += sent.eq(sent | one)
        with m.If(bcast.valid):
            m.d.comb += [
                Assert(index < env.layer.in_len, "broadcast index outside the layer"),
                Assert(bcast.payload.value.as_unsigned()
                       == Mux(index < length, acts.as_value().word_select(index, act.width), 0),
                       "broadcast value is not the activation at its index"),
                Assert(bcast.payload.value != 0, "a zero activation broadcast"),
                Assert((sent & one) == 0, "an activation broadcast twice in a layer"),
                Assert((nonzero & ~sent & below) == 0, "a lower non-zero activation not yet sent"),
            ]
        with m.If(env.flush_write):
            m.d.comb += Assert((nonzero & ~sent) == 0, "write-back started with a non-zero activation not sent")
        m.d.comb += Cover(env.flush_write & (env.layer_index == 1) & (sent == nonzero) & (nonzero.all()),
                          "second layer's write-back after a dense layer")


class CCUHandshake(_CCUProperty):
    """The CCU's handshake with the PEs: no PE ever holds more than ``fifo_depth`` activations, and ``done`` is high
    only while every PE is idle. BMC from reset to ``depth`` cycles (default :func:`two_layers`).

    Environment: :class:`_CCUPorts`, and the PEs' contracts. ``freed``: each PE holds the activations that reached it
    on its link and that it has not freed yet (counted here), and frees one (``freed``, any cycle it likes, or
    never) only while it holds one. ``idle`` (the PE's own bit, :attr:`_CCUPorts.idle_now`, which the link carries
    registered): the PEs leave reset idle, a PE with a broadcast arriving is not idle, and a PE that is idle stays
    idle until a broadcast reaches it. ``busy`` is free.
    Guarantees: every PE holds at most ``fifo_depth`` activations in every cycle, counting the one arriving (the
    CCU counts its credits from the decision, two cycles before the broadcast arrives, and the PE's frees reach it
    late, so this is its own obligation); ``done`` implies every PE idle (so ``done`` rises only once the last
    broadcast has been processed everywhere).
    """

    def check(self, m, env):
        ccu, idle, n, depth = env.ccu, env.idle, self.config.n_pe, self.config.fifo_depth
        arrives = transfer(env.bcast)
        idle_now, arriving = env.idle_now, arrives.replicate(n)
        stays_idle = delayed(m, idle_now & ~arriving, "stays_idle")
        for k in range(n):
            held = Signal(range(depth + 2), name=f"pe{k}_held")
            m.d.sync += held.eq(held + arrives - env.freed[k])
            m.d.comb += [Assume(~env.freed[k] | (held != 0), f"PE {k} frees only an activation it holds"),
                         Assert(held + arrives <= depth, f"PE {k} sent more than fifo_depth activations")]
            if k == 0:
                m.d.comb += Cover(held == depth, "a PE holds fifo_depth activations")
        m.d.comb += [
            Assume(~Initial() | idle_now.all(), "the PEs leave reset idle"),
            Assume((idle_now & arriving) == 0, "a PE with a broadcast arriving is not idle"),
            Assume((stays_idle & ~arriving & ~idle_now) == 0, "an idle PE stays idle until a broadcast"),
            Assert(~ccu.done | idle.all(), "done while a PE is not idle"),
            Cover(ccu.done & (env.layer_index == 1), "two layers done"),
        ]

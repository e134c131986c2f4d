"""The central control unit: layer sequencing, leading non-zero detection and broadcast, performance counters."""

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.eie import COUNTER_BITS, COUNTERS, LAYER_BITS, EieConfig

from ..common import fanout
from ..common.memory import COLLISION_UNUSED
from .layouts import act, broadcast_layout, layer_layout
from .link import PELinkSignature
from .lnzd import LeadingNonZeroDetector

__all__ = ["CentralControlUnit"]

_WRITEBACK_LATENCY = 6  # SETTLE: this unit's flush register -> the links -> accumulator and bias read, registered ->
                        # finish -> write
_COPIES_FROM = 8        # configurations of this many PEs or more give every PE its own copy of the link registers;
                        # smaller ones, which fit a corner of the die, share one
_FETCH_LATENCY = 3      # a fetch -> its group on the links' act_data (the address register, the read, the PEs'
                        # register)
_GROUP_CREDITS = 6      # groups in flight or queued: a credit comes back round in 6 cycles (fetch, address, read,
                        # the PEs' register, this unit's, the queue), so the scan keeps up with one group per cycle


class CentralControlUnit(wiring.Component):
    """Runs ``n_layers`` layers of the layer table on the PEs, one after the other.

    Sequence (the states of its FSM), after ``start``:

    * CLEAR: every accumulator of every PE is flushed to 0 (``act_depth`` cycles; a reset in the middle of a run
      leaves stale sums behind).
    * Per layer ``l``: LAYER reads the layer-table word and LOAD registers it (``layer`` holds it until the next
      LOAD, and ``layer_index`` selects the PEs' copy of the layer's codebook). SCAN has two halves that run
      together. The fetch reads the source activations of all PEs at one local address per cycle (a group of ``N``
      consecutive indices), registers the group with the lanes that are non-zero and in the layer, and queues it
      (an all-zero group is dropped); ``_GROUP_CREDITS`` groups may be on their way or queued, enough to fetch one
      group per cycle. The broadcast takes the queue's head: the :class:`~.lnzd.LeadingNonZeroDetector` picks its
      lanes in index order, one broadcast per cycle, and the head leaves with its last lane, so the next group's
      non-zeros follow with no gap. A broadcast is decided in a cycle where every PE has a credit (this unit's
      count of the activations the PE holds, broadcasts sent minus the PE's ``freed``, is below ``fifo_depth``),
      is registered here in the next cycle and reaches the PEs from their copies of that register in the cycle
      after, so neither the PEs' state nor the broadcast crosses the die through logic in one cycle. DRAIN waits
      until every PE is idle (the PEs' registered ``idle`` bits, registered again here, two cycles late, and no
      broadcast decided in the last three cycles). WRITEBACK flushes local rows ``0, 1, ...`` of all PEs at once,
      one per cycle, while ``r * N < out_len``, then SETTLE waits for the last write; NEXT flips ``parity``.
    * ``done`` rises and stays high until the next ``start``; ``parity`` then selects the bank holding the outputs.

    Between runs (the paper's I/O mode) the host reads the PEs' activations through ``host_addr``.

    Counters (``sparq.formats.eie.COUNTERS`` and ``PE_COUNTERS``; cleared by ``start``, steady after ``done``):
    ``cycles`` from ``start`` to ``done``; ``compute_cycles``, per layer from its first broadcast (cycle 0) to its
    last busy PE cycle, inclusive, summed over layers (``sparq.sim.eie.cycle``'s ``total``); with ``pe_counters``,
    per PE ``busy_cycles`` (cycles the PE issued an entry or read an empty column's pointers) and ``stall_cycles``
    (cycles a broadcast waited while that PE had no credit). The per-PE counters cost two 32-bit counters per PE; a
    board build that only reports a run's cycles can leave them out (``pe_counters=False``: no such ports).
    (:class:`~.top.EIE` derives ``starve_cycles`` from them.) Every counter counts registered signals (the
    decisions of earlier cycles, the PEs' busy bits registered there and here, the stalls of the cycle before),
    late by as many cycles as each lags, which leaves the counts unchanged.

    Ports
    -----
    start : In(1), n_layers : In(range(max_layers + 1))
        Sampled while not ``running``.
    running, done : Out(1)
    pes : Out(PELinkSignature(config)).array(n_pe)
        One :class:`~.link.PELinkSignature` per PE, every CCU-driven member from a register. A broadcast goes to every
        PE in one cycle, two cycles after one where all of them had a credit.
    host_addr : In(range(act_depth))
        While not ``running``: every PE's source activations at local address ``host_addr`` are on the links'
        ``act_data`` ``HOST_READ_LATENCY`` (4) cycles later (this unit's address register, its copies, the read, the
        PEs' register).
    table_addr, table_data, table_en : In
        Host writes of the layer table.
    cycles, compute_cycles : Out(32); busy_cycles, stall_cycles : Out(ArrayLayout(32, n_pe))
        The last two only with ``pe_counters``.
    """

    HOST_READ_LATENCY = 4

    def __init__(self, config: EieConfig, init_layers=(), *, pe_counters: bool = True):
        self.config, self.pe_counters = config, pe_counters
        self._init_layers = list(init_layers)
        n, counters = config.n_pe, data.ArrayLayout(unsigned(COUNTER_BITS), config.n_pe)
        per_pe = {"busy_cycles": Out(counters), "stall_cycles": Out(counters)} if pe_counters else {}
        super().__init__({
            "start": In(1),
            "n_layers": In(range(config.max_layers + 1)),
            "running": Out(1),
            "done": Out(1),
            "pes": Out(PELinkSignature(config)).array(n),
            "host_addr": In(range(config.act_depth)),
            "table_addr": In(range(config.max_layers)),
            "table_data": In(layer_layout()),
            "table_en": In(1),
            **{name: Out(COUNTER_BITS) for name in COUNTERS},
            **per_pe,
        })

    def elaborate(self, platform):
        m = Module()
        c, n = self.config, self.config.n_pe
        m.submodules.table = table = memory.Memory(shape=unsigned(LAYER_BITS), depth=c.max_layers,
                                                   init=self._init_layers, attrs=COLLISION_UNUSED)
        table_rd, table_wr = table.read_port(), table.write_port()
        m.d.comb += [table_wr.addr.eq(self.table_addr), table_wr.data.eq(self.table_data),
                     table_wr.en.eq(self.table_en)]
        m.submodules.lnzd = lnzd = LeadingNonZeroDetector(n)
        group = group_layout(n)
        m.submodules.groups = groups = fifo.SyncFIFO(width=group.size, depth=_GROUP_CREDITS)

        n_layers = Signal.like(self.n_layers)
        l = Signal(range(c.max_layers + 1))
        step = Signal(range(max(c.act_depth, _WRITEBACK_LATENCY) + 1))  # CLEAR / WRITEBACK / SETTLE counter
        base = Signal(17)                                               # WRITEBACK: r * N

        # The PE links: every PE gets the same control signals and broadcast, each PE from its own copy of the
        # registers (hw/common/fanout.py), so no register drives all the PEs across the die.
        layer, parity = Signal(layer_layout()), Signal()
        fetch_addr, scanning, load_layer = Signal(range(c.act_depth)), Signal(), Signal()
        fsm_layer = Signal()  # in LAYER: the layer word is read, LOAD follows
        flush_en, flush_write, flush_addr = Signal(), Signal(), Signal(range(c.act_depth))  # what the FSM asks now
        flush_en_held, flush_write_held = Signal(), Signal()                                # asked a cycle ago
        flush_addr_held, bias_addr_held = Signal.like(flush_addr), Signal(range(c.bias_depth))
        bcast, bcast_valid = Signal(broadcast_layout()), Signal()                            # decided now
        bcast_held, bcast_sent = Signal(broadcast_layout()), Signal()                        # decided a cycle ago
        act_data = Signal(data.ArrayLayout(act, n))
        pe_freed, pe_busy, pe_idle = Signal(n), Signal(n), Signal(n)
        per_pe = n if n >= _COPIES_FROM else 1  # copies of each link register

        def copied(value, name, enables=None):
            return fanout.registered_copies(m, value, n, name, copies=per_pe, enables=enables)
        # Every copy loads from a register of this unit (or the layer table's read port), so no logic of this unit
        # lies on a path that crosses the die to a PE's copy.
        m.d.sync += [flush_en_held.eq(flush_en), flush_write_held.eq(flush_write), flush_addr_held.eq(flush_addr),
                     bias_addr_held.eq(layer.bias_base + flush_addr)]
        load_copies = copied(fsm_layer, "load_layer")  # high in LOAD: the layer word copies' enables
        copies = {
            "flush_en": copied(flush_en_held, "flush_en"),
            "flush_write": copied(flush_write_held, "flush_write"),
            "flush_addr": copied(flush_addr_held, "flush_addr"),
            "bias_addr": copied(bias_addr_held, "bias_addr"),
            "bcast_valid": copied(bcast_sent, "bcast_valid"),
            "bcast": copied(bcast_held, "bcast"),
            "layer": copied(data.View(layer_layout(), table_rd.data), "layer", enables=load_copies),
            "layer_index": copied(l, "layer_index"),
            "parity": copied(parity, "parity"),
            "act_addr": copied(fetch_addr, "act_addr"),
        }
        for k, pe in enumerate(self.pes):
            m.d.comb += [
                pe.bcast.valid.eq(copies["bcast_valid"][k]),
                pe.bcast.payload.eq(copies["bcast"][k]),
                pe.layer.eq(copies["layer"][k]),
                pe.layer_index.eq(copies["layer_index"][k]),
                pe.parity.eq(copies["parity"][k]),
                pe.act_addr.eq(copies["act_addr"][k]),
                pe.flush_addr.eq(copies["flush_addr"][k]),
                pe.flush_en.eq(copies["flush_en"][k]),
                pe.flush_write.eq(copies["flush_write"][k]),
                pe.bias_addr.eq(copies["bias_addr"][k]),
                act_data[k].eq(pe.act_data),
                pe_freed[k].eq(pe.freed),
                pe_busy[k].eq(pe.busy),
                pe_idle[k].eq(pe.idle),
            ]
        # The broadcast decided in the cycle before, in this unit's register (loaded in every cycle: the decision
        # drives no clock enables); the links carry it from their copies of it a cycle later.
        m.d.sync += [bcast_sent.eq(bcast_valid), bcast_held.eq(bcast)]
        # The PEs' busy and idle bits (registered there) registered again here, so that no path crosses the die
        # into the counters or the FSM; `earlier`: decisions 2 and 3 cycles ago, whose broadcast the PEs' idle bits
        # seen here may not show yet.
        busy_seen, idle_seen, earlier = Signal(n), Signal(n), Signal(2)
        m.d.sync += [busy_seen.eq(pe_busy), idle_seen.eq(pe_idle), earlier.eq(Cat(bcast_sent, earlier[0]))]

        # Fetch: during SCAN the PEs' source activations are read at the local address `fetch_addr` held in every
        # cycle (a cycle later: the links' copies of it; between runs it holds the host's address); a fetch (`fetch`)
        # takes that group (indices fetch_base .. fetch_base + N - 1) if a credit is left. The group is read,
        # registered in the PEs (on ``act_data`` _FETCH_LATENCY cycles after the fetch), registered here with its
        # lanes' in-range bits, and its non-zero lanes go into the group queue; an all-zero group is dropped there
        # (so it costs no broadcast cycle).
        fetch_left = Signal(17)  # indices of the layer not yet fetched
        fetch_more = Signal()    # fetch_left != 0, registered beside it (no 17-bit reduction before a fetch)
        fetch_base = Signal(17)
        credits = Signal(range(_GROUP_CREDITS + 1))
        fetch = Signal()
        m.d.comb += fetch.eq(scanning & fetch_more & (credits != 0))
        with m.If(~self.running):
            m.d.sync += fetch_addr.eq(self.host_addr)
        with m.Elif(load_layer):
            m.d.sync += fetch_addr.eq(0)
        with m.Elif(fetch):
            m.d.sync += fetch_addr.eq(fetch_addr + 1)
        with m.If(fetch):
            m.d.sync += [fetch_base.eq(fetch_base + n), fetch_left.eq(Mux(fetch_left > n, fetch_left - n, 0)),
                         fetch_more.eq(fetch_left > n)]
        in_flight = [(fetch, fetch_left, fetch_base)]  # (valid, left, base) of the fetch 0, 1, ... cycles ago
        for age in range(1, _FETCH_LATENCY + 1):
            in_flight.append(tuple(Signal.like(v, name=f"{what}_{age}")
                                   for v, what in zip(in_flight[0], ("fetched", "left", "base"))))
            m.d.sync += [now.eq(before) for now, before in zip(in_flight[-1], in_flight[-2])]
        got_valid, got_base = Signal(name="got_valid"), Signal.like(fetch_base, name="got_base")
        got_in_range = Signal(n)  # lanes of the group inside the layer, compared a cycle ahead (off the drop decision)
        got_values = Signal.like(act_data)
        fetched, left, fetched_base = in_flight[-1]
        m.d.sync += [got_valid.eq(fetched), got_base.eq(fetched_base), got_values.eq(act_data),
                     got_in_range.eq(Cat(left > k for k in range(n)))]
        got = Signal(group)
        m.d.comb += [got.values.eq(got_values), got.base.eq(got_base)]
        m.d.comb += [got.mask[k].eq((got_values[k] != 0) & got_in_range[k]) for k in range(n)]
        dropped = Signal()
        m.d.comb += [groups.w_data.eq(got), groups.w_en.eq(got_valid & got.mask.any()),
                     dropped.eq(got_valid & ~got.mask.any())]

        # PE credits (not the fetch's group `credits`): held[k] counts the activations decided for PE k that it has
        # not freed as seen here (`freed`, registered again); PE k has a credit while held[k] < fifo_depth. The next is
        # compared for both outcomes of this cycle's decision, which then selects: no adder after the decision.
        d = c.fifo_depth
        freed = Signal(n)
        credit = Signal(n, init=(1 << n) - 1)
        m.d.sync += freed.eq(pe_freed)
        for k in range(n):
            held = Signal(range(d + 1), name=f"held{k}")
            kept = Signal(range(d + 1), name=f"kept{k}")  # held after this cycle's free, before the decision
            m.d.comb += kept.eq(held - freed[k])
            m.d.sync += [held.eq(kept + bcast_valid), credit[k].eq(Mux(bcast_valid, kept + 1 < d, kept < d))]

        # Broadcast: the LNZD picks the head group's lanes in index order, one per cycle while every PE has a
        # credit; the head leaves the queue with its last lane.
        head = data.View(group, groups.r_data)
        taken = Signal(n)  # lanes of the head group already broadcast
        left_lanes = Signal(n)
        offer, consume = Signal(), Signal()
        m.d.comb += [
            left_lanes.eq(head.mask & ~taken),
            lnzd.mask.eq(left_lanes),
            lnzd.values.eq(head.values),
            offer.eq(scanning & groups.r_rdy),
            bcast_valid.eq(offer & credit.all()),
            bcast.value.eq(lnzd.value),
            bcast.index.eq(head.base + lnzd.lane),
            consume.eq(bcast_valid & ((left_lanes & (left_lanes - 1)) == 0)),  # the last lane left goes out
            groups.r_en.eq(consume),
        ]
        with m.If(bcast_valid):
            m.d.sync += taken.eq(Mux(consume, 0, taken | (left_lanes & -left_lanes)))
        m.d.sync += credits.eq(credits - fetch + consume + dropped)

        # Counters, from registered signals: the window opens two cycles after the first decision, as the PEs' busy
        # bits seen here lag theirs.
        started, window, last = Signal(), Signal(COUNTER_BITS), Signal(COUNTER_BITS)
        window_now = Signal(COUNTER_BITS)
        stalled = Signal(n)
        m.d.comb += window_now.eq(window + 1)
        m.d.sync += stalled.eq(Mux(offer, ~credit, 0))
        with m.If(self.running):
            m.d.sync += self.cycles.eq(self.cycles + 1)
            for k in range(n if self.pe_counters else 0):
                m.d.sync += [self.busy_cycles[k].eq(self.busy_cycles[k] + busy_seen[k]),
                             self.stall_cycles[k].eq(self.stall_cycles[k] + stalled[k])]
        with m.If(started | earlier[0]):
            m.d.sync += [started.eq(1), window.eq(window_now)]
            with m.If(busy_seen.any()):
                m.d.sync += last.eq(window_now)

        m.d.comb += table_rd.addr.eq(l)
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [n_layers.eq(self.n_layers), l.eq(0), step.eq(0), parity.eq(0),
                                 self.done.eq(0), self.cycles.eq(0), self.compute_cycles.eq(0)]
                    if self.pe_counters:
                        m.d.sync += [self.busy_cycles.eq(0), self.stall_cycles.eq(0)]
                    m.next = "CLEAR"
            with m.State("CLEAR"):
                m.d.comb += [flush_en.eq(1), flush_addr.eq(step)]
                m.d.sync += step.eq(step + 1)
                with m.If(step == c.act_depth - 1):
                    m.d.sync += step.eq(0)
                    m.next = "NEXT"
            with m.State("NEXT"):
                with m.If(l == n_layers):
                    m.d.sync += self.done.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.next = "LAYER"
            with m.State("LAYER"):
                m.next = "LOAD"
            with m.State("LOAD"):
                word = data.View(layer_layout(), table_rd.data)
                m.d.comb += load_layer.eq(1)
                m.d.sync += [layer.eq(word), fetch_base.eq(0), fetch_left.eq(word.in_len),
                             fetch_more.eq(word.in_len != 0), credits.eq(_GROUP_CREDITS), taken.eq(0), started.eq(0),
                             window.eq(0), last.eq(0)]
                m.next = "SCAN"
            with m.State("SCAN"):
                m.d.comb += scanning.eq(1)
                with m.If(~fetch_more & ~Cat(v for v, _, _ in in_flight[1:]).any() & ~got_valid
                          & (groups.level == 0)):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(idle_seen.all() & ~bcast_sent & (earlier == 0)):
                    m.d.sync += [step.eq(0), base.eq(0), self.compute_cycles.eq(self.compute_cycles + last),
                                 started.eq(0)]
                    m.next = "WRITEBACK"
            with m.State("WRITEBACK"):
                m.d.comb += [flush_en.eq(1), flush_write.eq(1), flush_addr.eq(step)]
                m.d.sync += [step.eq(step + 1), base.eq(base + n)]
                with m.If(base + n >= layer.out_len):
                    m.d.sync += step.eq(0)
                    m.next = "SETTLE"
            with m.State("SETTLE"):
                m.d.sync += step.eq(step + 1)
                with m.If(step == _WRITEBACK_LATENCY - 1):
                    m.d.sync += [step.eq(0), l.eq(l + 1), parity.eq(~parity)]
                    m.next = "NEXT"
        m.d.comb += [self.running.eq(~fsm.ongoing("IDLE")), fsm_layer.eq(fsm.ongoing("LAYER")),
                     table_rd.en.eq(fsm_layer)]
        return m


def group_layout(n: int) -> data.StructLayout:
    """A group of the scan in the group queue: the ``n`` source activations at one local address, which of their
    lanes are non-zero and in the layer (``mask``), and the index of lane 0 (``base``)."""
    return data.StructLayout({"values": data.ArrayLayout(act, n), "mask": n, "base": 17})

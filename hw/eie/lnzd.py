"""Leading non-zero detection: a quadtree that finds the first set lane."""

from amaranth import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .layouts import act

__all__ = ["LeadingNonZeroDetector"]

FAN_IN = 4


class LeadingNonZeroDetector(wiring.Component):
    """Finds the lowest lane ``k`` with ``mask[k]`` set among ``n`` lanes and passes on ``values[k]``.

    A tree of nodes, one per 4 lanes, then one per 4 nodes, up to the root (the paper's LNZD quadtree, whose root
    is the CCU): each node forwards its first child that has a set lane. Purely combinational, depth
    ``ceil(log4(n))`` 4-way priority multiplexers.

    Ports
    -----
    mask : In(n)
        The lanes that hold a candidate (non-zero, in range, not yet broadcast).
    values : In(ArrayLayout(act, n))
        The lanes' activations.
    valid : Out(1)
        Some lane is set.
    lane : Out(range(n)), value : Out(act)
        The first set lane and its activation (meaningful while ``valid``).
    """

    def __init__(self, n: int):
        self.n = n
        super().__init__({
            "mask": In(n),
            "values": In(data.ArrayLayout(act, n)),
            "valid": Out(1),
            "lane": Out(range(n)),
            "value": Out(act),
        })

    def elaborate(self, platform):
        m = Module()
        level = [(self.mask[k], k, self.values[k]) for k in range(self.n)]
        depth = 0
        while len(level) > 1:
            nodes = []
            for i in range(0, len(level), FAN_IN):
                children = level[i:i + FAN_IN]
                valid = Signal(name=f"node{depth}_{i // FAN_IN}_valid")
                lane = Signal(range(self.n), name=f"node{depth}_{i // FAN_IN}_lane")
                value = Signal(act, name=f"node{depth}_{i // FAN_IN}_value")
                pick_lane, pick_value = children[-1][1], children[-1][2]
                for child_valid, child_lane, child_value in reversed(children[:-1]):
                    pick_lane = Mux(child_valid, child_lane, pick_lane)
                    pick_value = Mux(child_valid, child_value, pick_value)
                m.d.comb += [valid.eq(_any(children)), lane.eq(pick_lane), value.eq(pick_value)]
                nodes.append((valid, lane, value))
            level = nodes
            depth += 1
        root_valid, root_lane, root_value = level[0]
        m.d.comb += [self.valid.eq(root_valid), self.lane.eq(root_lane), self.value.eq(root_value)]
        return m


def _any(children):
    """OR of the children's valid bits."""
    result = children[0][0]
    for child in children[1:]:
        result = result | child[0]
    return result

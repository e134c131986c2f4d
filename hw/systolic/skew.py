"""Input skew and output de-skew: per-lane delay lines that turn a vector into a diagonal wavefront and back."""

from amaranth import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["InputSkew", "OutputDeskew"]


class _LaneDelays(wiring.Component):
    """Lane ``k`` of ``i`` appears on lane ``k`` of ``o`` after ``delays[k]`` clock cycles (0 is a wire)."""

    def __init__(self, lanes: int, shape, delays):
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"{type(self).__name__} lanes must be a positive integer, not {lanes!r}")
        self.lanes, self.shape, self.delays = lanes, shape, list(delays)
        layout = data.ArrayLayout(shape, lanes)
        super().__init__({"i": In(layout), "o": Out(layout)})

    def elaborate(self, platform):
        m = Module()
        for lane, delay in enumerate(self.delays):
            value = self.i[lane]
            for stage in range(delay):
                register = Signal(self.shape, name=f"lane{lane}_stage{stage}")
                m.d.sync += register.eq(value)
                value = register
            m.d.comb += self.o[lane].eq(value)
        return m


class InputSkew(_LaneDelays):
    """Delays lane ``k`` by ``k`` cycles, so that array row ``k`` sees an input vector ``k`` cycles after row 0.

    Ports: ``i``, ``o`` : ``ArrayLayout(shape, lanes)``. Latency: lane ``k`` takes ``k`` cycles (lane 0 is a wire).
    """

    def __init__(self, lanes: int, shape):
        super().__init__(lanes, shape, range(lanes))


class OutputDeskew(_LaneDelays):
    """Delays lane ``k`` by ``lanes - 1 - k`` cycles, undoing the one-cycle-per-column skew of the array's outputs,
    so all lanes of a result vector leave together.

    Ports: ``i``, ``o`` : ``ArrayLayout(shape, lanes)``. Latency: lane ``k`` takes ``lanes - 1 - k`` cycles.
    """

    def __init__(self, lanes: int, shape):
        super().__init__(lanes, shape, reversed(range(lanes)))

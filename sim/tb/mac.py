"""Testbench bodies for :class:`sparq.hw.common.mac.MACCell` against :mod:`sparq.sim.golden.mac`."""

import random

from ..golden.mac import accumulate, mac
from ..scoreboard import assert_words_equal


def _operand(rng: random.Random, width: int) -> int:
    """A random signed operand, with the extremes (the overflow-makers) drawn a quarter of the time."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    return rng.choice((lo, hi, lo + 1, -1, 0, 1)) if rng.random() < 0.25 else rng.randint(lo, hi)


async def random_mac(bench, *, seed: int, n: int, a_width: int, b_width: int, acc_width: int, saturate: bool,
                     pipeline: bool = False, en_probability: float = 0.8):
    """``n`` cycles of random ``a``, ``b``, ``c`` and ``en``; ``y`` and ``overflow`` checked after every edge. With
    ``pipeline`` the update at an edge takes ``a``, ``b`` and ``en`` of two cycles before and ``c`` of this one."""
    rng = random.Random(seed)
    widths = dict(a_width=a_width, b_width=b_width, acc_width=acc_width, saturate=saturate)
    await bench.reset()
    y_prev, ovf_prev = 0, 0
    operands = [(0, 0, False)] * 2  # a, b, en of the two cycles before (pipeline)
    expected_y, expected_ovf, got_y, got_ovf = [], [], [], []
    for _ in range(n):
        a, b, c = _operand(rng, a_width), _operand(rng, b_width), _operand(rng, acc_width)
        en = rng.random() < en_probability
        for port, value in (("a", a), ("b", b), ("c", c), ("en", int(en))):
            bench.set(port, value)
        await bench.tick()
        if pipeline:
            operands.append((a, b, en))
            a, b, en = operands.pop(0)
        if en:
            y, ovf = mac(a, b, c, **widths)
            y_prev, ovf_prev = int(y), int(ovf)
        expected_y.append(y_prev)
        expected_ovf.append(ovf_prev)
        got_y.append(bench.get("y"))
        got_ovf.append(bench.get("overflow"))
    assert_words_equal(expected_y, got_y, what="y")
    assert_words_equal(expected_ovf, got_ovf, what="overflow")
    return {"cycles": bench.cycle}


async def accumulate_sequence(bench, *, a, b, start: int = 0, a_width: int, b_width: int, acc_width: int,
                              saturate: bool):
    """Load ``start``, then feed ``y`` back into ``c`` and accumulate ``a[k] * b[k]``; every partial sum checked."""
    widths = dict(a_width=a_width, b_width=b_width, acc_width=acc_width, saturate=saturate)
    await bench.reset()
    for port, value in (("a", 0), ("b", 0), ("c", start), ("en", 1)):
        bench.set(port, value)
    await bench.tick()
    got = []
    for ak, bk in zip(a, b):
        bench.set("a", ak)
        bench.set("b", bk)
        bench.set("c", bench.get("y"))
        await bench.tick()
        got.append(bench.get("y"))
    assert_words_equal(accumulate(a, b, start=start, **widths), got, what="accumulated y")
    return {"final": got[-1] if got else start}


def overflow_cases(a_width: int, b_width: int, acc_width: int) -> dict[str, dict]:
    """Directed accumulations that start near an end of the accumulator's range and cross it with extreme products.

    Each case is the keyword arguments ``a``, ``b``, ``start`` of :func:`accumulate_sequence`.
    """
    a_min, a_max = -(1 << (a_width - 1)), (1 << (a_width - 1)) - 1
    b_min, b_max = -(1 << (b_width - 1)), (1 << (b_width - 1)) - 1
    lo, hi = -(1 << (acc_width - 1)), (1 << (acc_width - 1)) - 1
    big = a_min * b_min  # the largest product magnitude
    return {
        "up_past_max": dict(a=[a_min] * 6, b=[b_min] * 6, start=max(lo, hi - 2 * big)),
        "down_past_min": dict(a=[a_min] * 6, b=[b_max] * 6, start=min(hi, lo + 2 * big)),
        "up_then_down": dict(a=[a_max] * 4 + [a_min] * 8, b=[b_max] * 12, start=max(lo, hi - big)),
        "zero_products_at_max": dict(a=[0, a_max, a_min, 0], b=[b_min, 0, 0, b_max], start=hi),
    }


async def free_running(bench, *, cycles: int):
    """Reset, then let the design run ``cycles`` clock cycles with no Python in the loop; return its ``y``.

    The stimulus comes from inside the design (``sparq.sim.stimulus.FreeRunningMAC``), so a timed run of this body
    measures the simulator's own speed.
    """
    await bench.reset()
    await bench.tick(cycles)
    return {"y": bench.get("y")}

"""sparq.sim.eie.cycle: the broadcast recurrence against a cycle-by-cycle reference, hand examples, image plumbing."""

from collections import deque

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sparq.compiler.eie import LayerSpec, lower
from sparq.formats.eie import EieConfig
from sparq.sim.eie import Golden, run, simulate
from sparq.sim.eie.cycle import layer_costs
from sparq.sim.scoreboard import assert_words_equal


def _cycle_by_cycle(costs, depth):
    """Reference: step every cycle. At the start of cycle t each PE removes the activation it finished in cycle
    t - 1; the CCU pushes if no FIFO then holds ``depth`` activations; each idle PE starts the oldest activation
    pushed before t and works on it for its cost, keeping it in the FIFO meanwhile."""
    n_events, n_pe = costs.shape
    fifos = [deque() for _ in range(n_pe)]
    working = [False] * n_pe
    busy_until = [0] * n_pe
    busy, stall = [0] * n_pe, [0] * n_pe
    pushed, t = 0, 0
    while pushed < n_events or any(fifos):
        for k in range(n_pe):
            if working[k] and busy_until[k] <= t:
                fifos[k].popleft()
                working[k] = False
        if pushed < n_events:
            full = [len(f) >= depth for f in fifos]
            if any(full):
                stall = [s + f for s, f in zip(stall, full)]
            else:
                for f in fifos:
                    f.append((pushed, t))
                pushed += 1
        for k in range(n_pe):
            if not working[k] and fifos[k] and fifos[k][0][1] < t:
                busy_until[k] = t + int(costs[fifos[k][0][0], k])
                working[k] = True
            busy[k] += working[k] and busy_until[k] > t
        t += 1
    return max(busy_until, default=0), busy, stall


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 30), st.integers(1, 6), st.integers(1, 5), st.integers(0, 2 ** 32 - 1))
def test_recurrence_matches_the_cycle_by_cycle_reference(n_events, n_pe, depth, seed):
    costs = np.random.default_rng(seed).integers(1, 9, (n_events, n_pe))
    total, busy, stall = _cycle_by_cycle(costs, depth)
    stats = simulate(costs, depth)
    assert stats.total == total
    assert_words_equal(busy, stats.busy, what="busy cycles")
    assert_words_equal(stall, stats.stall, what="stall cycles")
    assert_words_equal(np.full(n_pe, total) - busy, stats.starve, what="starve cycles")


def test_one_pe_hand_example():
    # Broadcasts at 0, 1, 2; starts at 1 (3 cycles), 4 (1), 5 (2): done at 7, idle only in cycle 0.
    stats = simulate([[3], [1], [2]], fifo_depth=8)
    assert (stats.total, stats.busy.tolist(), stats.starve.tolist(), stats.stall.tolist()) == (7, [6], [1], [0])
    assert stats.load_efficiency == 6 / 7


def test_depth_one_runs_the_pes_in_lock_step():
    # Depth 1: event e is broadcast only once every PE has finished event e-1.
    # Broadcasts at 0, 5, 10; both PEs start at 1, 6, 11; PE0 ends at 15. Depth 8: PE0 ends at 1 + 9.
    costs = [[4, 1], [1, 4], [4, 1]]
    stats = simulate(costs, fifo_depth=1)
    deep = simulate(costs, fifo_depth=8)
    assert (stats.total, deep.total) == (15, 10)
    assert stats.stall.tolist() == [5, 5] and deep.stall.tolist() == [0, 0]
    assert stats.load_efficiency == 15 / 30 < deep.load_efficiency == 15 / 20


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 8), st.integers(0, 2 ** 32 - 1))
def test_a_deeper_fifo_never_takes_longer(n_events, n_pe, seed):
    costs = np.random.default_rng(seed).integers(1, 12, (n_events, n_pe))
    totals = [simulate(costs, depth).total for depth in (1, 2, 3, 8, 64)]
    assert totals == sorted(totals, reverse=True)
    assert totals[-1] == 1 + costs.sum(axis=0).max()  # deep enough: the busiest PE alone sets the time


def test_run_on_an_image_counts_each_entry_and_each_empty_column_once():
    rng = np.random.default_rng(2)
    codes = [(rng.random((40, 30)) < 0.1) * 3, (rng.random((12, 40)) < 0.3) * 2]
    image = lower([LayerSpec(c, [0.0, 0.1, 0.2, 0.3]) for c in codes], EieConfig(n_pe=4, fifo_depth=4))
    a = rng.integers(1, 200, 30) * (rng.random(30) < 0.5)
    stats = run(image, a)
    trace = Golden(image).run(a)
    for l, layer_stats in enumerate(stats):
        active = np.flatnonzero(trace.acts[l])
        entries = np.diff(image.pointers(l), axis=1)[:, active]
        assert_words_equal(np.maximum(entries, 1).sum(axis=1), layer_stats.busy, what=f"layer {l} busy")
        assert layer_costs(image, l, trace.acts[l]).shape == (len(active), 4)
    assert run(image, a, fifo_depth=1)[0].total >= stats[0].total

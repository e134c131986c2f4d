"""Testbench bodies for the Winograd path: the transform units (``sparq.hw.systolic.winograd``) against
``sparq.formats.systolic``'s transforms, and the Winograd build of the accelerator on compiled convolutions and on the
digits CNN, every output byte against the golden model."""

import random

import numpy as np

from sparq.formats.systolic import winograd_input_transform, winograd_output_transform

from ..bench import StreamSink, StreamSource
from ..scoreboard import assert_words_equal
from .systolic import _join, _lanes, run_network_calls


def transform_tiles(seed: int, tiles: int, lanes: int, width: int) -> np.ndarray:
    """Directed tiles, then random ones: ``(tiles, lanes, 4, 4)`` int64 values of ``width`` bits.

    Directed: all minimum, all maximum, and the two checkerboards of minimum and maximum (which reach the extremes
    of both transforms' outputs), then single non-zero elements (one per position, to check the routing).
    """
    rng = np.random.default_rng(seed)
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    board = (np.indices((4, 4)).sum(axis=0) % 2).astype(bool)
    directed = [np.full((4, 4), low), np.full((4, 4), high), np.where(board, low, high), np.where(board, high, low)]
    for k in range(16):
        one = np.zeros((4, 4), dtype=np.int64)
        one.flat[k] = high if k % 2 else low
        directed.append(one)
    out = rng.integers(low, high + 1, (max(tiles, len(directed)), lanes, 4, 4))
    for k, tile in enumerate(directed):
        out[k, k % lanes] = tile
    return out


async def random_transform(bench, *, output: bool, seed: int, tiles: int, lanes: int, prefix: str = "",
                           gap_probability: float = 0.3, stall_probability: float = 0.3):
    """``tiles`` tiles (:func:`transform_tiles`) streamed into an InputTransform (``output=False``: int8 in, 10-bit
    out) or an OutputTransform (``output=True``: int32 in and out, wrap-around) with random gaps and back-pressure;
    every output word checked against ``sparq.formats.systolic.winograd_input_transform`` / ``..._output_transform``."""
    in_width, out_width = (32, 32) if output else (8, 10)
    x = transform_tiles(seed, tiles, lanes, in_width)
    if output:
        y = winograd_output_transform(x)
        y = (y + (1 << 31)) % (1 << 32) - (1 << 31)
    else:
        y = winograd_input_transform(x)
    words_in = [_join(x[t, :, i, j], in_width) for t in range(len(x)) for i in range(4) for j in range(4)]
    side = y.shape[-1]
    rng = random.Random(seed)
    source = StreamSource(f"{prefix}i", words_in, rng=rng, gap_probability=gap_probability)
    sink = StreamSink(f"{prefix}o", len(x) * side * side, rng=rng, stall_probability=stall_probability)
    await bench.reset()
    await bench.run([source, sink], until=lambda: sink.done, max_cycles=100 * len(words_in) + 100)
    got = np.array([_lanes(raw, lanes, out_width) for raw in sink.items])
    expected = y.transpose(0, 2, 3, 1).reshape(-1, lanes)  # (tile, a, b) x lane
    assert_words_equal(expected.ravel(), got.ravel(), what="transform output lanes (tile, a, b, lane)")
    return {"tiles": len(x), "cycles": bench.cycle}


async def run_digits_cnn(bench, *, images: int, size: int, seed: int = 0, gap_probability: float = 0.0,
                         stall_probability: float = 0.0):
    """The digits CNN compiled with ``winograd=True`` for ``sparq.sim.systolic.winograd.winograd_config(size)``, on the
    first ``images`` test images with every device call on the RTL and checked against the golden model; also
    checks that the int8 logits equal the im2col path's (golden). Returns accuracy and summed counters."""
    from sparq.compiler.datasets import load_digits_split
    from sparq.compiler.models import load_shipped
    from sparq.compiler.systolic import compile_network

    from ..systolic.golden import run_network
    from ..systolic.winograd import winograd_config
    x_train, _, x_test, y_test = load_digits_split()
    x, y = x_test[:images], y_test[:images]
    model = load_shipped("digits_cnn")
    config = winograd_config(size)
    network = compile_network(model, x_train, config, name="digits_cnn", winograd=True)
    logits, count, totals = await run_network_calls(bench, network, x, name="digits_cnn", rng=random.Random(seed),
                                                    gap_probability=gap_probability,
                                                    stall_probability=stall_probability)
    im2col_logits, _ = run_network(compile_network(model, x_train, config, name="digits_cnn"), x)
    assert_words_equal(im2col_logits.ravel(), logits.ravel(), what="logits, Winograd (RTL) against im2col (golden)")
    return {"int8_accuracy": float((logits.argmax(1) == y).mean()), "images": images, "device_calls": count,
            "batch": network.batch, **totals}

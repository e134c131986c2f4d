"""Compression speed on a layer the size of AlexNet fc6 (9216 inputs x 4096 outputs, 37.7 M weights).

Times the three Deep Compression steps on one synthetic float32 layer (seeded Gaussian weights):

* ``prune``: magnitude pruning to 9 % kept (AlexNet fc6 in the paper) and zeroing the pruned weights;
* ``share``: 1-D k-means weight sharing into 16 clusters (4-bit codes, zero kept as code 0);
* ``huffman``: relative-index encoding (5-bit indices, padding entries) and Huffman coding of the code and index
  streams.

The total of the three is the number to compare with the 10 s aim. The Huffman streams are then decoded and checked
against their input; that check is timed and printed too but is not part of the total. Prints a table and writes
``bench/results/compress_speed.json``.

    .venv/bin/python bench/compress_speed.py [--rows 4096] [--cols 9216] [--kept 0.09] [--bits 4] [--index-bits 5]
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from sparq.compiler.huffman import huffman_decode, huffman_encode
from sparq.compiler.prune import magnitude_mask
from sparq.compiler.share import share_weights
from sparq.compiler.sparse import encode_relative

RESULTS = Path(__file__).resolve().parent / "results" / "compress_speed.json"


def timed(step):
    """``(result, seconds)`` of calling ``step()``."""
    start = time.perf_counter()
    result = step()
    return result, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096, help="output rows of the layer (default 4096)")
    parser.add_argument("--cols", type=int, default=9216, help="input columns of the layer (default 9216)")
    parser.add_argument("--kept", type=float, default=0.09, help="fraction of weights kept (default 0.09)")
    parser.add_argument("--bits", type=int, default=4, help="bits per shared-weight code (default 4: 16 clusters)")
    parser.add_argument("--index-bits", type=int, default=5, help="bits per relative index (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic weights")
    args = parser.parse_args()

    weight = np.random.default_rng(args.seed).standard_normal((args.rows, args.cols), dtype=np.float32) * 0.01

    def prune():
        mask = magnitude_mask(weight, 1.0 - args.kept)
        return np.where(mask, weight, np.float32(0.0))

    pruned, t_prune = timed(prune)
    shared, t_share = timed(lambda: share_weights(pruned, args.bits))

    def huffman():
        index = encode_relative(shared.codes, args.index_bits)
        return index, huffman_encode(index.codes, 2 ** args.bits), huffman_encode(index.gaps, 2 ** args.index_bits)

    (index, code_stream, gap_stream), t_huffman = timed(huffman)

    def decode_check():
        return (np.array_equal(huffman_decode(code_stream), index.codes)
                and np.array_equal(huffman_decode(gap_stream), index.gaps))

    round_trip, t_decode = timed(decode_check)
    if not round_trip:
        raise SystemExit("Huffman round trip failed")

    steps = {"prune": t_prune, "share": t_share, "huffman": t_huffman}
    total = sum(steps.values())
    details = {
        "prune": f"{np.count_nonzero(pruned):,} of {weight.size:,} weights kept",
        "share": f"{2 ** args.bits} clusters, {len(np.unique(shared.codes))} codes used",
        "huffman": f"{len(index.codes):,} entries ({index.n_padding:,} padding), {code_stream.bits_per_symbol:.2f} "
                   f"bits/code, {gap_stream.bits_per_symbol:.2f} bits/index",
    }
    compressed = code_stream.total_bytes + gap_stream.total_bytes + 4 * len(shared.codebook)
    print(f"layer {args.rows} x {args.cols} ({weight.size:,} weights, {weight.nbytes / 2**20:.0f} MiB float32)")
    print(f"{'step':10} {'seconds':>8}  detail")
    for name, seconds in steps.items():
        print(f"{name:10} {seconds:8.2f}  {details[name]}")
    print(f"{'total':10} {total:8.2f}  aim: under 10 s")
    print(f"{'decode':10} {t_decode:8.2f}  Huffman decode and check of both streams (not in the total)")
    print(f"compressed size {compressed / 2**20:.2f} MiB: {weight.nbytes / compressed:.1f}x smaller")

    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": platform.machine(), "python": platform.python_version(), "numpy": np.__version__,
        "layer": {"rows": args.rows, "cols": args.cols, "weights": int(weight.size), "kept": args.kept,
                  "bits": args.bits, "index_bits": args.index_bits, "seed": args.seed},
        "seconds": {**{k: round(v, 3) for k, v in steps.items()}, "total": round(total, 3),
                    "decode_check": round(t_decode, 3)},
        "result": {"kept_weights": int(np.count_nonzero(pruned)), "entries": len(index.codes),
                   "padding_entries": index.n_padding, "bits_per_code": round(code_stream.bits_per_symbol, 4),
                   "bits_per_index": round(gap_stream.bits_per_symbol, 4), "compressed_bytes": int(compressed),
                   "ratio": round(weight.nbytes / compressed, 2)},
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

"""The per-layer compression report, in the shape of the Deep Compression paper's tables.

Storage is counted in bits, per layer, for four formats of the same weights:

* ``original``: dense float32 weights;
* ``pruned``: each relative-index entry (:mod:`sparq.compiler.sparse`, padding included) as a float32 value plus an
  ``index_bits`` relative index;
* ``quantized`` (pruning + quantization): each entry as a ``weight_bits`` code plus the relative index, plus the
  float32 codebook;
* ``huffman`` (pruning + quantization + Huffman): the Huffman-coded code stream and index stream, their code tables
  (one byte per symbol) and the float32 codebook.

Every format also stores the layer's float32 biases, which are not compressed, so the ratios are of whole layers.
"""

import json
from pathlib import Path

import numpy as np

from .huffman import huffman_decode, huffman_encode
from .sparse import decode_relative, encode_relative

__all__ = ["FORMATS", "layer_storage", "total_storage", "print_report", "write_report"]

FORMATS = ("original", "pruned", "quantized", "huffman")
FLOAT_BITS = 32


def layer_storage(name, shared, bias_size, index_bits):
    """The report row of one shared layer: sizes, kept fraction, bits per weight and index, bits of each format.

    ``shared`` is a ``keep_zero`` :class:`~sparq.compiler.share.SharedWeights`. The Huffman streams are decoded again and
    checked against their input, so a row is only produced for a coding that round-trips exactly.
    """
    index = encode_relative(shared.codes, index_bits)
    if not np.array_equal(decode_relative(index), shared.codes):
        raise AssertionError(f"layer {name!r}: the relative-index encoding does not round-trip")
    streams = {"codes": huffman_encode(index.codes, 2 ** shared.bits),
               "indices": huffman_encode(index.gaps, 2 ** index_bits)}
    for what, symbols in (("codes", index.codes), ("indices", index.gaps)):
        if not np.array_equal(huffman_decode(streams[what]), symbols):
            raise AssertionError(f"layer {name!r}: the Huffman coding of the {what} does not round-trip")
    weights, entries = int(shared.codes.size), len(index.codes)
    fixed = FLOAT_BITS * bias_size
    codebook = FLOAT_BITS * len(shared.codebook)
    bits = {
        "original": fixed + FLOAT_BITS * weights,
        "pruned": fixed + entries * (FLOAT_BITS + index_bits),
        "quantized": fixed + codebook + entries * (shared.bits + index_bits),
        "huffman": fixed + codebook + sum(s.n_bits + 8 * s.table_bytes for s in streams.values()),
    }
    return {
        "name": name, "shape": list(shared.codes.shape), "weights": weights, "biases": int(bias_size),
        "kept": int(np.count_nonzero(shared.codes)), "kept_percent": 100.0 * np.count_nonzero(shared.codes) / weights,
        "entries": entries, "padding_entries": index.n_padding,
        "weight_bits": shared.bits, "index_bits": int(index_bits),
        "huffman_weight_bits": streams["codes"].bits_per_symbol,
        "huffman_index_bits": streams["indices"].bits_per_symbol,
        "bits": bits, "bytes": {f: bits[f] / 8 for f in FORMATS},
        "ratio": {f: bits["original"] / bits[f] for f in FORMATS[1:]},
    }


def total_storage(rows):
    """The total row over the layer rows: summed sizes and bits, entry-weighted bits per symbol, overall ratios."""
    bits = {f: sum(r["bits"][f] for r in rows) for f in FORMATS}
    entries = sum(r["entries"] for r in rows)
    weights = sum(r["weights"] for r in rows)
    kept = sum(r["kept"] for r in rows)
    weight_bits_only = sum(r["bits"]["original"] - FLOAT_BITS * r["biases"] for r in rows)
    huffman_weights_only = sum(r["bits"]["huffman"] - FLOAT_BITS * r["biases"] for r in rows)
    return {
        "name": "total", "weights": weights, "biases": sum(r["biases"] for r in rows), "kept": kept,
        "kept_percent": 100.0 * kept / weights, "entries": entries,
        "padding_entries": sum(r["padding_entries"] for r in rows),
        "huffman_weight_bits": sum(r["huffman_weight_bits"] * r["entries"] for r in rows) / entries,
        "huffman_index_bits": sum(r["huffman_index_bits"] * r["entries"] for r in rows) / entries,
        "bits": bits, "bytes": {f: bits[f] / 8 for f in FORMATS},
        "ratio": {f: bits["original"] / bits[f] for f in FORMATS[1:]},
        "ratio_weights_only": weight_bits_only / huffman_weights_only,
    }


def print_report(report, console=None):
    """Print ``report`` (layers, total and accuracies) as a table in the shape of the paper's Table 2."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=None if Console().is_terminal else 120)
    table = Table(title=f"Deep Compression of {report['model']} (P: pruned, Q: quantized, H: Huffman)")
    for column in ("layer", "weights", "kept", "weight bits Q / H", "index bits Q / H", "bytes", "bytes P+Q+H",
                   "ratio P", "ratio P+Q", "ratio P+Q+H"):
        table.add_column(column, justify="left" if column == "layer" else "right")
    for row in (*report["layers"], report["total"]):
        table.add_row(row["name"], f"{row['weights']:,}", f"{row['kept_percent']:.1f}%",
                      f"{row.get('weight_bits', '')} / {row['huffman_weight_bits']:.2f}",
                      f"{row.get('index_bits', '')} / {row['huffman_index_bits']:.2f}",
                      f"{row['bytes']['original']:,.0f}", f"{row['bytes']['huffman']:,.0f}",
                      *(f"{row['ratio'][f]:.1f}x" for f in FORMATS[1:]), end_section=row is report["layers"][-1])
    console.print(table)
    accuracy = report["accuracy"]
    if accuracy:
        console.print(f"test accuracy ({report.get('mode', 'retrained')}): " +
                      ", ".join(f"{stage} {100 * value:.2f}%" for stage, value in accuracy.items()))
    else:
        console.print(report.get("accuracy_note", "accuracy was not measured"))
    scan = report.get("sensitivity")
    if scan:
        console.print(f"sparsity chosen per layer by the sensitivity scan (each layer within {scan['max_drop']:g} "
                      f"points of {100 * scan['baseline']:.2f}% on {scan['validation_samples']} validation samples): "
                      + ", ".join(f"{name} {100 * value:.0f}%" for name, value in scan["chosen"].items()))
    drift = report.get("output_drift")
    if drift:
        console.print(f"outputs against the float model on {drift['samples']:,} samples: relative RMS error "
                      f"{100 * drift['relative_rms_error']:.2f}%, top-1 agreement {100 * drift['top1_agreement']:.2f}%")
    console.print(f"biases are stored as float32 in every format; weights alone compress "
                  f"{report['total']['ratio_weights_only']:.1f}x")


def write_report(report, path):
    """Write ``report`` as JSON to ``path``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=2) + "\n")

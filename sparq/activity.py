"""What each accelerator did on a run, counted from the bit-exact golden models: MACs performed and useful, and
memory words read and written per memory. The energy model (:mod:`sparq.energy`) multiplies these by pJ per operation.

The RTL's performance counters give cycles and, for EIE, per-PE busy/starve/stall; neither design counts its memory
accesses, so those counts come from replaying the same image or program in the golden model, which the RTL matches
bit for bit (and so performs the same accesses, by the access rules written below).

EIE, per layer with input ``a``, for every non-zero ``a_j`` and every PE ``k`` (:func:`eie_activity`):

* ``entries``: the PE issues every entry of its slice of column ``j``, padding included; each is one 16x16-bit
  multiply and one 40-bit accumulate (a padding entry multiplies by codebook entry 0 = 0: performed, not useful).
* ``useful_macs``: the entries whose code is not 0 (a non-zero weight times a non-zero activation).
* ``ptr_reads``: two pointer words, ``p[j]`` and ``p[j+1]`` (even and odd bank, same cycle).
* ``spmat_words``: the 64-bit words spanned by the column's entries (one word per 8 entries in steady state).
* ``codebook_reads`` and ``acc_reads``/``acc_writes``: one each per entry (lookup, accumulator read-modify-write).
* ``act_reads``: every source activation of the layer is read once by the leading non-zero detector;
  ``act_writes`` and ``bias_reads``: one per output row.

Systolic, per executed instruction (:func:`systolic_activity`), with ``R x C`` the array and ``L = R`` lanes:

* MATMUL of ``n`` rows: ``n`` unified-buffer reads (one ``L``-byte word per row), ``n * R * C`` MAC slots (the
  array multiplies every slot, zero weights and padding included), ``n * C`` accumulator writes and, when
  accumulating, ``n * C`` accumulator reads.
* LOAD_WEIGHTS: ``R`` weight-buffer reads. ACTIVATE of ``n`` rows: the 7-word parameter record, ``n * C``
  accumulator reads, ``n`` unified-buffer writes. WRITE_HOST of ``n``: ``n`` unified-buffer reads.
* READ_WEIGHTS of ``n``: ``n`` words from the host, written to the weight buffer (off-chip traffic: the weights are
  streamed in on every call); READ_HOST of ``n``: ``n`` input words from the host, written to the unified buffer.
* Winograd builds: a MATMUL ``from_tb`` reads its ``n`` rows from the transform buffer instead; a wide LOAD_WEIGHTS
  reads ``2 R`` words; TRANSFORM_IN of ``n`` tiles reads ``16 n`` unified-buffer words and writes ``16 n``
  transform-buffer words; TRANSFORM_OUT of ``n`` tiles reads ``16 n * C`` accumulators and writes ``4 n * C``.
  The transforms' own additions are not counted.
"""

import numpy as np

__all__ = ["eie_activity", "systolic_activity", "layer_macs"]


def eie_activity(golden, trace):
    """Counts for one EIE run: ``golden`` a :class:`sparq.sim.eie.Golden`, ``trace`` its :class:`~sparq.sim.eie.golden.Trace`."""
    image = golden.image
    counts = dict.fromkeys(("entries", "useful_macs", "padding_entries", "ptr_reads", "spmat_words",
                            "codebook_reads", "acc_reads", "acc_writes", "act_reads", "act_writes", "bias_reads",
                            "broadcasts"), 0)
    for l, (layer, a) in enumerate(zip(golden.layers, trace.acts)):
        entry = layer.entry
        nonzero = np.flatnonzero(a)
        read = a[layer.col] != 0
        issued = int(read.sum())
        useful = int((read & (layer.code != 0)).sum())
        p = image.pointers(l)[:, nonzero]
        q = image.pointers(l)[:, nonzero + 1]
        spans = np.where(q > p, (q - 1) // 8 - p // 8 + 1, 0)
        counts["entries"] += issued
        counts["useful_macs"] += useful
        counts["padding_entries"] += issued - useful
        counts["ptr_reads"] += 2 * image.config.n_pe * len(nonzero)
        counts["spmat_words"] += int(spans.sum())
        counts["codebook_reads"] += issued
        counts["acc_reads"] += issued
        counts["acc_writes"] += issued
        counts["act_reads"] += entry.in_len
        counts["act_writes"] += entry.out_len
        counts["bias_reads"] += entry.out_len
        counts["broadcasts"] += len(nonzero)
    return counts


def systolic_activity(programs):
    """Counts summed over the executed ``programs`` (:class:`sparq.formats.systolic.SystolicProgram`)."""
    from sparq.formats.systolic import PARAM_WORDS, Flag, Opcode
    counts = dict.fromkeys(("mac_slots", "ub_reads", "ub_writes", "wb_reads", "wb_writes", "acc_reads", "acc_writes",
                            "tb_reads", "tb_writes", "host_weight_words", "host_input_words", "host_output_words"), 0)
    for program in programs:
        c = program.config
        for ins in program.instructions:
            op, n = ins.opcode, ins.count
            if op == Opcode.MATMUL:
                counts["tb_reads" if ins.flags & Flag.FROM_TB else "ub_reads"] += n
                counts["mac_slots"] += n * c.rows * c.cols
                counts["acc_writes"] += n * c.cols
                if ins.flags & Flag.ACCUMULATE:
                    counts["acc_reads"] += n * c.cols
            elif op == Opcode.LOAD_WEIGHTS:
                counts["wb_reads"] += 2 * c.rows if ins.flags & Flag.WIDE else c.rows
            elif op == Opcode.ACTIVATE:
                counts["wb_reads"] += PARAM_WORDS
                counts["acc_reads"] += n * c.cols
                counts["ub_writes"] += n
            elif op == Opcode.WRITE_HOST:
                counts["ub_reads"] += n
                counts["host_output_words"] += n
            elif op == Opcode.READ_WEIGHTS:
                counts["wb_writes"] += n
                counts["host_weight_words"] += n
            elif op == Opcode.READ_HOST:
                counts["ub_writes"] += n
                counts["host_input_words"] += n
            elif op == Opcode.TRANSFORM_IN:
                counts["ub_reads"] += 16 * n
                counts["tb_writes"] += 16 * n
            elif op == Opcode.TRANSFORM_OUT:
                counts["acc_reads"] += 16 * n * c.cols
                counts["acc_writes"] += 4 * n * c.cols
    return counts


def layer_macs(network, images):
    """``(dense MACs, MACs with a non-zero weight)`` of ``images`` images through the device steps of the compiled
    systolic ``network``: ``rows * K * N`` and ``rows * nnz(W)`` per GEMM, ``rows`` the GEMM rows per image; a
    Winograd convolution counts as the direct convolution it computes (``out_h * out_w`` positions of a 3x3 kernel)."""
    from sparq.compiler.systolic import DeviceStep
    from sparq.compiler.systolic.winograd import WinogradStep
    dense = nonzero = 0
    for step in network.steps:
        if isinstance(step, DeviceStep):
            for layer in step.layers:
                dense += images * step.rows_per_image * layer.k * layer.n
                nonzero += images * step.rows_per_image * int(np.count_nonzero(layer.weight))
        elif isinstance(step, WinogradStep):
            positions = images * step.output_size[0] * step.output_size[1]
            dense += positions * step.layer.weight.size
            nonzero += positions * int(np.count_nonzero(step.layer.weight))
    return dense, nonzero

"""Energy estimate from the 45 nm per-operation table (Horowitz, ISSCC 2014; ``REFERENCE.md``) times the counts of
what each accelerator did (:mod:`sparq.activity`).

The table gives 8- and 32-bit points; the widths the designs use are placed on the table's own scaling, which the
two points themselves follow: a multiply grows with the square of the width (0.2 pJ x (32/8)^2 = 3.2 pJ, the table
says 3.1), an add linearly (0.03 pJ x 32/8 = 0.12 pJ, the table says 0.1). On-chip memory accesses use the table's
one SRAM figure, 5 pJ per 32-bit read of an 8 KB SRAM, per bit; the table has no register-file entry, so the small
register files (EIE's activation registers, accumulators and codebook; the systolic accumulators) are charged the
same, an upper bound. Host transfers are charged as DRAM reads (640 pJ per 32 bits): the systolic program streams
its weights from the host on every call, EIE keeps its compressed weights in on-chip SRAM, as the papers do.
"""

__all__ = ["TABLE_45NM", "mult_pj", "add_pj", "sram_pj", "DRAM_PJ_PER_BIT", "eie_energy", "systolic_energy"]

TABLE_45NM = {"8b int add": 0.03, "32b int add": 0.1, "8b int mult": 0.2, "32b int mult": 3.1,
              "32b float add": 0.9, "32b float mult": 3.7, "32b SRAM read (8 KB)": 5.0, "32b DRAM read": 640.0}
"""REFERENCE.md's table, pJ per operation."""

SRAM_PJ_PER_BIT = TABLE_45NM["32b SRAM read (8 KB)"] / 32
DRAM_PJ_PER_BIT = TABLE_45NM["32b DRAM read"] / 32


def mult_pj(bits):
    """An integer multiply of two ``bits``-bit operands: the table's 8-bit point scaled by the width squared
    (exact table values at 8 and 32 bits)."""
    return {8: TABLE_45NM["8b int mult"], 32: TABLE_45NM["32b int mult"]}.get(
        bits, TABLE_45NM["8b int mult"] * (bits / 8) ** 2)


def add_pj(bits):
    """An integer add of ``bits`` bits: the table's 32-bit point scaled linearly (exact at 8 and 32 bits)."""
    return {8: TABLE_45NM["8b int add"], 32: TABLE_45NM["32b int add"]}.get(bits, TABLE_45NM["32b int add"] * bits / 32)


def sram_pj(bits):
    """One on-chip memory access of a ``bits``-bit word."""
    return SRAM_PJ_PER_BIT * bits


def _total(parts):
    return {"parts_pj": parts, "total_pj": sum(parts.values())}


def eie_energy(counts, ptr_width):
    """Energy (pJ, by part) of EIE ``counts`` (:func:`sparq.activity.eie_activity`), 16-bit activations and
    codebook entries, a 40-bit accumulator, 64-bit sparse-matrix words and ``ptr_width``-bit pointers."""
    from sparq.formats.eie import ACC_BITS, ACT_BITS, WEIGHT_BITS, WORD_BITS
    return _total({
        "multiply (16x16 b)": counts["entries"] * mult_pj(ACT_BITS),
        "accumulate (40 b add)": counts["entries"] * add_pj(ACC_BITS),
        "sparse-matrix SRAM (64 b words)": counts["spmat_words"] * sram_pj(WORD_BITS),
        "pointer SRAM": counts["ptr_reads"] * sram_pj(ptr_width),
        "codebook lookup": counts["codebook_reads"] * sram_pj(WEIGHT_BITS),
        "accumulator read/write": (counts["acc_reads"] + counts["acc_writes"]) * sram_pj(ACC_BITS),
        "activation registers": (counts["act_reads"] + counts["act_writes"]) * sram_pj(ACT_BITS)
        + counts["bias_reads"] * sram_pj(ACT_BITS),
    })


def systolic_energy(counts, lanes, cols):
    """Energy (pJ, by part) of systolic ``counts`` (:func:`sparq.activity.systolic_activity`): int8 MACs into
    32-bit sums, ``lanes``-byte buffer words, ``cols`` 32-bit accumulators per row."""
    from sparq.formats.systolic import WINOGRAD_V_BITS
    word = 8 * lanes
    return _total({
        "multiply (8x8 b)": counts["mac_slots"] * mult_pj(8),
        "accumulate (32 b add)": counts["mac_slots"] * add_pj(32),
        "unified buffer": (counts["ub_reads"] + counts["ub_writes"]) * sram_pj(word),
        "transform buffer (Winograd)": (counts.get("tb_reads", 0) + counts.get("tb_writes", 0)) * sram_pj(
            lanes * WINOGRAD_V_BITS),
        "weight buffer": (counts["wb_reads"] + counts["wb_writes"]) * sram_pj(word),
        "accumulators": (counts["acc_reads"] + counts["acc_writes"]) * sram_pj(32),
        "weights from host (DRAM)": counts["host_weight_words"] * word * DRAM_PJ_PER_BIT,
        "inputs/outputs from/to host (DRAM)": (counts["host_input_words"] + counts["host_output_words"]) * word
        * DRAM_PJ_PER_BIT,
    })

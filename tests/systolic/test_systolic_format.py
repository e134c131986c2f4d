"""sparq.formats.systolic: encoding, listing, configuration, parameter records, layouts and program files; the compiler
back end's GEMM lowering against plain numpy; the cycle model's basic properties."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparq.compiler.systolic import CapacityError, GemmLayer, gemm_program, lower_gemm
from sparq.formats.systolic import (
    FIELDS,
    FORMAT_VERSION,
    SHARED_FIELDS,
    Flag,
    FormatError,
    Instruction,
    Opcode,
    SystolicConfig,
    decode,
    encode,
    host_stream,
    listing,
    load_program,
    pack_matrix,
    pack_params,
    parse_listing,
    requantize,
    save_program,
    unpack_matrix,
    unpack_params,
)
from sparq.sim.systolic.cycles import predict
from sparq.sim.systolic.golden import run_program
from sparq.sim.systolic.stimulus import config_for, random_gemm

FLAGS_OF = {Opcode.LOAD_WEIGHTS: [0, 1, 16, 17], Opcode.MATMUL: [0, 1, 2, 3, 8, 11], Opcode.ACTIVATE: [0, 4]}
FIELDS_OF = {Opcode.READ_HOST: ("ub", "count", "src"), Opcode.WRITE_HOST: ("ub", "count"),
             Opcode.READ_WEIGHTS: ("wb", "count", "src"), Opcode.LOAD_WEIGHTS: ("wb",),
             Opcode.MATMUL: ("acc", "ub", "count"), Opcode.ACTIVATE: ("acc", "ub", "wb", "count"),
             Opcode.SYNC: (), Opcode.HALT: (), Opcode.TRANSFORM_IN: ("ub", "tb", "count"),
             Opcode.TRANSFORM_OUT: ("acc", "count")}
WIDTHS = {**dict(FIELDS), **{alias: dict(FIELDS)[field] for alias, field in SHARED_FIELDS.items()}}


@st.composite
def instructions(draw):
    op = draw(st.sampled_from(list(Opcode)))
    flags = Flag(draw(st.sampled_from(FLAGS_OF.get(op, [0]))))
    names = FIELDS_OF[op]
    if flags & Flag.FROM_TB:  # a MATMUL from the transform buffer addresses it with tb instead of ub
        names = tuple("tb" if name == "ub" else name for name in names)
    values = {name: draw(st.integers(1 if name == "count" else 0, (1 << WIDTHS[name]) - 1)) for name in names}
    return Instruction(op, flags, **values)


@settings(deadline=None)  # no timing asserts: the suite runs on shared cores
@given(st.lists(instructions(), min_size=1, max_size=20))
def test_encode_decode_and_listing_round_trip(program):
    assert [decode(encode(i)) for i in program] == program
    assert all(encode(i) < 1 << 128 for i in program)
    assert parse_listing(listing(program, {0: "a comment"})) == program


def test_encoding_is_documented_bit_layout():
    word = encode(Instruction(Opcode.ACTIVATE, Flag.RELU, acc=1, ub=2, wb=3, count=4))
    assert [name for name, _ in FIELDS] == ["opcode", "flags", "acc", "ub", "wb", "count", "tb"]
    assert word == 6 | 4 << 8 | 1 << 16 | 2 << 40 | 3 << 64 | 4 << 88
    assert encode(Instruction(Opcode.TRANSFORM_IN, ub=2, tb=5, count=4)) == 9 | 2 << 40 | 4 << 88 | 5 << 112
    # src shares the bits of acc (READ_HOST and READ_WEIGHTS do not use acc).
    assert encode(Instruction(Opcode.READ_HOST, ub=2, count=4, src=7)) == 1 | 7 << 16 | 2 << 40 | 4 << 88
    assert decode(3 | 9 << 16 | 5 << 64 | 1 << 88) == Instruction(Opcode.READ_WEIGHTS, wb=5, count=1, src=9)


@pytest.mark.parametrize("make, message", [
    (lambda: Instruction(99), "unknown opcode"),
    (lambda: Instruction(Opcode.MATMUL, Flag.RELU, count=1), "does not take flag"),
    (lambda: Instruction(Opcode.LOAD_WEIGHTS, ub=3), "does not use field ub"),
    (lambda: Instruction(Opcode.MATMUL, src=3, count=1), "does not use field src"),
    (lambda: Instruction(Opcode.READ_HOST, acc=3, count=1), "does not use field acc"),
    (lambda: Instruction(Opcode.READ_HOST, src=1 << 24, count=1), "24 bits"),
    (lambda: Instruction(Opcode.READ_HOST, count=0), "needs count >= 1"),
    (lambda: Instruction(Opcode.READ_HOST, count=1 << 24), "24 bits"),
    (lambda: decode(1 << 128 | 8), "not a 128-bit"),
    (lambda: decode(1 << 120 | 8), "HALT does not use field tb"),
    (lambda: Instruction(Opcode.MATMUL, Flag.FROM_TB, ub=1, tb=2, count=1), "not both"),
    (lambda: Instruction(Opcode.TRANSFORM_IN, tb=1 << 16, count=1), "16 bits"),
    (lambda: parse_listing("FROB ub=1"), "line 1: unknown opcode"),
    (lambda: parse_listing("MATMUL count=x"), "cannot read"),
    (lambda: SystolicConfig(rows=4, cols=8), "square array"),
    (lambda: SystolicConfig(ub_depth=0), "ub_depth must be a positive integer"),
    (lambda: SystolicConfig(out_depth=2), "out_depth must be at least 3"),
    (lambda: SystolicConfig(ub_depth=1), "ub_depth must be at least 2"),
])
def test_bad_input_is_refused_clearly(make, message):
    with pytest.raises(FormatError, match=message):
        make()


def test_config_takes_numpy_integers_as_plain_ints_and_refuses_bools():
    """The same check as EieConfig's (sparq.formats.common.check_positive_ints)."""
    config = SystolicConfig(rows=np.int64(4), cols=np.int32(4), ub_depth=np.uint16(64))
    assert config == SystolicConfig(rows=4, cols=4, ub_depth=64) and type(config.ub_depth) is int
    assert json.loads(config.to_json())["rows"] == 4
    for bad in (True, 2.0, "4", -1):
        with pytest.raises(FormatError, match=f"SystolicConfig.acc_depth must be a positive integer, not {bad!r}"):
            SystolicConfig(acc_depth=bad)
    with pytest.raises(FormatError, match="tb_depth=65536 does not fit the 16-bit address fields"):
        SystolicConfig(tb_depth=1 << 16)


def test_params_and_matrix_layouts_round_trip():
    rng = np.random.default_rng(0)
    bias, mult, shift = rng.integers(-(1 << 31), 1 << 31, 5), rng.integers(0, 1 << 16, 5), rng.integers(0, 48, 5)
    words = pack_params(bias, mult, shift, 8)
    b, m, s = unpack_params(words)
    assert (b[:5] == bias).all() and (m[:5] == mult).all() and (s[:5] == shift).all() and not b[5:].any()
    x = rng.integers(-128, 128, (7, 11)).astype(np.int8)
    assert (unpack_matrix(pack_matrix(x, 4), 7, 11) == x).all()
    with pytest.raises(FormatError, match="multiplier"):
        pack_params([0], [1 << 16], [0], 4)


def test_requantize_rounds_half_up_and_saturates():
    assert requantize(5, 0, 1, 1, False) == 3  # 2.5 -> 3
    assert requantize(-5, 0, 1, 1, False) == -2  # -2.5 -> -2
    assert requantize(-5, 0, 1, 1, True) == 0
    assert requantize(1000, 0, 1, 0, False) == 127 and requantize(-1000, 0, 1, 0, False) == -128
    assert requantize(-257, 0, 1, 1, False) == -128  # -128.5 -> -128


def test_host_stream_gathers_reads_by_src():
    """Each READ copies words src .. src + count of its source; the stream is their concatenation in program order,
    so a program may read its input out of order and twice; a word never read, or a read past the end, is refused."""
    weights, inputs = np.arange(12, dtype=np.int8).reshape(6, 2), -np.arange(8, dtype=np.int8).reshape(4, 2)
    program = [Instruction(Opcode.READ_HOST, ub=0, count=2, src=2), Instruction(Opcode.READ_WEIGHTS, wb=0, count=6),
               Instruction(Opcode.READ_HOST, ub=2, count=3, src=0), Instruction(Opcode.HALT)]
    stream = host_stream(program, weights, inputs)
    assert (stream == np.concatenate([inputs[2:4], weights, inputs[0:3]])).all()
    with pytest.raises(FormatError, match="never reads word 3"):
        host_stream(program[1:], weights, inputs)
    with pytest.raises(FormatError, match=r"READ_HOST wants words 2\.\.5 but only 4 were given"):
        host_stream([Instruction(Opcode.READ_HOST, ub=0, count=4, src=2)], weights[:0], inputs)


def test_program_file_round_trip_and_version_check(tmp_path):
    program, words, _ = random_gemm(0, 9, [5, 7], config_for(4))
    path = tmp_path / "p.npz"
    save_program(program, path)
    again = load_program(path)
    assert again.instructions == program.instructions and again.config == program.config
    assert (again.weight_words == program.weight_words).all() and again.comments == program.comments
    with np.load(path) as data:
        header = json.loads(str(data["header"]))
        arrays = {k: data[k] for k in data.files}
    header["version"] = FORMAT_VERSION + 1
    arrays["header"] = np.array(json.dumps(header))
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(FormatError, match="format version .* recompile"):
        load_program(tmp_path / "future.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(FormatError, match="not a systolic program file"):
        load_program(tmp_path / "junk.npz")


@pytest.mark.parametrize("size", [2, 4, 8])
@pytest.mark.parametrize("m, dims", [(1, [1, 1]), (13, [11, 7]), (37, [19, 23, 5]), (60, [9, 17])])
def test_lowered_gemm_equals_numpy(size, m, dims):
    """The golden execution of a lowered chain equals requantize(x @ W + b) layer by layer in numpy."""
    program, words, x = random_gemm(m + size, m, dims, config_for(size))
    out = unpack_matrix(run_program(program.config, program.instructions, program.stream(words)), m, dims[-1])
    layers = program.meta["layers"]
    assert [l["k"] for l in layers] == dims[:-1]
    rng = np.random.default_rng(m + size)  # the same draws random_gemm made
    rng.integers(-128, 128, (m, dims[0]), dtype=np.int64)
    from sparq.sim.systolic.stimulus import random_layers
    value = x
    for layer in random_layers(rng, dims):
        value = requantize(value.astype(np.int64) @ layer.weight.astype(np.int64), layer.bias, layer.multiplier,
                           layer.shift, layer.relu)
    assert (out == value).all()


def test_capacity_errors_name_memory_and_parameter():
    config = SystolicConfig(rows=4, cols=4, ub_depth=64, wb_depth=64, acc_depth=8)
    layer = GemmLayer("big", np.zeros((40, 40), np.int8), 0, 1, 0)
    with pytest.raises(CapacityError, match=r"weight buffer needs \d+ words .* short by \d+; raise wb_depth"):
        lower_gemm([layer], 1, config)
    small = GemmLayer("small", np.zeros((4, 4), np.int8), 0, 1, 0)
    with pytest.raises(CapacityError, match=r"unified buffer needs 200 words .* raise ub_depth to at least 200"):
        lower_gemm([small], 100, config)
    with pytest.raises(CapacityError, match="ub_depth"):
        gemm_program(np.zeros((100, 4), np.int8), [small], config)


def test_cycle_model_approaches_full_utilization_on_a_large_gemm():
    config = SystolicConfig(rows=8, cols=8, ub_depth=1 << 15, wb_depth=1 << 14, acc_depth=1024)
    program = lower_gemm([GemmLayer("g", np.zeros((256, 64), np.int8), 0, 1, 0)], 512, config)
    compute = [i for i in program.instructions if i.opcode in (Opcode.LOAD_WEIGHTS, Opcode.MATMUL, Opcode.ACTIVATE)]
    estimate = predict(config, compute + [Instruction(Opcode.HALT)])
    assert estimate.mac_busy == 512 * 32 * 8
    assert estimate.utilization > 0.95

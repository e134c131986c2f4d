"""load_program refuses a crafted or damaged program file with a FormatError, sizes checked before anything is read
or allocated for them (LOAD_LIMITS), and the instructions' counts checked against the weight image and the header."""

import json
import time

import numpy as np
import pytest

from sparq.compiler.models import shipped_path
from sparq.formats.systolic import FORMAT_VERSION, FormatError, load_program, save_program
from sparq.sim.systolic.stimulus import config_for, random_gemm


@pytest.fixture
def program_path(tmp_path):
    program, _, _ = random_gemm(0, 9, [5, 7], config_for(4))
    path = tmp_path / "p.npz"
    save_program(program, path)
    return path


def _arrays(path):
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    return json.loads(str(arrays["header"])), arrays


def _save(path, header, arrays, compressed=False):
    arrays = {**arrays, "header": np.array(json.dumps(header))}
    (np.savez_compressed if compressed else np.savez)(path, **arrays)


def test_an_onnx_model_renamed_npz_is_not_a_program(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(shipped_path("digits_mlp").read_bytes())
    with pytest.raises(FormatError, match="not a systolic program file .an .npz archive starts with PK") as info:
        load_program(path)
    assert "allow_pickle" not in str(info.value)


@pytest.mark.parametrize("change, message", [
    (lambda h: h.pop("config"), "lacks, garbles or adds fields .config"),
    (lambda h: h.__setitem__("input_words", "9"), "lacks, garbles or adds fields .input_words"),
    (lambda h: h.__setitem__("extra", 1), "lacks, garbles or adds fields .extra"),
    (lambda h: h.__setitem__("version", str(FORMAT_VERSION)),
     f"format version '{FORMAT_VERSION}', this sparq reads version {FORMAT_VERSION}"),
    (lambda h: h["config"].__setitem__("colour", 1), "not a SystolicConfig"),
    (lambda h: h["config"].update(rows=512, cols=512, wb_depth=1024), "a 512x512 array is over sparq's limit"),
    (lambda h: h["config"].update(rows=256, cols=256, ub_depth=(1 << 24) - 1), "memories take .* over sparq's limit"),
    (lambda h: h.__setitem__("input_words", h["input_words"] + 1), "READ_HOST instructions move"),
    (lambda h: h.__setitem__("output_words", 0), "WRITE_HOST instructions move"),
])
def test_a_garbled_header_is_refused(program_path, change, message):
    header, arrays = _arrays(program_path)
    change(header)
    _save(program_path, header, arrays)
    started = time.perf_counter()
    with pytest.raises(FormatError, match=message):
        load_program(program_path)
    assert time.perf_counter() - started < 0.5


def test_members_are_checked_before_they_are_read(program_path, tmp_path):
    header, arrays = _arrays(program_path)
    _save(tmp_path / "c.npz", header, arrays, compressed=True)
    with pytest.raises(FormatError, match="compressed; save_program writes at most"):
        load_program(tmp_path / "c.npz")
    _save(tmp_path / "x.npz", header, {**arrays, "more": np.zeros(3)})
    with pytest.raises(FormatError, match="not a systolic program's"):
        load_program(tmp_path / "x.npz")


def test_weight_image_and_instructions_must_have_the_saved_shapes(program_path):
    header, arrays = _arrays(program_path)
    _save(program_path, header, {**arrays, "weight_words": arrays["weight_words"][:-1]})
    with pytest.raises(FormatError, match="READ_WEIGHTS instructions move"):
        load_program(program_path)
    _save(program_path, header, {**arrays, "weight_words": arrays["weight_words"].astype(np.int16)})
    with pytest.raises(FormatError, match="a weight image of int16"):
        load_program(program_path)
    _save(program_path, header, {**arrays, "instructions": arrays["instructions"].ravel()})
    with pytest.raises(FormatError, match="instructions of uint64"):
        load_program(program_path)
    bad = arrays["instructions"].copy()
    bad[0, 0] = 0xFF  # opcode 255
    _save(program_path, header, {**arrays, "instructions": bad})
    with pytest.raises(FormatError, match="p.npz: unknown opcode 255"):
        load_program(program_path)

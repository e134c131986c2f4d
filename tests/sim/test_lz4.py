"""sparq's LZ4 block compressor (sim/lz4, for Verilator's FST writer): its blocks decode with the reference LZ4
library to the exact input, it compresses about as well as the reference, and it refuses an output buffer that is
too small."""

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from sparq.sim.toolchain import LZ4_SOURCE

lz4_block = pytest.importorskip("lz4.block")


@pytest.fixture(scope="module")
def lz4(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lz4")
    cc = shutil.which("cc") or shutil.which("gcc")
    subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-std=c99", "-shared", "-fPIC",
                    str(LZ4_SOURCE / "lz4.c"), "-o", str(folder / "liblz4.so")], check=True)
    library = ctypes.CDLL(str(folder / "liblz4.so"))
    library.LZ4_compress_default.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
    return library


def compress(lz4, data: bytes, capacity: int | None = None) -> bytes:
    capacity = lz4.LZ4_compressBound(len(data)) if capacity is None else capacity
    out = ctypes.create_string_buffer(max(capacity, 1))
    size = lz4.LZ4_compress_default(data, out, len(data), capacity)
    return out.raw[:size]


def _cases():
    rng = np.random.default_rng(7)
    text = "".join(f"#{t}\nb{t % 7:b} !\n1\"\n" for t in range(3000)).encode()  # VCD-like value changes
    return {
        "empty": b"", "one byte": b"x", "12 bytes": b"abcdabcdabcd", "13 bytes": b"a" * 13,
        "random 100k": rng.integers(0, 256, 100_000, dtype=np.uint8).tobytes(),
        "zeros 1M (match lengths over 255)": bytes(1 << 20),
        "long literal run then a repeat": rng.integers(0, 256, 5000, dtype=np.uint8).tobytes() * 3,
        "small alphabet": rng.integers(0, 3, 200_000, dtype=np.uint8).tobytes(),
        "value changes": text,
        "far repeat (past the 64 KiB window)": (block := rng.integers(0, 256, 70_000, dtype=np.uint8).tobytes())
        + block,
    }


@pytest.mark.parametrize("name", list(_cases()))
def test_blocks_decode_with_the_reference_library(lz4, name):
    data = _cases()[name]
    block = compress(lz4, data)
    assert len(block) <= lz4.LZ4_compressBound(len(data))
    assert lz4_block.decompress(block, uncompressed_size=len(data)) == data


@pytest.mark.parametrize("name", list(_cases()))
def test_it_compresses_about_as_well_as_the_reference(lz4, name):
    """Within 25 % of the reference library's default level on every case."""
    data = _cases()[name]
    assert len(compress(lz4, data)) <= 1.25 * len(lz4_block.compress(data, store_size=False)) + 16


def test_it_compresses_what_repeats(lz4):
    cases = _cases()
    assert len(compress(lz4, cases["zeros 1M (match lengths over 255)"])) < 5000
    assert len(compress(lz4, cases["value changes"])) < len(cases["value changes"]) / 2
    long_repeat = cases["long literal run then a repeat"]
    assert len(compress(lz4, long_repeat)) < 0.4 * len(long_repeat)


def test_too_small_an_output_buffer_gives_zero(lz4):
    data = np.random.default_rng(1).integers(0, 256, 1000, dtype=np.uint8).tobytes()
    assert lz4.LZ4_compress_default(data, ctypes.create_string_buffer(100), len(data), 100) == 0
    assert lz4.LZ4_compressBound(-1) == 0

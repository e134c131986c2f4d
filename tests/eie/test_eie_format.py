"""sparq.formats.eie: entry packing, layer table, hex files, fixed point and the saved image with its manifest."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparq.compiler.eie import LayerSpec, lower
from sparq.formats.eie import (
    CapacityError,
    EieConfig,
    EieImage,
    ImageError,
    ImageFormatError,
    LayerEntry,
    LoadTarget,
    finish,
    load_fields,
    load_word,
    pack_entries,
    read_fields,
    read_hex,
    read_requests,
    to_fixed,
    unpack_entries,
    write_hex,
)
from sparq.sim.scoreboard import assert_words_equal


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 15), st.integers(0, 15)), min_size=1, max_size=40))
def test_entries_round_trip_through_words(pairs):
    v, z = np.array(pairs).T
    words = pack_entries(v, z)
    assert words.dtype == np.uint64 and len(words) == -(-len(v) // 8)
    got_v, got_z = unpack_entries(words)
    assert_words_equal(v, got_v[:len(v)], what="codes")
    assert_words_equal(z, got_z[:len(z)], what="zero counts")
    assert not np.any(got_v[len(v):]) and not np.any(got_z[len(z):])


def test_entry_zero_is_the_least_significant_byte_code_in_the_low_nibble():
    assert int(pack_entries([1, 0xA], [2, 0xB])[0]) == 0xBA21


def test_packing_rejects_values_wider_than_four_bits():
    with pytest.raises(ImageFormatError, match="4-bit"):
        pack_entries([16], [0])


def test_layer_entry_round_trips_and_checks_its_field_widths():
    entry = LayerEntry(in_len=25088, out_len=4096, ptr_base=12345, spmat_base=999, bias_base=77, w_frac=15, relu=True)
    assert LayerEntry.unpack(entry.pack()) == entry
    with pytest.raises(ImageFormatError, match="in_len=70000 does not fit its 16 bits"):
        LayerEntry(in_len=70000, out_len=1, ptr_base=0, spmat_base=0, bias_base=0, w_frac=0, relu=False)


def test_config_rejects_bad_parameters():
    with pytest.raises(ImageError, match="n_pe must be a positive integer"):
        EieConfig(n_pe=0)
    with pytest.raises(ImageError, match="ptr_depth=7 must be even"):
        EieConfig(ptr_depth=7)
    assert EieConfig(spmat_depth=16384).ptr_width == 18  # pointers reach 8 * 16384 = 2**17 inclusive


def test_config_takes_numpy_integers_as_plain_ints_and_refuses_bools():
    config = EieConfig(n_pe=np.int64(4), act_depth=np.uint16(64))
    assert config == EieConfig(n_pe=4, act_depth=64) and type(config.n_pe) is int and type(config.act_depth) is int
    for bad in (True, 2.0, "4", -1):
        with pytest.raises(ImageError, match=f"EieConfig.n_pe must be a positive integer, not {bad!r}"):
            EieConfig(n_pe=bad)


def test_hex_files_round_trip_and_reject_bad_lines(tmp_path):
    words = [0, 1, 0xDEADBEEF, (1 << 40) - 1]
    write_hex(tmp_path / "m.hex", words, 40, "test")
    text = (tmp_path / "m.hex").read_text().splitlines()
    assert text[0].startswith("//") and text[3] == "00deadbeef"
    assert read_hex(tmp_path / "m.hex", 40) == words
    (tmp_path / "m.hex").write_text("0000000001\nxyz\n")
    with pytest.raises(ImageFormatError, match=r"m.hex:2: 'xyz' is not a 40-bit word"):
        read_hex(tmp_path / "m.hex", 40)


def test_to_fixed_rounds_to_nearest_and_saturates():
    assert to_fixed([0.5 / 256, 1.5 / 256, -1.0, 200.0, -200.0], 8).tolist() == [0, 2, -256, 32767, -32768]


def test_finish_rounds_half_up_then_saturates_then_applies_relu():
    acc = np.array([3, -3, 5, -5, 1 << 30, -(1 << 30)])  # /2: 1.5, -1.5, 2.5, -2.5, huge, -huge
    y, saturated = finish(acc, 1, relu=False)
    assert y.tolist() == [2, -1, 3, -2, 32767, -32768]
    assert saturated.tolist() == [False, False, False, False, True, True]
    assert finish(acc, 1, relu=True)[0].tolist() == [2, 0, 3, 0, 32767, 0]
    assert finish(np.array([7, -7]), 0, relu=False)[0].tolist() == [7, -7]  # w_frac 0: no rounding constant


def _small_image(n_pe=3):
    rng = np.random.default_rng(5)
    codes = [(rng.random((11, 7)) < 0.4) * rng.integers(1, 16, (11, 7)), (rng.random((5, 11)) < 0.5) * 3]
    codebook = np.r_[0.0, np.linspace(-0.9, 0.9, 15)]
    specs = [LayerSpec(codes[0], codebook, rng.normal(0, 0.2, 11)), LayerSpec(codes[1], codebook, None, relu=False)]
    return lower(specs, EieConfig(n_pe=n_pe))


def _assert_same_image(a, b):
    assert a.config == b.config and a.layers == b.layers
    for name in ("codebooks", "ptr", "spmat", "bias"):
        assert_words_equal(getattr(a, name), getattr(b, name), what=name)


def test_saved_image_loads_back_identical(tmp_path):
    image = _small_image()
    image.save(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["version"] == 1 and manifest["config"]["n_pe"] == 3 and len(manifest["files"]) == 2 + 4 * 3
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())
    _assert_same_image(image, EieImage.load(tmp_path))
    even = read_hex(tmp_path / "pe001_ptr_even.hex", image.config.ptr_width)
    assert even == image.ptr[1, 0::2].tolist()


def test_corrupt_file_is_caught_by_its_hash(tmp_path):
    _small_image().save(tmp_path)
    path = tmp_path / "pe002_spmat.hex"
    lines = path.read_text().splitlines()
    lines[1] = "f" * 16
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ImageFormatError, match="pe002_spmat.hex: SHA-256 does not match the manifest"):
        EieImage.load(tmp_path)


def _edit_manifest(directory, **changes):
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest.update(changes)
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_old_version_and_changed_constants_are_refused(tmp_path):
    _small_image().save(tmp_path)
    _edit_manifest(tmp_path, version=0)
    with pytest.raises(ImageFormatError, match="version 0 but this sparq reads version 1; lower the model again"):
        EieImage.load(tmp_path)
    _edit_manifest(tmp_path, version=1, constants={"ACT_FRAC": 7})
    with pytest.raises(ImageFormatError, match="constants"):
        EieImage.load(tmp_path)


def test_missing_file_and_wrong_pe_count_are_refused(tmp_path):
    _small_image().save(tmp_path)
    (tmp_path / "pe000_bias.hex").unlink()
    with pytest.raises(ImageFormatError, match="pe000_bias.hex: missing"):
        EieImage.load(tmp_path)
    _small_image().save(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    _edit_manifest(tmp_path, config={**manifest["config"], "n_pe": 2})
    with pytest.raises(ImageFormatError, match="wrong files for 2 PEs"):
        EieImage.load(tmp_path)


def test_loading_for_other_hardware_checks_the_fit(tmp_path):
    image = _small_image()
    image.save(tmp_path)
    with pytest.raises(CapacityError, match="image is for 3 PEs but the hardware has 4"):
        EieImage.load(tmp_path, EieConfig(n_pe=4))
    small = EieConfig(n_pe=3, spmat_depth=1)
    with pytest.raises(CapacityError, match=r"sparse-matrix memory .* EieConfig.spmat_depth=1: \d+ over; raise "
                                            r"spmat_depth to at least"):
        EieImage.load(tmp_path, small)
    _assert_same_image(image, EieImage.load(tmp_path, EieConfig(n_pe=3, ptr_depth=40, spmat_depth=8)))


def test_load_port_words_put_each_field_in_place_and_refuse_what_does_not_fit():
    """Fields from the least significant bit: target (3 bits), pe (ceil(log2(n_pe))), addr (20), data (93)."""
    assert [bits for _, bits in load_fields(5)] == [3, 3, 20, 93]
    assert load_word(5, LoadTarget.BIAS, 3, 7, 0xFFFF) == 4 | 3 << 3 | 7 << 6 | 0xFFFF << 26
    assert load_word(1, LoadTarget.LAYER, 0, 2, 1) == 2 << 3 | 1 << 23  # one PE: no pe bits
    assert read_fields(4, 75) == (("pe", 2), ("addr", 7))
    assert read_requests(4, 75, 6) == [0, 1, 2, 3, 4, 5]
    assert read_requests(3, 75, 5) == [0, 1, 2, 4, 5]
    with pytest.raises(ValueError, match="load-port field pe=5 does not fit its 2 bits"):
        load_word(4, LoadTarget.PTR, 5, 0, 0)
    with pytest.raises(ValueError, match="load-port field addr=1048576 does not fit its 20 bits"):
        load_word(4, LoadTarget.SPMAT, 0, 1 << 20, 0)
    with pytest.raises(ValueError, match="not a valid LoadTarget"):
        load_word(4, 7, 0, 0, 0)

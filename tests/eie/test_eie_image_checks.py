"""EieImage.load refuses a crafted or damaged image directory with an ImageFormatError before it allocates or reads
anything the manifest's counts would make it allocate: the configuration against CONFIG_LIMITS, every file entry's
type, depth and size, the layer count, and the pointer banks' lengths."""

import hashlib
import json
import time

import numpy as np
import pytest

from sparq.compiler.eie import LayerSpec, lower
from sparq.formats.eie import CONFIG_LIMITS, EieConfig, EieImage, ImageError, ImageFormatError


@pytest.fixture
def image_dir(tmp_path):
    rng = np.random.default_rng(3)
    codes = (rng.random((9, 6)) < 0.5) * rng.integers(1, 16, (9, 6))
    lower([LayerSpec(codes, np.r_[0.0, np.linspace(-1, 1, 15)], relu=False)], EieConfig(n_pe=2)).save(tmp_path)
    return tmp_path


def _manifest(directory):
    return json.loads((directory / "manifest.json").read_text())


def _write_manifest(directory, manifest):
    (directory / "manifest.json").write_text(json.dumps(manifest))


def _rewrite(directory, name, lines):
    """Replace the words of one .hex file and make the manifest agree (depth and SHA-256)."""
    path = directory / name
    path.write_text("\n".join([path.read_text().splitlines()[0], *lines]) + "\n")
    manifest = _manifest(directory)
    manifest["files"][name].update(depth=len(lines), sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    _write_manifest(directory, manifest)


def test_a_manifest_with_a_huge_pe_count_is_refused_at_once(image_dir):
    manifest = _manifest(image_dir)
    manifest["config"]["n_pe"] = 10 ** 8
    _write_manifest(image_dir, manifest)
    started = time.perf_counter()
    with pytest.raises(ImageFormatError, match="n_pe=100000000 is over sparq's limit of 1024"):
        EieImage.load(image_dir)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("field", sorted(CONFIG_LIMITS))
def test_config_fields_have_upper_limits(field):
    with pytest.raises(ImageError, match=f"{field}=.* over sparq's limit"):
        EieConfig(**{field: CONFIG_LIMITS[field] + 1})


@pytest.mark.parametrize("change, message", [
    (lambda m: m["files"].__setitem__("layers.hex", 3), "the entry of layers.hex is 3, not an object"),
    (lambda m: m.__setitem__("files", []), "files is not an object"),
    (lambda m: m.__setitem__("version", "1"), "image format version '1' but this sparq reads version 1"),
    (lambda m: m["config"].__setitem__("colour", "red"), "lacks or garbles a field"),
    (lambda m: m.__setitem__("config", 7), "lacks or garbles a field"),
    (lambda m: m.__setitem__("n_layers", 10 ** 9), "n_layers=1000000000 is not a layer count of 1 to max_layers"),
    (lambda m: m.__setitem__("n_layers", "1"), "n_layers='1' is not a layer count"),
    (lambda m: m["files"]["pe000_spmat.hex"].__setitem__("depth", 10 ** 12), "gives a depth of 1000000000000 words"),
    (lambda m: m["files"]["pe000_bias.hex"].__setitem__("depth", "3"), "gives a depth of '3' words"),
    (lambda m: m["files"]["pe001_ptr_odd.hex"].__setitem__("width", 64), "the manifest says ptr_odd/64 bits"),
])
def test_a_garbled_manifest_is_refused_with_what_is_wrong(image_dir, change, message):
    manifest = _manifest(image_dir)
    change(manifest)
    _write_manifest(image_dir, manifest)
    with pytest.raises(ImageFormatError, match=message):
        EieImage.load(image_dir)


def test_a_file_larger_than_its_depth_is_refused_before_it_is_read(image_dir):
    with open(image_dir / "pe001_spmat.hex", "a") as f:
        f.write("0" * 16 + "\n" * 1000)
    with pytest.raises(ImageFormatError, match="pe001_spmat.hex: .* bytes, more than"):
        EieImage.load(image_dir)


def test_a_huge_manifest_is_refused_before_it_is_parsed(image_dir):
    (image_dir / "manifest.json").write_text(" " * (1 << 23))
    with pytest.raises(ImageFormatError, match="more than a manifest of the largest configuration"):
        EieImage.load(image_dir)


def test_pointer_banks_of_impossible_lengths_are_refused(image_dir):
    for k in range(2):
        _rewrite(image_dir, f"pe{k:03d}_ptr_odd.hex", [])
    with pytest.raises(ImageFormatError, match="even and odd pointer banks hold"):
        EieImage.load(image_dir)

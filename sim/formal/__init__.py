"""Formal verification of sparq's blocks: property wrappers proved with SymbiYosys, smtbmc and Boolector (PyPI).

:func:`prove` checks a property wrapper by k-induction or by bounded model checking, :func:`cover` checks that its
``Cover`` statements are reachable; the wrappers live in the submodules by block (``fifo``, ``eie``, ``systolic``,
``uart``) and :mod:`.toolchain` sets up the tools. ``tests/formal/README.md`` lists every property with its result.
"""

from .prove import ProofError, ProofFailed, ProofInconclusive, ProofResult, Property, cover, prove

__all__ = ["Property", "ProofResult", "ProofFailed", "ProofInconclusive", "ProofError", "prove", "cover"]

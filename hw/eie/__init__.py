"""EIE in Amaranth: see README.md in this folder for the microarchitecture and the deviations from the paper."""

from .activation import ActivationRegisters
from .arith import ArithmeticUnit
from .ccu import CentralControlUnit
from .link import PELinkSignature
from .lnzd import LeadingNonZeroDetector
from .pe import ProcessingElement
from .pointer import PointerReadUnit
from .queue import ActivationQueue
from .spmat import SparseMatrixReadUnit
from .top import EIE

__all__ = ["EIE", "ProcessingElement", "CentralControlUnit", "LeadingNonZeroDetector", "ActivationQueue",
           "PointerReadUnit", "SparseMatrixReadUnit", "ArithmeticUnit", "ActivationRegisters", "PELinkSignature"]

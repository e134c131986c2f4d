"""The words a systolic program reads from its ``host_in`` port, in program order."""

import numpy as np

from .isa import FormatError, Opcode

__all__ = ["host_stream"]


def host_stream(instructions, weight_words, input_words) -> np.ndarray:
    """The words a program reads from ``host_in``, in order: each READ_WEIGHTS copies words ``src .. src + count``
    of ``weight_words``, each READ_HOST those of ``input_words``. Every read must lie within its source and every
    word of both sources must be read at least once (a word never read means the data and the program disagree)."""
    sources = {Opcode.READ_WEIGHTS: np.asarray(weight_words, dtype=np.int8),
               Opcode.READ_HOST: np.asarray(input_words, dtype=np.int8)}
    read = {opcode: np.zeros(len(words), dtype=bool) for opcode, words in sources.items()}
    out = []
    for ins in instructions:
        if ins.opcode in sources:
            words = sources[ins.opcode]
            if ins.src + ins.count > len(words):
                raise FormatError(f"{ins.opcode.name} wants words {ins.src}..{ins.src + ins.count - 1} but only "
                                  f"{len(words)} were given")
            out.append(words[ins.src:ins.src + ins.count])
            read[ins.opcode][ins.src:ins.src + ins.count] = True
    for opcode, seen in read.items():
        if not seen.all():
            first = int(np.flatnonzero(~seen)[0])
            raise FormatError(f"{len(seen)} words were given for {opcode.name} but the program never reads word "
                              f"{first}")
    lanes = next((len(w[0]) for w in sources.values() if len(w)), 1)
    return np.concatenate(out) if out else np.zeros((0, lanes), dtype=np.int8)

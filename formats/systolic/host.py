"""The words a systolic program reads from its ``host_in`` port, in program order."""

import numpy as np

from .isa import FormatError, Opcode

__all__ = ["host_stream"]


def host_stream(instructions, weight_words, input_words) -> np.ndarray:
    """The words a program reads from ``host_in``, in order: READ_WEIGHTS draws from ``weight_words`` and READ_HOST
    from ``input_words``; both must be used up exactly."""
    sources = {Opcode.READ_WEIGHTS: [np.asarray(weight_words, dtype=np.int8), 0],
               Opcode.READ_HOST: [np.asarray(input_words, dtype=np.int8), 0]}
    out = []
    for ins in instructions:
        if ins.opcode in sources:
            words, used = sources[ins.opcode]
            if used + ins.count > len(words):
                raise FormatError(f"{ins.opcode.name} wants words {used}..{used + ins.count - 1} but only "
                                  f"{len(words)} were given")
            out.append(words[used:used + ins.count])
            sources[ins.opcode][1] += ins.count
    for opcode, (words, used) in sources.items():
        if used != len(words):
            raise FormatError(f"{len(words)} words were given for {opcode.name} but the program reads {used}")
    lanes = next((len(w[0]) for w in sources.values() if len(w[0])), 1)
    return np.concatenate(out) if out else np.zeros((0, lanes), dtype=np.int8)

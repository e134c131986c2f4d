"""A compiled systolic program and its ``.npz`` file (format version, configuration, binary instructions, weights)."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import SystolicConfig
from .host import host_stream
from .isa import FORMAT_VERSION, INSTRUCTION_BITS, FormatError, decode, encode, listing

__all__ = ["SystolicProgram", "save_program", "load_program"]


@dataclass
class SystolicProgram:
    """A compiled program: the configuration it was checked against, its instructions, the static weight image (the
    words its READ_WEIGHTS instructions copy, by ``src``) and the number of run-time input and output words.

    ``comments`` maps instruction indices to listing comments; ``meta`` is free JSON-able metadata.
    """
    config: SystolicConfig
    instructions: list
    weight_words: np.ndarray
    input_words: int
    output_words: int
    comments: dict = None
    meta: dict = None

    def __post_init__(self):
        self.comments = {int(k): v for k, v in (self.comments or {}).items()}
        self.meta = self.meta or {}
        self.weight_words = np.asarray(self.weight_words, dtype=np.int8).reshape(-1, self.config.lanes)

    def encoded(self) -> list:
        """The instruction words, as integers."""
        return [encode(ins) for ins in self.instructions]

    def listing(self) -> str:
        return listing(self.instructions, self.comments)

    def stream(self, input_words) -> np.ndarray:
        """The ``host_in`` words for one run, given the run-time input words."""
        input_words = np.asarray(input_words, dtype=np.int8).reshape(-1, self.config.lanes)
        if len(input_words) != self.input_words:
            raise FormatError(f"the program reads {self.input_words} input words, got {len(input_words)}")
        return host_stream(self.instructions, self.weight_words, input_words)


def save_program(program: SystolicProgram, path) -> None:
    """Write ``program`` to an ``.npz`` file (format version, config, binary instructions, weight image, metadata)."""
    words = np.array([[(w >> (64 * i)) & ((1 << 64) - 1) for i in range(INSTRUCTION_BITS // 64)]
                      for w in program.encoded()], dtype=np.uint64).reshape(-1, INSTRUCTION_BITS // 64)
    header = dict(format="sparq-systolic", version=FORMAT_VERSION, config=json.loads(program.config.to_json()),
                  input_words=program.input_words, output_words=program.output_words,
                  comments={str(k): v for k, v in program.comments.items()}, meta=program.meta)
    with open(path, "wb") as f:
        np.savez(f, header=np.array(json.dumps(header)), instructions=words, weight_words=program.weight_words)


def load_program(path) -> SystolicProgram:
    """Read a program written by :func:`save_program`, checking the format and its version."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            words, weight_words = data["instructions"], data["weight_words"]
    except (OSError, KeyError, ValueError) as error:
        raise FormatError(f"{path}: not a systolic program file ({error}); write one with save_program") from None
    if header.get("format") != "sparq-systolic":
        raise FormatError(f"{path}: not a systolic program file (format {header.get('format')!r})")
    if header.get("version") != FORMAT_VERSION:
        raise FormatError(f"{path}: systolic format version {header.get('version')}, this sparq reads version "
                          f"{FORMAT_VERSION}; recompile the model")
    instructions = [decode(sum(int(part) << (64 * i) for i, part in enumerate(row))) for row in words]
    return SystolicProgram(SystolicConfig(**header["config"]), instructions, weight_words, header["input_words"],
                           header["output_words"], header["comments"], header["meta"])

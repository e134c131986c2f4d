"""A compiled systolic program and its ``.npz`` file (format version, configuration, binary instructions, weights)."""

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import SystolicConfig
from .host import host_stream
from .isa import FORMAT_VERSION, INSTRUCTION_BITS, FormatError, Opcode, decode, encode, listing

__all__ = ["SystolicProgram", "save_program", "load_program", "LOAD_LIMITS"]


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


LOAD_LIMITS = {"array": 256, "memory_bytes": 1 << 30, "instructions": 1 << 20, "header_bytes": 1 << 26,
               "weight_bytes": 1 << 30}
"""What :func:`load_program` accepts: an array of at most ``array`` x ``array`` PEs, on-chip memories of at most
``memory_bytes`` in all (what the golden model allocates), ``instructions`` instructions, a header (configuration,
comments, metadata) of ``header_bytes`` and a weight image of ``weight_bytes``. Far beyond any build; checked before
anything is allocated for a file."""

_MEMBERS = ("header.npy", "instructions.npy", "weight_words.npy")


def _check_members(archive, path, redo):
    """Refuse an archive whose members are not the three :func:`save_program` writes, stored uncompressed (so that
    the sizes in the zip directory are the sizes read) and within :data:`LOAD_LIMITS`."""
    members = {info.filename: info for info in archive.infolist()}
    if sorted(members) != sorted(_MEMBERS):
        raise FormatError(f"{path}: holds {sorted(members)[:5]}, not a systolic program's {list(_MEMBERS)}; {redo}")
    limits = {"header.npy": LOAD_LIMITS["header_bytes"], "instructions.npy": 128 + LOAD_LIMITS["instructions"] *
              INSTRUCTION_BITS // 8, "weight_words.npy": 128 + LOAD_LIMITS["weight_bytes"]}
    for name, info in members.items():
        if info.compress_type != zipfile.ZIP_STORED or info.file_size > limits[name]:
            raise FormatError(f"{path}: member {name} is {info.file_size} bytes"
                              f"{'' if info.compress_type == zipfile.ZIP_STORED else ', compressed'}; save_program "
                              f"writes at most {limits[name]}, uncompressed; {redo}")


def _check_config(config, path, redo):
    """Refuse a configuration outside :data:`LOAD_LIMITS` (before the golden model allocates its memories)."""
    if config.rows > LOAD_LIMITS["array"]:
        raise FormatError(f"{path}: a {config.rows}x{config.cols} array is over sparq's limit of "
                          f"{LOAD_LIMITS['array']}x{LOAD_LIMITS['array']}; {redo}")
    tb = config.tb_depth * config.lanes * 8 if config.winograd else 0
    total = (config.ub_depth + config.wb_depth) * config.lanes + config.acc_depth * config.cols * 8 + tb
    if total > LOAD_LIMITS["memory_bytes"]:
        raise FormatError(f"{path}: its configuration's memories take {total:,} bytes, over sparq's limit of "
                          f"{LOAD_LIMITS['memory_bytes']:,}; {redo}")


def load_program(path) -> SystolicProgram:
    """Read a program written by :func:`save_program`, checking the format and its version, every size against
    :data:`LOAD_LIMITS` before it is read, and the counts: the instructions read exactly the weight image and the
    input words and write exactly the output words the header gives."""
    path = Path(path)
    redo = "recompile the model (sparq lower)"
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != b"PK\x03\x04":
            raise FormatError(f"{path}: not a systolic program file (an .npz archive starts with PK, this file "
                              f"with {magic!r}); {redo}")
        with zipfile.ZipFile(path) as archive:
            _check_members(archive, path, redo)
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            words, weight_words = data["instructions"], data["weight_words"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        if isinstance(error, FormatError):
            raise
        raise FormatError(f"{path}: not a systolic program file ({str(error).splitlines()[0]}); write one with "
                          f"save_program") from None
    if not isinstance(header, dict):
        raise FormatError(f"{path}: not a systolic program file (its header is not an object)")
    if header.get("format") != "sparq-systolic":
        raise FormatError(f"{path}: not a systolic program file (format {header.get('format')!r})")
    if header.get("version") != FORMAT_VERSION:
        raise FormatError(f"{path}: systolic format version {header.get('version')!r}, this sparq reads version "
                          f"{FORMAT_VERSION!r}; recompile the model")
    fields = {"config": dict, "input_words": int, "output_words": int, "comments": dict, "meta": dict}
    wrong = [k for k, kind in fields.items() if not isinstance(header.get(k), kind) or isinstance(header.get(k), bool)]
    if wrong or set(header) != {"format", "version", *fields}:
        raise FormatError(f"{path}: the header lacks, garbles or adds fields "
                          f"({', '.join(wrong or sorted(set(header) - {'format', 'version', *fields}))}); {redo}")
    try:
        config = SystolicConfig(**header["config"])
    except (TypeError, FormatError) as error:
        raise FormatError(f"{path}: the header's configuration is not a SystolicConfig ({error}); {redo}") from None
    _check_config(config, path, redo)
    if words.dtype != np.uint64 or words.ndim != 2 or words.shape[1] != INSTRUCTION_BITS // 64:
        raise FormatError(f"{path}: instructions of {words.dtype} {words.shape}, not {INSTRUCTION_BITS // 64} uint64 "
                          f"words each; {redo}")
    if weight_words.dtype != np.int8 or weight_words.ndim != 2 or weight_words.shape[1] != config.lanes:
        raise FormatError(f"{path}: a weight image of {weight_words.dtype} {weight_words.shape}, not int8 words of "
                          f"{config.lanes} lanes; {redo}")
    try:
        instructions = [decode(sum(int(part) << (64 * i) for i, part in enumerate(row))) for row in words]
    except FormatError as error:
        raise FormatError(f"{path}: {error}; {redo}") from None
    counts = {op: sum(ins.count for ins in instructions if ins.opcode == op)
              for op in (Opcode.READ_WEIGHTS, Opcode.READ_HOST, Opcode.WRITE_HOST)}
    for op, given in ((Opcode.READ_WEIGHTS, len(weight_words)), (Opcode.READ_HOST, header["input_words"]),
                      (Opcode.WRITE_HOST, header["output_words"])):
        if counts[op] != given:
            raise FormatError(f"{path}: its {op.name} instructions move {counts[op]} words but the file gives "
                              f"{given}; {redo}")
    return SystolicProgram(config, instructions, weight_words, header["input_words"], header["output_words"],
                           header["comments"], header["meta"])

"""The interface every accelerator of the front door implements (:class:`Target`), what a lowering is
(:class:`Lowered`) and how a target is asked to run (:class:`RunOptions`).

The steps (:mod:`sparq.flow`, :mod:`sparq.simulation`), the commands and the report never ask which target they hold:
they call its methods (only the demo and the report's findings, which compare EIE with the systolic array, name
those two). A target owns its configuration class and defaults, its lowering and the files it writes, its design,
its golden and RTL runs and the numbers they measure (:attr:`Target.details`), and the lines it adds to the printed
table and the report.
"""

import re
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path

from ..data import Origin, load, recorded_origin
from ..errors import InputError
from ..results import BACKENDS
from ..workspace import sha256, simulation_path, source_file

__all__ = ["Target", "Lowered", "RunOptions"]

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(eq=False)
class Lowered:
    """A lowered model: its :class:`Target`, its ``directory``, ``meta`` (what its record,
    :class:`sparq.workspace.Record`, adds: target, model file, configuration, data, calibration...), the hardware
    ``config``, the float IR ``model`` it came from (for the float accuracy), ``compiled``, what the target runs (an
    :class:`sparq.formats.eie.EieImage`, a :class:`sparq.compiler.systolic.SystolicNetwork` running the programs
    read from the directory), the ``record`` it was read from or written with, and ``data``, the
    :class:`sparq.data.Data` it was lowered with (None until a step needs it: :meth:`Target.data_of`)."""

    target: "Target"
    directory: Path
    meta: dict
    config: object
    model: object
    compiled: object
    record: object = None
    data: object = None


@dataclass(frozen=True)
class RunOptions:
    """How :meth:`Target.simulate` runs: ``backend`` "golden" (the bit-exact model; cycles from the cycle model) or
    "rtl" (the design under ``runner``, already built, every output checked against the golden model; cycles and
    counters from the RTL); ``seed`` of the random valid gaps and back-pressure; ``optimize``, the Verilator
    optimization the design was built with; ``console`` for progress bars (None: quiet).

    ``runner`` runs a design with a testbench body and returns the body's result; it takes the arguments of
    :func:`sparq.sim.harness.run_verilator` (cocotb under Verilator), the default."""

    backend: str
    seed: int = 0
    optimize: bool = False
    console: object = None
    runner: object = None


class Target(ABC):
    """One accelerator: what ``sparq lower --target NAME`` lowers for, and everything the front door does with it.

    A new engine subclasses this in a module of :mod:`sparq.targets`, sets the attributes below, implements the
    abstract methods, and adds its instance to :data:`sparq.targets.TARGETS`.
    """

    name: str
    """``--target`` value, TOML table name, and ``"target"`` in ``sparq.json`` and the simulation JSON."""
    label: str
    """The report's name for it ("EIE (sparse)"); its first word labels the bar charts."""
    color: str
    """Its colour in the report's plots."""
    config_class: type
    """The dataclass of its hardware parameters (every ``-p NAME=VALUE`` is one of its fields)."""
    defaults: dict
    """Parameters used when neither the TOML file nor a flag sets them."""
    details: type
    """The dataclass of the numbers its runs measure beyond :class:`sparq.results.Measurement`'s."""
    rtl_name: str
    """The Verilator build name of its design."""
    rtl_optimize: bool
    """Whether its Verilator model is compiled at ``-O2`` (True) or ``-O0`` unless the caller says."""

    def __repr__(self):
        return f"<target {self.name}>"

    @property
    def short_label(self):
        """The first word of :attr:`label`: the report's bar charts and section titles name the target by it."""
        return self.label.split(" ")[0]

    # --- configuration ---------------------------------------------------------------------------------------------

    @abstractmethod
    def flag_parameters(self, *, pes=None, fifo_depth=None, array=None, winograd=False):
        """The parameters set by ``sparq lower``'s shorthand flags (None or False: not given) as ``{field: value}``;
        a flag that is not this target's is an :class:`sparq.errors.InputError` that names the right one."""

    def config_json(self, config):
        """``config`` as the JSON object stored in ``sparq.json`` and the simulation results."""
        return asdict(config)

    # --- lowering ----------------------------------------------------------------------------------------------------

    meta_fields: dict = {}
    """The keys this target adds to a lowering's record meta, with their JSON types."""

    @abstractmethod
    def lower(self, source, params, data, *, batch=None):
        """Lower the model file ``source`` for hardware ``params`` (field values, defaults applied), calibrating on
        the data of the :class:`sparq.data.Origin` ``data`` where the target needs it, with at most ``batch`` images
        per device call where the target has calls (None: as many as fit); return the :class:`Lowered` (no directory
        yet), its ``meta`` made by :meth:`lowered`."""

    @abstractmethod
    def save(self, lowered, out):
        """Write what the hardware loads for ``lowered`` into the directory ``out``."""

    @abstractmethod
    def read_image(self, record):
        """What the lowering of ``record`` (a :class:`sparq.workspace.Record`, verified) runs, read from its
        directory and checked against the record: the same configuration, files and checksums."""

    @abstractmethod
    def load(self, record):
        """The :class:`Lowered` in the directory of ``record``."""

    def lowered(self, source, config, model, compiled, data, calibration, **meta):
        """The :class:`Lowered` of a lowering from the model file ``source`` (read under :func:`source_file`) with
        the :class:`sparq.data.Data` ``data``: its meta names this target, the model file and its SHA-256, the
        ``config``, the data's origin and the ``calibration`` line, then what ``meta`` adds."""
        meta = {"target": self.name, "model": str(Path(source).resolve()), "model_sha256": sha256(source),
                "config": self.config_json(config), "data": data.origin.to_json(), "calibration": calibration,
                **meta}
        return Lowered(self, None, meta, config, model, compiled, data=data)

    def data_of(self, lowered):
        """The :class:`sparq.data.Data` ``lowered`` was lowered with, read (and its file checked) on first use."""
        if lowered.data is None:
            lowered.data = load(recorded_origin(lowered.record), lowered.model, lowered.meta["model"])
        return lowered.data

    def check_meta(self, record):
        """The configuration in ``record``'s meta, every key of the meta checked (:attr:`meta_fields`); a wrong one
        is an :class:`InputError`."""
        meta, where = record.meta, record.path("sparq.json")
        fields = {"target": str, "model": str, "model_sha256": str, "config": dict, "data": dict, "calibration": str,
                  **self.meta_fields}
        wrong = [k for k, kind in fields.items() if not isinstance(meta.get(k), kind) or isinstance(meta.get(k), bool)]
        if wrong or set(meta) != set(fields) or meta["target"] != self.name or not _SHA256.fullmatch(
                meta["model_sha256"]):
            extra = sorted(set(meta) - set(fields))
            raise InputError(f"{where}: not a record of a {self.name} lowering (keys "
                             f"{', '.join(wrong + extra) or 'target, model_sha256'} wrong or unexpected)", record.redo())
        Origin.from_json(meta["data"], where, record.redo())
        try:
            config = self.config_class(**meta["config"])
        except (TypeError, ValueError) as error:
            raise InputError(f"{where}: its configuration is not a {self.config_class.__name__} ({error})",
                             record.redo()) from None
        if self.config_json(config) != meta["config"]:
            raise InputError(f"{where}: its configuration {meta['config']} reads back as {config}", record.redo())
        return config

    def image_files(self, record):
        """The files of ``record`` that are not simulation results: what :meth:`save` wrote."""
        results = {simulation_path(record.directory, backend).name for backend in BACKENDS}
        return set(record.files) - results

    def check_files(self, record, expected, what):
        """Refuse a record whose image files (:meth:`image_files`) are not ``expected``, the files that ``what``
        (the manifest, the program list) names."""
        listed = self.image_files(record)
        if listed != set(expected):
            missing, extra = sorted(set(expected) - listed), sorted(listed - set(expected))
            raise InputError(f"{record.directory}: {record.path('sparq.json')} and {what} disagree on the files "
                             f"(only {what} names {missing[:3]}, only the record {extra[:3]})", record.redo())

    def model_file(self, record, loader):
        """The model a lowering came from, read with ``loader`` (its SHA-256 checked against ``record``)."""
        path = Path(record.meta["model"])
        if not path.is_file():
            raise InputError(f"{record.directory} was lowered from {path}, which is missing",
                             "lower the model again with `sparq lower`")
        with source_file(path):
            if sha256(path) != record.meta["model_sha256"]:
                raise InputError(f"{record.directory} was lowered from {path}, which has changed since",
                                 "lower the model again with `sparq lower`")
            return loader(path)

    @abstractmethod
    def describe(self, lowered):
        """The lines ``sparq lower`` prints on what it wrote."""

    # --- hardware and simulation ----------------------------------------------------------------------------------

    @abstractmethod
    def component(self, config):
        """The Amaranth design that runs this target's lowerings for ``config``."""

    @abstractmethod
    def simulate(self, lowered, x, options):
        """Run the float inputs ``x`` (one a row) on ``lowered`` as :class:`RunOptions` ``options`` say; return the
        :class:`sparq.results.Measurement`, its ``details`` a :attr:`details`."""

    # --- presentation ------------------------------------------------------------------------------------------------

    @abstractmethod
    def summary_rows(self, result):
        """``(label, text)`` rows this target adds to the table of a :class:`sparq.results.SimulationResult`."""

    @abstractmethod
    def config_text(self, result):
        """The configuration of ``result`` in a few words, for the report's comparison table."""

    @abstractmethod
    def memory_words(self, result):
        """Memory words read in ``result`` (on chip and from the host), from its activity counts."""

    def report_sections(self, result, out):
        """Sections this target adds to the report about a run ``result``, as ``(title, markdown, html, [png
        paths])``; the PNGs are written into ``out``. None by default."""
        return []

    def lowering_sections(self, meta, out):
        """Sections this target adds to the report about a lowering (its record's ``meta``, checked by
        :meth:`check_meta`), as :meth:`report_sections` does. None by default."""
        return []

"""Functional and structural coverage of the RTL, gathered by the regression (``sparq regress --coverage DIR``).

* :mod:`.functional`: the coverage model, cocotb-coverage cover points over what each case made the accelerators
  do (EIE: column lengths, padding, all-zero inputs, bypass back to back, full queues, starved PEs, host pressure;
  systolic: every opcode, accumulate on and off, bank switches, ReLU, saturation at both ends, stalls).
* :mod:`.structural`: Verilator's line, branch and toggle counts of coverage builds, merged, attributed to the
  Python files of ``hw/`` and reported on an HTML page.

:class:`RegressionCoverage` collects both from the regression's batches (:class:`sparq.sim.regress.BatchCoverage`)
and writes the report.
"""

import json
from pathlib import Path

from .functional import POINTS, FunctionalCoverage
from .structural import merge_counts, read_counts, structural_report, write_atomically, write_counts, write_html

__all__ = ["RegressionCoverage", "FunctionalCoverage", "POINTS", "read_counts", "merge_counts", "write_counts",
           "structural_report", "write_html"]


def _write_text(path: Path, text: str):
    write_atomically(path, lambda staging: staging.write_text(text))


class RegressionCoverage:
    """The coverage of one regression of ``target``: :meth:`add` each batch's coverage, then :meth:`write`."""

    def __init__(self, target: str):
        self.target = target
        self.functional = FunctionalCoverage(target)
        self.counts, self.verilog = {}, {}

    def add(self, batch):
        """Merge a :class:`sparq.sim.regress.BatchCoverage`."""
        merge_counts(self.counts.setdefault(batch.config, {}), batch.counts)
        if batch.verilog:
            self.verilog[batch.config] = batch.verilog
        self.functional.sample(batch.observations)

    def write(self, directory: Path) -> dict:
        """Write the report into ``directory``: ``<target>.html`` (both coverages), ``<target>-functional.yml``
        (cocotb-coverage's export), and per configuration ``<target>-<config>.dat`` (Verilator's format, merged)
        and ``<target>-<config>.v`` (the Verilog it counts). Returns the summary: ``functional`` (percent, bins,
        missed) and ``structural`` (:meth:`~.structural.StructuralReport.summary`), and the file names."""
        directory.mkdir(parents=True, exist_ok=True)
        runs = {}
        for config, counts in sorted(self.counts.items()):
            stem = f"{self.target}-{config}"
            write_counts(counts, directory / f"{stem}.dat")
            _write_text(directory / f"{stem}.v", self.verilog[config])
            runs[f"{self.target} {config}"] = (counts, self.verilog[config])
        report = structural_report(runs)
        functional = {"percent": round(self.functional.percent(), 2), "bins": self.functional.bins(),
                      "missed": self.functional.missed()}
        write_atomically(directory / f"{self.target}-functional.yml", self.functional.export)
        page = f"{self.target}.html"
        write_html(report, directory / page, title=f"sparq {self.target} regression coverage", functional=functional)
        record = f"{self.target}.json"
        files = {p.name for p in directory.glob(f"{self.target}*")} | {record}
        summary = {"functional": functional, "structural": report.summary(), "page": page, "files": sorted(files)}
        _write_text(directory / record, json.dumps(summary, indent=2) + "\n")
        return summary

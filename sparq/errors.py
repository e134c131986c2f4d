"""How the ``sparq`` command reports a failure: one line naming the problem, one line with the way out, and an exit
code that says which kind of failure it was.

Exit codes (:data:`EXIT_CODES`):

====  ===========================================================================================================
0     success
1     internal error: a bug in sparq (rerun with ``--debug`` for the traceback and report it)
2     usage error: a bad command line (argparse)
3     bad input: a missing or unreadable file, an unsupported model or operator, a bad setting or TOML config
4     does not fit: the model or image needs more memory than the hardware configuration has, or the design
      needs more of the FPGA than the board has
5     verification failed: the RTL's output differs from the golden model's
6     tool failure: Verilator, Yosys or nextpnr failed, or a simulation ended without a result
7     busy: another sparq command is using the workspace directory (``SPARQ_LOCK_TIMEOUT`` ran out)
130   interrupted (Ctrl-C)
====  ===========================================================================================================
"""

__all__ = ["EXIT_CODES", "SparqError", "InputError", "DoesNotFit", "VerificationFailed", "ToolFailed",
           "WorkspaceBusy", "InternalError", "explain", "error_for_code", "as_sparq_error"]

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INPUT, EXIT_CAPACITY, EXIT_MISMATCH, EXIT_TOOL, EXIT_BUSY = range(8)
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_INTERNAL: "internal error (a bug in sparq)",
    EXIT_USAGE: "usage error (bad command line)",
    EXIT_INPUT: "bad input (missing file, unsupported model, bad setting)",
    EXIT_CAPACITY: "does not fit: the model in the hardware configuration, or the design in the FPGA",
    EXIT_MISMATCH: "verification failed (RTL differs from the golden model)",
    EXIT_TOOL: "a tool failed (Verilator, Yosys, nextpnr)",
    EXIT_BUSY: "busy (another sparq command is using the workspace)",
    EXIT_INTERRUPTED: "interrupted",
}


class SparqError(Exception):
    """An error of the front door itself, with its exit code and a hint."""

    code = EXIT_INPUT

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.hint = hint


class InputError(SparqError):
    """A missing or wrong input: file, setting, model."""


class DoesNotFit(SparqError):
    """The model or image needs more memory than the hardware configuration has, or the design more of the FPGA."""

    code = EXIT_CAPACITY


class VerificationFailed(SparqError):
    """The RTL's output differs from the golden model's."""

    code = EXIT_MISMATCH


class ToolFailed(SparqError):
    """Verilator, Yosys or nextpnr failed, or a simulation ended without a result."""

    code = EXIT_TOOL


class WorkspaceBusy(SparqError):
    """Another sparq command holds the lock of a workspace directory (:mod:`sparq.workspace`) for longer than
    ``SPARQ_LOCK_TIMEOUT`` allows."""

    code = EXIT_BUSY


class InternalError(SparqError):
    """A bug in sparq."""

    code = EXIT_INTERNAL


def _one_line(text, limit=600):
    """``text`` folded onto one line: the lines of a multi-line message (a capacity list) joined with '; ', any
    traceback a simulator passed along left out, and at most ``limit`` characters."""
    parts = []
    for line in str(text).strip().splitlines():
        if line.startswith("Traceback (most recent call last)"):
            break
        if line.strip():
            parts.append(line.strip())
    joined = "; ".join(parts).replace(":;", ":") if parts else "(no message)"
    return joined if len(joined) <= limit else joined[:limit - 3] + "..."


def explain(error):
    """``(exit code, one-line message, hint)`` for an exception raised by a subcommand."""
    from sparq.compiler.errors import CompileError
    from sparq.compiler.systolic import CapacityError as SystolicCapacityError
    from sparq.formats.eie import CapacityError as EieCapacityError
    from sparq.formats.eie import ImageError
    from sparq.formats.systolic import FormatError

    message = _one_line(error)
    if isinstance(error, SparqError):
        return error.code, message, error.hint or "see the command's --help"
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted", "rerun the command; builds already finished are cached"
    if isinstance(error, (EieCapacityError, SystolicCapacityError)):
        return (EXIT_CAPACITY, message, "raise the named parameter with -p NAME=VALUE or in the TOML config, or use "
                "more PEs (--pes) / a bigger array (--array)")
    if isinstance(error, (CompileError, ImageError, FormatError)):
        return EXIT_INPUT, message, "fix the input named above; `sparq <command> --help` lists what each takes"
    if isinstance(error, FileNotFoundError):
        return EXIT_INPUT, message, "check the path; `sparq demo` shows the files each step writes"
    if isinstance(error, AssertionError):
        if "ended without a result" in message:
            return EXIT_TOOL, message, "the simulator crashed; look at the sim.log it names, rerun with --debug"
        return (EXIT_MISMATCH, message, "the RTL and the golden model disagree: rerun with SPARQ_WAVES=1 for a "
                "waveform and report it with the command line")
    from sparq.fpga.build import DoesNotFit, SynthesisError
    if isinstance(error, DoesNotFit):
        return EXIT_CAPACITY, message, "pick a smaller configuration (-p NAME=VALUE) or a larger board (--board)"
    if isinstance(error, SynthesisError) or isinstance(error, RuntimeError) and "Verilator" in message:
        return EXIT_TOOL, message, "read the log the message names; rerun with --debug for the traceback"
    if isinstance(error, ValueError):
        return EXIT_INPUT, message, "fix the value named above; see the command's --help"
    return EXIT_INTERNAL, f"internal error: {type(error).__name__}: {message}", \
        "this is a bug in sparq: rerun with --debug and report the traceback"


_BY_CODE = {cls.code: cls for cls in (InputError, DoesNotFit, VerificationFailed, ToolFailed, WorkspaceBusy,
                                      InternalError)}


def error_for_code(code, message, hint=None):
    """A :class:`SparqError` of the class of exit code ``code`` (a failure reported by a worker process, say)."""
    error = _BY_CODE.get(code, InternalError)(message, hint)
    error.code = code
    return error


def as_sparq_error(error):
    """A new :class:`SparqError` saying what the command line says of ``error``: of the class of its exit code
    (:class:`InputError` for exit code 3, ...; a SparqError keeps its class), with the one-line message and the hint
    (also added as a note, so a traceback shows it) and the original exception as ``original``. Raised with ``from
    None`` by :mod:`sparq.api`, its traceback ends where the API was called, not deep inside numpy."""
    code, message, hint = explain(error)
    converted = type(error)(message, hint) if isinstance(error, SparqError) else error_for_code(code, message, hint)
    converted.code = code
    converted.original = error
    converted.add_note(f"hint: {hint}")
    return converted

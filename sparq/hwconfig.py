"""Hardware parameters for ``sparq lower``: from a TOML file, overridden by flags.

The TOML file has one table per target; every key is a field of the target's configuration class::

    [eie]                 # sparq.formats.eie.EieConfig
    n_pe = 4
    fifo_depth = 8
    # ptr_depth, spmat_depth, act_depth, bias_depth, max_layers: omitted ones are sized to the image

    [systolic]            # sparq.formats.systolic.SystolicConfig
    rows = 4
    cols = 4
    ub_depth = 4096
    wb_depth = 16384
    acc_depth = 512
    winograd = false      # true: a Winograd build, 3x3 convolutions lowered by F(2x2, 3x3)

Flags win over the file: ``--pes`` (EIE ``n_pe``), ``--fifo-depth``, ``--array N`` (systolic ``rows = cols = N``),
``--winograd`` and ``-p NAME=VALUE`` for any field (0 or 1 for a true/false one).
"""

import dataclasses
import tomllib
from pathlib import Path

from .errors import InputError

__all__ = ["TARGETS", "SYSTOLIC_DEFAULTS", "EIE_DEFAULTS", "parameters", "parse_assignment"]

TARGETS = ("eie", "systolic")

EIE_DEFAULTS = {"n_pe": 4, "fifo_depth": 8}
"""EIE parameters when neither the file nor a flag sets them; the memory depths are sized to the image."""

SYSTOLIC_DEFAULTS = {"rows": 4, "cols": 4, "ub_depth": 4096, "wb_depth": 16384, "acc_depth": 512}
"""Systolic parameters when neither the file nor a flag sets them: a 4x4 array whose weight buffer holds the digits
MLP's int8 weights (about 12,600 words at 4 lanes)."""


def parse_assignment(text):
    """``"name=value"`` as ``(name, int)``; anything else is an :class:`InputError`."""
    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name.strip(), int(value)
    except ValueError:
        raise InputError(f"-p {text!r} is not NAME=INTEGER", "write for example -p fifo_depth=16") from None


def _read_toml(path, target):
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such config file", "check the path of --config") from None
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path}: not valid TOML ({error})", "fix the syntax; see `sparq lower --help`") from None
    unknown = sorted(set(document) - set(TARGETS))
    if unknown:
        raise InputError(f"{path}: unknown table(s) {unknown}", f"the tables are [{'], ['.join(TARGETS)}]")
    table = document.get(target, {})
    if not isinstance(table, dict):
        raise InputError(f"{path}: {target} must be a table", f"write [{target}] on its own line, then keys")
    return table


def _defaults(target):
    from sparq.formats.eie import EieConfig
    from sparq.formats.systolic import SystolicConfig
    return {f.name: f.default for f in dataclasses.fields(EieConfig if target == "eie" else SystolicConfig)}


def parameters(target, config_path=None, *, pes=None, fifo_depth=None, array=None, winograd=False, assignments=()):
    """The parameters for ``target`` as a dict of field name to int: defaults, then the TOML ``config_path``'s
    table, then the flags. Unknown names and non-integers are :class:`InputError`."""
    if target not in TARGETS:
        raise InputError(f"unknown target {target!r}", f"choose one of {', '.join(TARGETS)}")
    values = dict(EIE_DEFAULTS if target == "eie" else SYSTOLIC_DEFAULTS)
    if config_path:
        values.update(_read_toml(config_path, target))
    flags = {}
    if target == "eie":
        flags.update({k: v for k, v in (("n_pe", pes), ("fifo_depth", fifo_depth)) if v is not None})
        if array is not None:
            raise InputError("--array is a systolic parameter", "use --pes for EIE, --array with --target systolic")
        if winograd:
            raise InputError("--winograd is a systolic parameter", "lower with --target systolic --winograd")
    else:
        if array is not None:
            flags.update(rows=array, cols=array)
        if winograd:
            flags["winograd"] = True
        if pes is not None or fifo_depth is not None:
            raise InputError("--pes and --fifo-depth are EIE parameters", "use --array N for the systolic array")
    flags.update(dict(parse_assignment(a) for a in assignments))
    values.update(flags)
    defaults = _defaults(target)
    for name, value in values.items():
        if name not in defaults:
            raise InputError(f"{target} has no parameter {name!r}", f"the parameters are {', '.join(defaults)}")
        if isinstance(defaults[name], bool):
            if value not in (0, 1):  # True, False, 0, 1
                raise InputError(f"{target} parameter {name} is true or false, got {value!r}",
                                 f"write {name} = true in TOML, -p {name}=1 on the command line")
            values[name] = bool(value)
        elif not isinstance(value, int) or isinstance(value, bool):
            raise InputError(f"{target} parameter {name} must be an integer, got {value!r}", "write name = 8")
    return values

"""Hardware parameters for ``sparq lower``: from a TOML file, overridden by flags.

The TOML file has one table per target (:data:`sparq.targets.TARGETS`); every key is a field of the target's
configuration class (:attr:`sparq.targets.Target.config_class`), and a target's defaults are its
:attr:`~sparq.targets.Target.defaults`::

    [eie]                 # sparq.formats.eie.EieConfig (sparq.targets.eie)
    n_pe = 4
    fifo_depth = 8
    # ptr_depth, spmat_depth, act_depth, bias_depth, max_layers: omitted ones are sized to the image

    [systolic]            # sparq.formats.systolic.SystolicConfig (sparq.targets.systolic)
    rows = 4
    cols = 4
    ub_depth = 4096
    wb_depth = 16384
    acc_depth = 512
    winograd = false      # true: a Winograd build, 3x3 convolutions lowered by F(2x2, 3x3)

Flags win over the file: ``--pes`` (EIE ``n_pe``), ``--fifo-depth``, ``--array N`` (systolic ``rows = cols = N``),
``--winograd`` (each target says which are its own: :meth:`sparq.targets.Target.flag_parameters`) and
``-p NAME=VALUE`` for any field (0 or 1 for a true/false one).
"""

import dataclasses
import tomllib
from pathlib import Path

from .errors import InputError
from .targets import get, names

__all__ = ["parameters", "parse_assignment"]


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
    except (OSError, UnicodeDecodeError) as error:
        what = "a directory" if path.is_dir() else f"unreadable ({getattr(error, 'strerror', None) or error})"
        raise InputError(f"{path}: {what}, not a TOML config file", "give --config the path of a .toml file") \
            from None
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path}: not valid TOML ({error})", "fix the syntax; see `sparq lower --help`") from None
    unknown = sorted(set(document) - set(names()))
    if unknown:
        raise InputError(f"{path}: unknown table(s) {unknown}", f"the tables are [{'], ['.join(names())}]")
    table = document.get(target, {})
    if not isinstance(table, dict):
        raise InputError(f"{path}: {target} must be a table", f"write [{target}] on its own line, then keys")
    return table


def parameters(target, config_path=None, *, pes=None, fifo_depth=None, array=None, winograd=False, assignments=(),
               fields=None):
    """The parameters for ``target`` (a :class:`sparq.targets.Target` or its name) as a dict of field name to int:
    the target's defaults, then the TOML ``config_path``'s table, then the flags, then ``fields`` (``{name: value}``,
    what :func:`sparq.api.lower` takes as keywords). Unknown names and non-integers are :class:`InputError`."""
    target = get(target)
    values = dict(target.defaults)
    if config_path:
        values.update(_read_toml(config_path, target.name))
    flags = target.flag_parameters(pes=pes, fifo_depth=fifo_depth, array=array, winograd=winograd)
    flags.update(dict(parse_assignment(a) for a in assignments))
    values.update(flags)
    values.update(fields or {})
    defaults = {f.name: f.default for f in dataclasses.fields(target.config_class)}
    for name, value in values.items():
        if name not in defaults:
            raise InputError(f"{target.name} has no parameter {name!r}", f"the parameters are {', '.join(defaults)}")
        if isinstance(defaults[name], bool):
            if value not in (0, 1):  # True, False, 0, 1
                raise InputError(f"{target.name} parameter {name} is true or false, got {value!r}",
                                 f"write {name} = true in TOML, -p {name}=1 on the command line")
            values[name] = bool(value)
        elif not isinstance(value, int) or isinstance(value, bool):
            raise InputError(f"{target.name} parameter {name} must be an integer, got {value!r}", "write name = 8")
    return values

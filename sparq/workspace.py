"""The files of a workspace (default ``build/sparq``), the record that lists them, and how the steps read and write
them: every file checked where it is used, every write atomic, one command at a time on a directory, and nothing
deleted that sparq did not write.

Directories and their records
-----------------------------
Every directory sparq writes holds a record, ``sparq.json`` (:data:`RECORD`), of one kind (:data:`KINDS`):

* ``compressed``, a workspace's top directory: ``compressed.npz`` and ``compression.json`` (``sparq compress``),
  ``compressed.onnx`` (``sparq compress --onnx`` or ``sparq export``) and ``demo.json`` (``sparq demo``);
* ``lowered``, one directory per lowering (``sparq lower``): an EIE image or systolic programs and their listings,
  and the ``simulation-<backend>.json`` files of ``sparq simulate`` (:func:`simulation_path`);
* ``report``: ``index.html``, ``report.md`` and the plots (``sparq report``).

The record is a JSON object::

    {"format": "sparq-workspace", "version": 2, "kind": "lowered",
     "meta": {...what the kind adds: for a compression its model file and that file's SHA-256 and the data; for a
              lowering its target, model file and SHA-256, configuration, data and calibration},
     "files": {"manifest.json": {"sha256": "...", "bytes": 1503}, ...every file sparq wrote there...},
     "sha256": "...of the canonical JSON of the other five keys..."}

Opening a directory (:func:`opened`) checks the record (its own checksum: an edited record is refused) and every
file it lists (size and SHA-256); anything else in the directory is the user's and is never read, replaced or
deleted. Version 1 was the unversioned ``sparq.json`` of a lowered directory before records; it is refused with a
message to lower again.

Writing (:func:`writing`)
-------------------------
A command writes its files into ``.sparq-staging`` inside the directory, then the record and a journal (which files
replace which, which files of the old record go). Renaming ``.sparq-staging`` to ``.sparq-commit`` is the commit
point; the files are then renamed into place (the record last) and the old record's files that the new one does not
list are deleted. A command killed before the commit point leaves the old files untouched (the next command on the
directory removes the staging directory); one killed after it is completed from the journal by the next command
(:func:`opened` and :func:`writing` both do that first), so a reader always sees the old run or the new one. A name
to be written that exists but is not in the old record is someone else's file: the command refuses before the
commit point.

Locking
-------
Each directory has a lock file, ``.sparq.lock``: readers take it shared, a writer exclusive (``flock``; the kernel
releases it when a process dies, so there are no stale locks). A command that finds it taken says so on stderr in one
line and waits; ``SPARQ_LOCK_TIMEOUT`` (seconds) makes it refuse after that long instead, with
:class:`sparq.errors.WorkspaceBusy` (exit code 7). Commands read their inputs under shared locks and release them,
then write under the exclusive lock; ``sparq simulate`` holds its lowered directory's lock from reading the image to
writing the result.

Test hook
---------
``SPARQ_CRASH_AT=k`` kills the process (SIGKILL, no clean-up) at the k-th step of the writes it makes (each staged
file, the staging, the commit, each rename and each deletion); ``SPARQ_CRASH_STEPS=PATH`` appends each step's name
to PATH; ``SPARQ_STEP_DELAY=SECONDS`` sleeps after each step. The crash-injection tests use the first two to check
that every step leaves a readable workspace, the concurrency tests the third to make two commands' writes overlap.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError, WorkspaceBusy

__all__ = ["DEFAULT_WORKSPACE", "COMPRESSED", "COMPRESSION", "ONNX", "DEMO", "RECORD", "KINDS", "Record", "sha256",
           "require_file", "load_compressed", "load_float", "atomic_file", "json_text", "simulation_path", "record_checksum",
           "read_record", "written_by_sparq", "check_output", "opened", "locked", "source_file", "writing", "Transaction"]

DEFAULT_WORKSPACE = Path("build/sparq")
COMPRESSED, COMPRESSION, ONNX, DEMO = "compressed.npz", "compression.json", "compressed.onnx", "demo.json"
"""The files of a workspace's top directory (kind ``compressed``)."""
RECORD = "sparq.json"
RECORD_FORMAT = "sparq-workspace"
RECORD_VERSION = 2
KINDS = {"compressed": "sparq compress", "lowered": "sparq lower", "report": "sparq report"}
"""Each kind of directory and the command that writes it."""
LOCK = ".sparq.lock"
STAGING = ".sparq-staging"
COMMIT = ".sparq-commit"
JOURNAL = "journal.json"
RECORD_BYTES = 1 << 23
"""Largest record read (one of a 1,024-PE EIE image lists 4,098 files in about 0.5 MB)."""
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def sha256(path):
    """The SHA-256 of the file ``path``, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require_file(path, what, hint):
    """``path`` as a Path if it is a file, else an :class:`InputError` naming ``what`` is missing."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such {what}" if not path.exists() else f"{path}: a directory, not a {what}",
                         hint)
    return path


def _check_model_file(path):
    """Refuse a ``.npz`` model that is not a zip archive before numpy reads it (its error suggests unpickling)."""
    if path.suffix.lower() == ".npz":
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != b"PK\x03\x04":
            onnx = magic[:1] == b"\x08"  # an ONNX ModelProto starts with field 1 (ir_version), a varint
            raise InputError(f"{path}: not an .npz archive" + (" (it looks like an ONNX model)" if onnx else ""),
                             "rename an ONNX model to .onnx; an .npz model is what numpy.savez or sparq compress "
                             "writes")


def load_compressed(path):
    """The :class:`sparq.compiler.pipeline.CompressedModel` in ``path`` (what ``sparq compress`` wrote)."""
    from sparq.compiler.errors import ModelFormatError
    from sparq.compiler.pipeline import CompressedModel
    path = require_file(path, "compressed model", "run `sparq compress` first; it writes compressed.npz")
    if path.suffix.lower() != ".npz":
        raise InputError(f"{path}: EIE runs weight-shared models, and this is not one",
                         "compress it first: sparq compress MODEL, then lower the compressed.npz it writes")
    _check_model_file(path)
    try:
        return CompressedModel.load(path)
    except ModelFormatError as error:
        raise InputError(str(error).splitlines()[0], "compress the model first with `sparq compress`") from None


def load_float(path):
    """The IR model in ``path``: a compressed ``.npz`` (its decoded weights) or any model file."""
    from sparq.compiler.errors import ModelFormatError
    from sparq.compiler.models import load_model
    from sparq.compiler.pipeline import CompressedModel
    path = require_file(path, "model file", "give a compressed.npz from `sparq compress`, an .onnx or an .npz")
    _check_model_file(path)
    if path.suffix.lower() == ".npz":
        try:
            return CompressedModel.load(path).model
        except ModelFormatError:
            pass  # a plain .npz model, read below
    return load_model(path)


def atomic_file(path, writer):
    """Write the file ``path``, outside any workspace directory, with ``writer(temporary path)`` (a hidden file next
    to it, with the same suffix), then rename it into place: a reader sees the old file or the whole new one."""
    import tempfile
    path = Path(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        writer(Path(temporary))
        _fsync(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def json_text(data):
    """``data`` as the indented JSON text every JSON file of a workspace holds."""
    return json.dumps(data, indent=1) + "\n"


def simulation_path(directory, backend):
    """Where the result of a simulation of the lowered ``directory`` on ``backend`` goes."""
    return Path(directory) / f"simulation-{backend}.json"


# --- records -------------------------------------------------------------------------------------------------------

def record_checksum(data):
    """The SHA-256 a record stores of itself: of the canonical JSON of its keys other than ``sha256``."""
    body = {k: v for k, v in data.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True, eq=False)
class Record:
    """The record of ``directory``: its ``kind``, what the kind adds (``meta``) and every file sparq wrote there
    (``files``: name -> ``{"sha256", "bytes"}``)."""

    directory: Path
    kind: str
    meta: dict
    files: dict

    def to_json(self):
        data = {"format": RECORD_FORMAT, "version": RECORD_VERSION, "kind": self.kind, "meta": self.meta,
                "files": self.files}
        return {**data, "sha256": record_checksum(data)}

    @property
    def checksum(self):
        """The record's own SHA-256 (it changes with any change to the directory's files or meta)."""
        return self.to_json()["sha256"]

    def path(self, name):
        return self.directory / name

    def redo(self):
        """The hint for a directory whose files are not what its record says."""
        return f"run `{KINDS[self.kind]}` again to rewrite {self.directory}"

    def verify(self):
        """Check that every file the record lists is there, with its size and SHA-256."""
        for name, entry in self.files.items():
            path = self.directory / name
            if not path.is_file():
                raise InputError(f"{path}: missing (sparq wrote it; {self.directory / RECORD} lists it)", self.redo())
            if path.stat().st_size != entry["bytes"] or sha256(path) != entry["sha256"]:
                raise InputError(f"{path} has changed since sparq wrote it (its SHA-256 differs from "
                                 f"{self.directory / RECORD})", self.redo())


def _bad_record(path, what, hint=None):
    return InputError(f"{path}: {what}", hint or f"delete {path.parent} (or move it away) and run the command that "
                      f"wrote it again; sparq cannot tell its files there from yours")


def read_record(directory, kind=None):
    """The checked :class:`Record` of ``directory`` (its files not yet verified: :meth:`Record.verify`), None if it
    has none; with ``kind``, a record of another kind is an :class:`InputError`."""
    directory = Path(directory)
    path = directory / RECORD
    if not path.is_file():
        if path.exists():
            raise _bad_record(path, "not a file")
        return None
    if path.stat().st_size > RECORD_BYTES:
        raise _bad_record(path, f"{path.stat().st_size} bytes, larger than any record sparq writes")
    try:
        data = json.loads(path.read_bytes())
    except ValueError as error:
        raise _bad_record(path, f"not a readable record ({error})") from None
    if not isinstance(data, dict):
        raise _bad_record(path, "not a sparq record (not a JSON object)")
    if "format" not in data and "target" in data:
        raise _bad_record(path, "written by an older sparq (a lowering's sparq.json without a record format)")
    if data.get("format") != RECORD_FORMAT or data.get("version") != RECORD_VERSION:
        raise _bad_record(path, f"record format {data.get('format')!r} version {data.get('version')!r}, but this "
                          f"sparq reads {RECORD_FORMAT!r} version {RECORD_VERSION}")
    keys = {"format", "version", "kind", "meta", "files", "sha256"}
    if set(data) != keys:
        raise _bad_record(path, f"a record with the keys {sorted(data)}, not {sorted(keys)}")
    if data["sha256"] != record_checksum(data):
        raise _bad_record(path, "edited since sparq wrote it (its own SHA-256 does not match)")
    record = Record(directory, data["kind"], data["meta"], data["files"])
    if record.kind not in KINDS or not isinstance(record.meta, dict) or not isinstance(record.files, dict):
        raise _bad_record(path, f"kind {record.kind!r}, meta or files of the wrong type")
    for name, entry in record.files.items():
        if not _NAME.fullmatch(name) or name == RECORD or not isinstance(entry, dict) or set(entry) != {
                "sha256", "bytes"} or not isinstance(entry["sha256"], str) or not _SHA256.fullmatch(entry["sha256"]) \
                or not isinstance(entry["bytes"], int) or entry["bytes"] < 0:
            raise _bad_record(path, f"its entry for {name!r} is not a file name with a SHA-256 and a size")
    if kind is not None and record.kind != kind:
        raise InputError(f"{directory} holds what `{KINDS[record.kind]}` writes, not what `{KINDS[kind]}` writes",
                         "give each command a directory of its own (the defaults do: <workspace>, "
                         "<workspace>/<target>, <workspace>/report)")
    return record


# --- locks and recovery --------------------------------------------------------------------------------------------

_held = {}  # resolved directory -> [lock file descriptor or None, exclusive, depth]


def _lock_timeout():
    value = os.environ.get("SPARQ_LOCK_TIMEOUT")
    try:
        return None if value in (None, "") else float(value)
    except ValueError:
        raise InputError(f"SPARQ_LOCK_TIMEOUT={value!r} is not a number of seconds", "unset it to wait for as long "
                         "as the other command takes") from None


def _flock(fd, directory, exclusive):
    import fcntl
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    timeout = _lock_timeout()
    busy = f"{directory} is in use by another sparq command"
    hint = "wait for it to finish, then run this command again"
    if timeout is not None and timeout <= 0:
        raise WorkspaceBusy(busy, hint)
    print(f"sparq: waiting: {busy}", file=sys.stderr, flush=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if deadline is not None and time.monotonic() >= deadline:
                raise WorkspaceBusy(f"{busy} (waited {timeout:g} s)", hint) from None
            time.sleep(delay)
            delay = min(2 * delay, 0.2)


def _open_lock(directory, exclusive):
    """A descriptor of ``directory``'s lock file: created by a writer; None for a reader of a directory no sparq
    command has written (nothing to wait for)."""
    path = directory / LOCK
    try:
        if exclusive:
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise InputError(f"{directory}: cannot {'write' if exclusive else 'read'} there ({error.strerror})",
                         "choose a directory you can write, with --out" if exclusive else "check its "
                         "permissions") from None


def _acquire(directory, exclusive):
    import fcntl
    key = str(Path(directory).resolve())
    if key in _held:
        held = _held[key]
        if exclusive and not held[1]:
            raise RuntimeError(f"sparq bug: {directory} is locked for reading and then for writing")
        held[2] += 1
        return
    fd = _open_lock(directory, exclusive)
    _held[key] = [fd, exclusive, 1]
    try:
        while fd is not None:
            _flock(fd, directory, exclusive)
            if not ((directory / COMMIT).exists() or (directory / STAGING).exists()):
                break
            if not exclusive:  # a killed writer's leftovers: completing or removing them needs the exclusive lock
                fcntl.flock(fd, fcntl.LOCK_UN)
                _flock(fd, directory, True)
            _recover(directory)
            if not exclusive:
                fcntl.flock(fd, fcntl.LOCK_UN)
    except BaseException:
        _release(directory)
        raise


def _release(directory):
    key = str(Path(directory).resolve())
    held = _held[key]
    held[2] -= 1
    if held[2] == 0:
        del _held[key]
        if held[0] is not None:
            os.close(held[0])  # closing the descriptor releases the lock


@contextmanager
def _locked(directory, exclusive):
    _acquire(directory, exclusive)
    try:
        yield
    finally:
        _release(directory)


_steps = [0]


def _step(what):
    """One step of a write sequence: the crash-injection hook (module docstring, "Test hook")."""
    _steps[0] += 1
    log = os.environ.get("SPARQ_CRASH_STEPS")
    if log:
        with open(log, "a") as f:
            f.write(f"{_steps[0]} {what}\n")
    if os.environ.get("SPARQ_CRASH_AT") == str(_steps[0]):
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("SPARQ_STEP_DELAY"):
        time.sleep(float(os.environ["SPARQ_STEP_DELAY"]))


def _fsync(path, directory=False):
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _apply(directory):
    """Complete the committed write in ``directory``: rename the staged files into place (the record last), delete
    the files the old record listed and the new one does not, remove the commit directory."""
    commit = directory / COMMIT
    if not (commit / JOURNAL).exists() and not any(commit.iterdir()):  # killed as it removed the commit directory
        commit.rmdir()
        return
    try:
        journal = json.loads((commit / JOURNAL).read_text())
        replace, delete = list(journal["replace"]), list(journal["delete"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"{commit}: an interrupted write whose journal is unreadable ({error})",
                         f"delete {directory} and run the command that wrote it again") from None
    for name in replace:
        if (commit / name).exists():
            os.replace(commit / name, directory / name)
            _step(f"replaced {name}")
    for name in delete:
        if (directory / name).exists():
            (directory / name).unlink()
            _step(f"deleted {name}")
    (commit / JOURNAL).unlink()
    commit.rmdir()
    _fsync(directory, directory=True)
    _step("done")


def _recover(directory):
    """Finish what a killed command left in ``directory``: complete a committed write, remove a staged one."""
    if (directory / COMMIT).exists():
        _apply(directory)
    if (directory / STAGING).exists():
        shutil.rmtree(directory / STAGING)


def _directory(path, create):
    """``path`` as a directory: an existing file there is an :class:`InputError`; with ``create`` (a command's
    output), made if missing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path} is a file, not a directory", "give a directory (or, for an output, a path that "
                         "does not exist yet)")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise InputError(f"{path}: a parent of it is a file, not a directory", "choose another directory "
                             "for the output") from None
        except OSError as error:
            raise InputError(f"{path}: cannot create it ({error.strerror})", "choose a directory you can write, "
                             "with --out") from None
    return path


def written_by_sparq(directory):
    """Whether a sparq command has written into ``directory`` (it has a lock file): one without a record there has
    lost it, unless the only write there was killed before its commit point."""
    return (Path(directory) / LOCK).exists()


def check_output(directory, kind):
    """``directory`` as a Path for a command's output of ``kind``, checked before the command starts its work: not a
    file, and without a record of another kind (or an unreadable one)."""
    directory = _directory(directory, create=False)
    if directory.is_dir():
        read_record(directory, kind)
    return directory


# --- reading --------------------------------------------------------------------------------------------------------

@contextmanager
def opened(*directories, exclusive=False, kinds=None):
    """Lock ``directories`` (shared, or ``exclusive``), finish what a killed command left in them, and yield their
    records, checked and every file they list verified (None for a directory without a record). ``kinds``, one per
    directory, checks each record's kind (None: any). A directory no sparq command has written (no lock file) is
    not locked: it has no record."""
    paths = [Path(d) for d in directories]
    kinds = list(kinds or [None] * len(paths))
    with ExitStack() as stack:
        for path in sorted(paths, key=lambda p: str(p.resolve())):
            if _directory(path, create=False).is_dir() and written_by_sparq(path):
                stack.enter_context(_locked(path, exclusive))
        records = [read_record(path, kind) if path.is_dir() else None for path, kind in zip(paths, kinds)]
        for record in records:
            if record is not None:
                record.verify()
        yield records


@contextmanager
def locked(directory):
    """Hold ``directory``'s exclusive lock (the directory and its lock file made if missing) in the ``with`` block:
    for a command that writes there outside a record (``sparq sweep``'s results). Waits for another holder, as
    the other commands do (``SPARQ_LOCK_TIMEOUT``)."""
    directory = _directory(directory, create=True)
    with _locked(directory, True):
        yield directory


@contextmanager
def source_file(path):
    """Use the input file ``path``: when its directory has a record that lists it, under that directory's shared lock
    and with the directory verified; any other file as it is. Yields the record (or None). A workspace file (say
    ``compressed.npz``) in a directory sparq has written but whose record is gone is refused."""
    path = Path(path)
    with opened(path.parent) as (record,):
        if record is None and path.name in (COMPRESSED, COMPRESSION, ONNX) and written_by_sparq(path.parent):
            raise InputError(f"{path}: in a directory sparq writes, but no {RECORD} there lists it (the record is "
                             f"missing)", f"run `sparq compress` again to rewrite {path.parent}")
        yield record if record is not None and path.name in record.files else None


# --- writing --------------------------------------------------------------------------------------------------------

class Transaction:
    """The writes of one command into one directory (see the module docstring, "Writing"), made by
    :func:`writing`: write every file into :attr:`staging` (:meth:`write`, or directly and then :meth:`step`) and set
    :attr:`meta`; leaving the ``with`` block commits.

    ``old`` is the directory's record before (None if it had none); ``keep`` carries its files and meta over into
    the new record (the files written replace theirs), else the new record lists only the files written and the old
    files it does not list are deleted.
    """

    def __init__(self, directory, kind, old, keep):
        self.directory, self.kind, self.old, self.keep = directory, kind, old, keep
        self.staging = directory / STAGING
        self.meta = dict(old.meta) if keep and old is not None else {}
        self.record = None

    def step(self, what):
        """Mark the end of one step of the write sequence (a crash-injection point)."""
        _step(what)

    def write(self, name, writer):
        """Write the file ``name`` with ``writer(path)`` (a path in :attr:`staging`); return the path."""
        if not _NAME.fullmatch(name) or name == RECORD:
            raise ValueError(f"sparq bug: {name!r} is not a name a workspace file can have")
        path = self.staging / name
        writer(path)
        self.step(f"wrote {name}")
        return path

    def write_text(self, name, text):
        return self.write(name, lambda path: path.write_text(text))

    def commit(self):
        """Commit the staged files: the record, the journal, the commit point, then the renames and deletions."""
        directory, old = self.directory, self.old
        staged = sorted(p.name for p in self.staging.iterdir())
        for name in staged:
            path = self.staging / name
            if not path.is_file() or not _NAME.fullmatch(name) or name == RECORD:
                raise RuntimeError(f"sparq bug: {path} is not a file a workspace can hold")
            target = directory / name
            if (target.exists() or target.is_symlink()) and (old is None or name not in old.files
                                                             or not target.is_file()):
                raise InputError(f"{target} exists and sparq did not write it (it is not listed in "
                                 f"{directory / RECORD})", "move it away, or write into another directory")
            _fsync(path)
        files = dict(old.files) if self.keep and old is not None else {}
        files.update({name: {"sha256": sha256(self.staging / name), "bytes": (self.staging / name).stat().st_size}
                      for name in staged})
        record = Record(directory, self.kind, self.meta, files)
        (self.staging / RECORD).write_text(json_text(record.to_json()))
        delete = sorted(set(old.files) - set(files)) if old is not None else []
        (self.staging / JOURNAL).write_text(json.dumps({"replace": [*staged, RECORD], "delete": delete}))
        for name in (RECORD, JOURNAL):
            _fsync(self.staging / name)
        _fsync(self.staging, directory=True)
        self.step("staged")
        os.rename(self.staging, directory / COMMIT)
        _fsync(directory, directory=True)
        self.step("committed")
        _apply(directory)
        self.record = record
        return record


@contextmanager
def writing(directory, kind, *, keep=False, expect=None):
    """A :class:`Transaction` on ``directory`` (created if missing) for a directory of ``kind``, under the directory's
    exclusive lock; committed when the block ends, rolled back (the staged files removed, the old ones untouched) when
    it raises. ``expect``: the record the caller read the directory's files from; if another command has written the
    directory since, the write is refused."""
    directory = _directory(directory, create=True)
    with _locked(directory, exclusive=True):
        old = read_record(directory, kind)
        if expect is not None and (old is None or old.checksum != expect.checksum):
            raise InputError(f"{directory} was written by another sparq command while this one ran",
                             "run this command again")
        transaction = Transaction(directory, kind, old, keep)
        transaction.staging.mkdir()
        try:
            yield transaction
            transaction.commit()
        except BaseException:
            if transaction.staging.exists():
                shutil.rmtree(transaction.staging)
            raise

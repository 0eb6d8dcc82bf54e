"""Files the project writes: atomic (never half-written) and strict JSON.

**Non-finite numbers in JSON** (the one rule, for every file and every ``--json`` output):
JSON has no ``NaN`` or ``Infinity``, so a non-finite float is written as the string ``"nan"``,
``"inf"`` or ``"-inf"``; ``read_json`` turns those three strings back into floats, so a config
or result read back is the one written (an EWC cap of ``inf``, an infinite SNR at age 0 in the
exact convention). Every writer goes through ``json_text`` with ``allow_nan=False``, so a bare
``NaN`` can never reach a file. Tensors, numpy values, dataclasses and paths are converted too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

_UMASK = os.umask(0)
os.umask(_UMASK)
NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
#: the figure formats a path may ask for by its suffix (``plotting.save_figure``; anything else is
#: written as PNG there, and refused by ``--plot``)
FIGURE_FORMATS = ("png", "pdf", "svg")


def to_jsonable(value: Any) -> Any:
    """Recursively convert ``value`` for strict JSON (non-finite floats as strings)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.detach().cpu().numpy())
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    return value


def json_text(data: Any, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Strict JSON text of ``data`` (``indent=None``: compact; ``sort_keys``: one text for
    equal dicts whatever their key order)."""
    separators = (",", ":") if indent is None else None
    converted = to_jsonable(data)
    return (
        json.dumps(
            converted, indent=indent, separators=separators, allow_nan=False, sort_keys=sort_keys
        )
        + "\n"
    )


def _atomic_replace(path: Path, write) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path`` (atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


#: what ``_atomic_replace`` names its temporary files (``mkstemp``: 8 random characters)
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Remove (and return) the temporary files of atomic writes that a process killed between
    writing and renaming left in ``directory`` (kill -9, a power cut: a checkpoint's can be
    large). Only for a directory whose lock this process holds: no other writer is there."""
    removed = []
    for path in Path(directory).glob(".*.tmp"):
        if _TEMPORARY.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def atomic_write_text(path: str | Path, text: str) -> None:
    _atomic_replace(Path(path), lambda h: h.write(text.encode()))


def atomic_write_json(path: str | Path, data: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json_text(data, indent))


def atomic_torch_save(path: str | Path, obj: Any) -> None:
    _atomic_replace(Path(path), lambda h: torch.save(obj, h))


def write_json_output(target: str | None, data: Any) -> None:
    """``-`` prints JSON to stdout, a path writes it atomically, None does nothing."""
    if target is None:
        return
    if target == "-":
        sys.stdout.write(json_text(data))
    else:
        atomic_write_json(target, data)


def source_fingerprint(paths) -> str:
    """A short digest of the contents of ``paths``, whatever their order and wherever the
    package is installed: cached results record the fingerprint of the code that made them, and
    a result made by other code is computed again."""
    import hashlib

    contents = sorted({hashlib.sha1(Path(path).read_bytes()).digest() for path in paths})
    return hashlib.sha1(b"".join(contents)).hexdigest()[:16]


def _restore_non_finite(value: Any) -> Any:
    if isinstance(value, str):
        return NON_FINITE.get(value, value)
    if isinstance(value, list):
        return [_restore_non_finite(item) for item in value]
    if isinstance(value, dict):
        return {key: _restore_non_finite(item) for key, item in value.items()}
    return value


def read_json(path: str | Path) -> Any:
    """Read a JSON file written by the project; a missing or corrupt file is one clear line
    naming it."""
    try:
        with open(path, encoding="utf-8") as handle:
            return _restore_non_finite(json.load(handle))
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not readable JSON ({error})") from None


# --- output paths, checked before any work ------------------------------------------------------


def _first_existing(path: Path) -> Path:
    current = path.absolute()
    while not os.path.lexists(current):
        current = current.parent
    return current


def _check_can_create_in(path: Path, option: str, target: str | Path) -> None:
    """``path`` will be created (with its parents) and written: its nearest existing ancestor
    must be a writable directory. Probed with a temporary file, removed at once."""
    ancestor = _first_existing(path)
    if not ancestor.is_dir():
        raise ValueError(
            f"{option} {target} lies under {ancestor}, which is a file, not a directory"
        )
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(f"{option} {target}: cannot write in {ancestor} ({reason})") from None


def _check_not_empty(path: str | Path, option: str) -> None:
    """An empty path (``--out ""``) is refused: it meant the current directory, or the default,
    or nothing at all, depending on the command."""
    if not str(path).strip():
        raise ValueError(f"{option} {str(path)!r} is an empty path; give a path")


def check_output_file(path: str | Path | None, option: str, stdout: bool = True) -> None:
    """Refuse, before any work, an output file the command could not write: a directory, a
    path under a file, a place without write permission (``None`` is fine, and so is ``-``
    where the output may go to standard output: ``stdout``)."""
    if path is None or (stdout and str(path) == "-"):
        return
    if str(path) == "-":  # (review, session 33: a file named "-" was written)
        raise ValueError(f"{option} - is not allowed here: the report is a file; give a path")
    _check_not_empty(path, option)
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{option} {path} is a directory; give a file path")
    if os.path.lexists(target) and not target.is_file():
        raise ValueError(f"{option} {path} exists and is not a regular file")
    _check_can_create_in(target.parent, option, path)


def check_figure_file(path: str | Path | None, option: str = "--plot") -> None:
    """``check_output_file`` for a figure, whose suffix must name one of ``FIGURE_FORMATS``
    (another was written as PNG bytes under its name; review, session 37)."""
    check_output_file(path, option, stdout=False)
    if path is not None and Path(path).suffix.lower().lstrip(".") not in FIGURE_FORMATS:
        raise ValueError(f"{option} {path}: expected a file ending in .png, .pdf or .svg")


def check_output_dir(path: str | Path, option: str, locked: bool = False) -> Path:
    """Refuse, before any work, an output directory the command could not write: an existing
    file, a path under a file, a place without write permission; ``locked``: the command takes
    the directory's lock (``DirectoryLock``), which is written beside it."""
    _check_not_empty(path, option)
    target = Path(path)
    if os.path.lexists(target) and not target.is_dir():
        raise ValueError(f"{option} {path} is a file, not a directory")
    _check_can_create_in(target, option, path)
    # the directory's lock goes beside it (``_lock_path``): an existing writable directory under
    # a parent that is not failed at the lock, naming only the lock file (review, session 35;
    # only train locks: the diff review)
    if locked and target.is_dir():
        try:
            _check_can_create_in(_lock_path(target).parent, option, path)
        except ValueError as error:
            raise ValueError(f"{error}; the directory's lock is written beside it") from None
    return target


def directory_is_empty(path: Path) -> bool:
    return not path.exists() or not any(path.iterdir())


def output_owner(path: str | Path) -> str | None:
    """What wrote ``path`` (a directory): ``"train"`` for a run directory, the experiment's
    ``"degeneracy <name>"``, or None when it holds no config.json of learnsyn's."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return None
    try:
        data = read_json(config)
    except ValueError:
        return "unknown"
    if isinstance(data, dict) and "experiment" in data:
        return f"degeneracy {data['experiment']}"
    return "train"


class DirectoryInUse(ValueError):
    """Another live process holds the lock of an output directory."""


def _lock_path(directory: Path) -> Path:
    """The lock of ``directory``: a hidden file beside it (so that ``--overwrite`` may delete the
    directory and a new run may create it while the lock is held). Beside the directory a link
    points to: a run reached through a link and by its own path holds one lock."""
    directory = Path(directory).resolve()
    return directory.parent / f".{directory.name}.lock"


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), None where unknown: a
    pid that was reused, or a container restarted with the same pids, starts at another time."""
    try:
        return Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError, ValueError):
        return None


def _read_holder(path: Path) -> dict[str, Any] | None:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


#: a lock that cannot be read (a process killed while writing one by hand, a full disk) is taken
#: for stale this many seconds after it was last written
UNREADABLE_LOCK_SECONDS = 10.0


def _holder_alive(holder: dict[str, Any] | None, path: Path) -> bool:
    """Whether the process that wrote a lock still runs: on another host, assumed so; here, its
    pid must exist and have started when the lock says."""
    import socket
    import time

    if holder is None:
        try:
            return time.time() - path.stat().st_mtime < UNREADABLE_LOCK_SECONDS
        except OSError:
            return False
    if holder.get("host") != socket.gethostname():
        return True
    try:
        pid = int(holder["pid"])
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, TypeError, ValueError, OverflowError):
        return True  # another user's process, or a field we cannot read: keep it
    started = holder.get("started")
    return started is None or _process_start(pid) in (None, started)


class DirectoryLock:
    """Held while a process writes ``directory`` (a training run): a second ``learnsyn train``
    into the same ``--out`` is refused in one line naming the holder, before it touches anything,
    instead of both overwriting each other's checkpoints (a second call in the same process
    too). The lock appears whole (written aside, then linked into place) with the holder's pid,
    host, start time and a token of its own; one left by a process that died (same host: pid
    gone, or reused by a process that started later) is moved aside and taken over, and on exit
    (after an error or an interruption too) the holder removes its own lock and no other."""

    def __init__(self, directory: str | Path, what: str = "run directory"):
        self.directory, self.what = Path(directory), what
        self.path = _lock_path(self.directory)
        self.token: str | None = None

    def _refusal(self, holder: dict[str, Any] | None) -> DirectoryInUse:
        holder = holder or {}
        return DirectoryInUse(
            f"{self.what} {self.directory} is in use by process {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')} (lock {self.path}); wait for it to end, or delete the "
            "lock if no such process runs"
        )

    def __enter__(self) -> DirectoryLock:
        import socket
        import uuid

        self.path.parent.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": _process_start(os.getpid()), "token": token}  # fmt: skip
        for _ in range(5):
            try:
                self._create(json.dumps(holder), token)
            except FileExistsError:
                try:
                    observed = os.stat(self.path).st_ino  # before reading: see _move_aside
                except FileNotFoundError:
                    continue
                current = _read_holder(self.path)
                if _holder_alive(current, self.path):
                    raise self._refusal(current) from None
                self._move_aside(observed, token)
                continue
            self.token = token
            return self
        raise self._refusal(_read_holder(self.path))

    def _create(self, text: str, token: str) -> None:
        """Create the lock with ``text`` in it, or raise FileExistsError: written aside and
        linked into place, so that no reader sees it half-written; where the file system has
        no hard links, created exclusively and then written (a reader gives an unreadable lock
        ``UNREADABLE_LOCK_SECONDS``)."""
        aside = self.path.with_name(f"{self.path.name}.{token}")
        aside.write_text(text)
        try:
            os.link(aside, self.path)  # fails if a lock exists: nothing overwritten
        except FileExistsError:
            raise
        except OSError:  # no hard links here
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
        finally:
            aside.unlink(missing_ok=True)

    def _move_aside(self, observed: int, token: str) -> None:
        """Remove the stale lock judged (inode ``observed``): moved to a name of our own first;
        if what was moved is another file (a process took the lock over meanwhile), it is put
        back, and a lock that cannot be put back (a third process holds the name) is left
        where it was moved rather than deleted."""
        moved = self.path.with_name(f"{self.path.name}.stale.{token}")
        try:
            os.rename(self.path, moved)
        except FileNotFoundError:
            return
        if os.stat(moved).st_ino == observed:
            moved.unlink(missing_ok=True)
            return
        try:
            os.link(moved, self.path)  # put back; never over a lock that exists
        except FileExistsError:
            return  # a third process holds the name: leave the moved lock, do not delete it
        except OSError:  # no hard links here
            if not self.path.exists():
                os.rename(moved, self.path)
            return
        moved.unlink(missing_ok=True)

    def __exit__(self, *exc) -> None:
        holder = _read_holder(self.path)
        if holder is not None and holder.get("token") == self.token:
            self.path.unlink(missing_ok=True)

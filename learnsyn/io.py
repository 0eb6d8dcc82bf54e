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
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

_UMASK = os.umask(0)
os.umask(_UMASK)
NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


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


def json_text(data: Any, indent: int | None = 2) -> str:
    """Strict JSON text of ``data`` (``indent=None``: compact)."""
    separators = (",", ":") if indent is None else None
    converted = to_jsonable(data)
    return json.dumps(converted, indent=indent, separators=separators, allow_nan=False) + "\n"


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
        with open(path) as handle:
            return _restore_non_finite(json.load(handle))
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not readable JSON ({error})") from None

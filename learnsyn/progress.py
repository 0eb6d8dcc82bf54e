"""Progress bars on stderr that stay readable when stderr is a log file.

On a terminal a bar redraws up to ten times a second. When stderr is a file or a pipe (a
``nohup`` run, a batch job) every redraw is appended to it: an hour of a training grid wrote
megabytes of bars. There the bar redraws at most once every ``LOG_INTERVAL_S`` seconds (and
when it closes), so a log holds a line every half minute.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

#: seconds between redraws when stderr is not a terminal
LOG_INTERVAL_S = 30.0


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    description: str = "",
    enabled: bool = True,
    initial: int = 0,
    unit: str = "it",
    leave: bool = True,
    file: Any = None,
):
    """A tqdm bar on ``file`` (default stderr); ``enabled=False`` makes it silent."""
    from tqdm import tqdm

    stream = sys.stderr if file is None else file
    terminal = bool(getattr(stream, "isatty", lambda: False)())
    return tqdm(
        iterable,
        total=total,
        initial=initial,
        desc=description,
        unit=unit,
        disable=not enabled,
        file=stream,
        leave=leave,
        dynamic_ncols=terminal,
        mininterval=0.1 if terminal else LOG_INTERVAL_S,
        maxinterval=10.0 if terminal else LOG_INTERVAL_S,  # tqdm's monitor forces a redraw
    )

"""Where a study lives and what it holds: storage URLs, the workers' slot lock, the summary.

Three kinds of storage, one ``--storage`` option:

- ``sqlite:///PATH`` (the default, ``sqlite:///runs/optuna.db``): embedded, no server; several
  processes on one machine may share it;
- ``journal:PATH``: Optuna's journal file, made for several processes on one machine (and file
  systems where SQLite's locking is unreliable); it has no heartbeat;
- any other SQLAlchemy URL, e.g. ``postgresql://USER:PASSWORD@HOST:PORT/DB``, for workers on
  several machines. ``postgresql://`` uses whichever driver is installed (psycopg 3, else
  psycopg2, ``pip install psycopg2-binary``).

Every URL is parsed and opened before any trial starts; a malformed URL, a missing driver or an
unreachable server is one line naming the storage (passwords hidden).

The slot lock: a worker creates the tables and the study, and later counts the study's trials
and creates its next trial, while holding a lock shared by all workers of the storage (an
``fcntl`` lock on a file beside SQLite and journal files, a PostgreSQL advisory lock), so two
workers starting together do not both create the tables, and workers together start exactly
``--n-trials`` trials; Optuna's ``MaxTrialsCallback`` checks only after a trial ends and lets two
workers that finish together both start one more.

The summary (``study_summary``) reads a study back: trial counts, the best trial with its seed,
run directory, ``learnsyn compare`` and re-run commands, parameter importances (two completed
trials at least) and the ``optuna-dashboard`` command for the storage.
"""

from __future__ import annotations

import hashlib
import shlex
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMES_HELP = (
    "sqlite:///PATH, journal:PATH or a SQLAlchemy URL such as "
    "postgresql://USER:PASSWORD@HOST:PORT/DB"
)
CONNECT_TIMEOUT_SECONDS = 3


@dataclass(frozen=True)
class StorageLocation:
    """A parsed ``--storage``: ``kind`` is sqlite, journal or database."""

    given: str
    kind: str
    path: Path | None = None
    sqlalchemy_url: str | None = None
    display: str = ""

    @property
    def has_heartbeat(self) -> bool:
        return self.kind != "journal"

    def dashboard_command(self) -> str:
        target = str(self.path) if self.kind == "journal" else self.display
        return f"optuna-dashboard {shlex.quote(target)}"

    @contextmanager
    def reporting_errors(self):
        """Turn a failure to reach or open the storage into one line naming it."""
        import optuna
        import sqlalchemy.exc

        try:
            yield
        except OSError as error:
            raise ValueError(f"cannot open storage {self.display}: {error}") from None
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as error:
            cause = getattr(error, "orig", None) or error.__cause__ or error
            reason = str(cause).strip().splitlines()[0] if str(cause).strip() else repr(cause)
            raise ValueError(f"cannot open storage {self.display}: {reason}") from None

    def open(self, heartbeat_seconds: int | None = None, create: bool = True):
        """The Optuna storage object (``create=False``: a file that must exist already)."""
        import optuna

        if self.path is not None and not create and not self.path.exists():
            raise ValueError(f"no storage at {self.display}: {self.path} does not exist")
        with self.reporting_errors():
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.kind == "journal":
                from optuna.storages.journal import JournalFileBackend

                return optuna.storages.JournalStorage(JournalFileBackend(str(self.path)))
            if self.kind == "sqlite":
                connect_args = {"timeout": 60}
            else:
                connect_args = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
            heartbeat = {}
            if heartbeat_seconds:
                heartbeat = {
                    "heartbeat_interval": heartbeat_seconds,
                    "grace_period": 2 * heartbeat_seconds,
                }
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    self.sqlalchemy_url, engine_kwargs={"connect_args": connect_args}, **heartbeat
                )

    def slot_lock(self) -> SlotLock:
        """The lock all workers of this storage share (see the module docstring)."""
        if self.path is not None:
            return FileSlotLock(self.path.with_name(self.path.name + ".learnsyn-lock"))
        if self.sqlalchemy_url.startswith("postgresql"):
            return PostgresSlotLock(self)
        return SlotLock()


def parse_storage(url: str) -> StorageLocation:
    """Check ``--storage`` and resolve its driver, without connecting."""
    text = url.strip()
    if text.startswith("journal:"):
        path = text[len("journal:") :]
        path = path[2:] if path.startswith("///") else path
        if path.startswith("//"):  # a URL's host part: //runs/j.log was the file /runs/j.log
            raise ValueError(
                f"storage {url!r} is ambiguous: expected journal:PATH (relative to here) or "
                "journal:///ABSOLUTE/PATH"
            )
        if not path:
            raise ValueError(f"storage {url!r} names no file: expected journal:PATH")
        return StorageLocation(url, "journal", Path(path), display=f"journal:{path}")
    import sqlalchemy.engine
    import sqlalchemy.exc

    try:
        parsed = sqlalchemy.engine.make_url(text)
    except sqlalchemy.exc.ArgumentError:
        raise ValueError(f"storage URL {url!r} is malformed; expected {SCHEMES_HELP}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValueError(
                f"storage {url!r} is an in-memory database that no other worker can see; "
                "expected sqlite:///PATH"
            )
        return StorageLocation(url, "sqlite", Path(parsed.database), text, text)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername=_postgresql_driver(url))
    try:
        parsed.get_dialect().import_dbapi()
    except sqlalchemy.exc.NoSuchModuleError:
        hint = " (use postgresql://)" if backend == "postgres" else ""
        raise ValueError(
            f"storage URL {url!r} names an unknown database {backend!r}{hint}; "
            f"expected {SCHEMES_HELP}"
        ) from None
    except ImportError as error:
        raise ValueError(
            f"storage {url!r} needs the database driver {error.name or parsed.drivername}; "
            "install it (PostgreSQL: pip install psycopg2-binary)"
        ) from None
    display = parsed.render_as_string(hide_password=True)
    return StorageLocation(url, "database", None, parsed.render_as_string(False), display)


def _postgresql_driver(url: str) -> str:
    import importlib.util

    for module, driver in (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return driver
    raise ValueError(
        f"storage {url!r} needs a PostgreSQL driver: pip install psycopg2-binary "
        "(or the project's [postgres] extra)"
    )


class SlotLock:
    """No lock (databases other than PostgreSQL): the trial count may overshoot by a trial."""

    exact = False

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass

    def close(self) -> None:
        self.release()


class FileSlotLock(SlotLock):
    """An exclusive ``fcntl`` lock on a file beside the storage (one machine)."""

    exact = True

    def __init__(self, path: Path):
        self.path = path
        self._handle = None

    def acquire(self) -> None:
        import fcntl

        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a")
            fcntl.flock(self._handle, fcntl.LOCK_EX)

    def release(self) -> None:
        import fcntl

        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class PostgresSlotLock(SlotLock):
    """A session-level advisory lock on one key per database (any number of machines); the
    server releases it by itself if the worker dies."""

    exact = True
    KEY = int.from_bytes(hashlib.sha256(b"learnsyn-study-slots").digest()[:8], "big", signed=True)

    def __init__(self, location: StorageLocation):
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        self.location = location
        self._engine = sqlalchemy.create_engine(
            location.sqlalchemy_url,
            poolclass=NullPool,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        )
        self._connection = None
        self._held = False

    def _execute(self, sql: str) -> None:
        import sqlalchemy

        with self.location.reporting_errors():
            if self._connection is None:
                connection = self._engine.connect()
                self._connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            self._connection.execute(sqlalchemy.text(sql), {"key": self.KEY})

    def acquire(self) -> None:
        if not self._held:
            self._execute("SELECT pg_advisory_lock(:key)")
            self._held = True

    def release(self) -> None:
        if self._held:
            self._execute("SELECT pg_advisory_unlock(:key)")
            self._held = False

    def close(self) -> None:
        self.release()
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._engine.dispose()


# --- reading a study back: the summary ----------------------------------------------------------


def described(params: dict[str, Any]) -> str:
    """Parameter values in one line (``lr=0.003, cell=gru``)."""
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def worker_state(trial) -> str:
    """Whether the worker of a running trial is ``"alive"``, ``"gone"`` (this host has no
    process with its pid) or ``"unknown"`` (another host, or no pid recorded)."""
    import os
    import socket

    pid, host = trial.user_attrs.get("pid"), trial.user_attrs.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return "unknown"
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return "gone"
    except PermissionError:  # a process of another user
        pass
    return "alive"


def describe_running(study) -> list[str]:
    """One line per running trial: which worker runs it, and what to do if it is gone."""
    from optuna.trial import TrialState

    lines = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        where = f"pid {attrs.get('pid', '?')} on host {attrs.get('host', '?')}"
        state = worker_state(trial)
        if state == "gone":
            advice = "that process is gone: re-run the study command to fail and replace it"
        elif state == "alive":
            advice = "still running"
        else:
            advice = (
                "if that worker is gone, re-run the study command on its host (or, with a "
                "database storage, its heartbeat fails the trial)"
            )
        lines.append(f"trial {trial.number} is RUNNING ({where}): {advice}")
    return lines


def trial_counts(study) -> dict[str, int]:
    """How many trials of the study are complete, pruned, failed (fail), running, waiting."""
    counts = dict.fromkeys(("complete", "pruned", "fail", "running", "waiting"), 0)
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name.lower()] += 1
    return counts


def study_summary(location: StorageLocation, study_name: str | None) -> dict[str, Any]:
    """Trial counts, the best trial (parameters, seed, run, commands), parameter importances."""
    import optuna
    from optuna.trial import TrialState

    storage = location.open(create=False)
    names = optuna.get_all_study_names(storage)
    if study_name is None and len(names) == 1:
        study_name = names[0]
    if study_name not in names:
        listed = ", ".join(names) or "none"
        if study_name is None and names:
            raise ValueError(
                f"storage {location.display} holds several studies: name one with "
                f"--study-name ({listed})"
            )
        if study_name is None:
            raise ValueError(f"storage {location.display} holds no study yet")
        raise ValueError(
            f"no study {study_name!r} in storage {location.display}; studies there: {listed}"
        )
    study = optuna.load_study(study_name=study_name, storage=storage)
    counts = trial_counts(study)
    identity = study.user_attrs.get("learnsyn", {})
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    importances, note = _importances(study, complete)
    exact = sum(str(t.user_attrs.get("measured_on", "")).startswith("exact") for t in complete)
    return {
        "study": study_name,
        "storage": location.display,
        "settings": identity,
        "trials": counts,
        "best_trial": _best_trial(study.best_trial, identity) if counts["complete"] else None,
        "importances": importances,
        "importances_note": note,
        "complete_exact": exact,  # of the completed trials, how many were scored exactly
        "dashboard": location.dashboard_command(),
        "running_trials": describe_running(study),
    }


def _best_trial(trial, identity: dict[str, Any]) -> dict[str, Any]:
    attrs = trial.user_attrs
    best = {
        "number": trial.number,
        "value": trial.value,
        "params": trial.params,
        "seed": attrs.get("seed"),
        "run_dir": attrs.get("run_dir"),
        "host": attrs.get("host"),
        "value_stderr": attrs.get("value_stderr"),
        "measured_on": attrs.get("measured_on"),
    }
    if "config" in attrs:
        best["config"] = attrs["config"]
        best["compare"] = f"learnsyn compare --run {shlex.quote(attrs['run_dir'])}"
        best["rerun"] = _train_command(attrs["config"], attrs["run_dir"])
        best["rerun_note"] = _rerun_note(attrs["config"], identity)
    elif "model_params" in attrs:
        best["model_params"] = attrs["model_params"]
        best["rerun"] = _evaluate_command(identity, attrs["model_params"], attrs.get("seed"))
    return best


def _param_name(optuna_name: str) -> str:
    """A parameter as the user knows it: a decay searched as ``1-decay`` (on a log scale) is
    ``decay (as 1-decay)``; the JSON keeps Optuna's name."""
    if optuna_name.startswith("1-"):
        return f"{optuna_name[2:]} (as {optuna_name})"
    return optuna_name


def _importances(study, complete: list) -> tuple[dict[str, float] | None, str | None]:
    """Optuna's parameter importances over the ``complete`` trials, or why there are none."""
    import optuna

    if len(complete) < 2:
        return None, f"needs at least 2 completed trials (the study has {len(complete)})"
    # all equal: Optuna still shared the importance out (review, session 35)
    if len({trial.value for trial in complete}) < 2:
        return None, "undefined: every completed trial has the same value"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError, ZeroDivisionError) as error:
        return None, f"not computable: {error}"
    if not importances:
        return None, "no parameter was searched in every completed trial"
    return {name: float(value) for name, value in importances.items()}, None


def _train_command(config: dict[str, Any], run_dir: str) -> str:
    """The ``learnsyn train`` command that re-runs a trial: every setting that is required or
    differs from its default, as the option generated from it."""
    from learnsyn.config import TrainConfig, config_fields, option_name

    defaults = TrainConfig()
    parts = ["learnsyn", "train"]
    for field in config_fields(TrainConfig):
        value = config.get(field.name)
        if isinstance(value, dict):
            for key, item in value.items():
                parts += [option_name(field), f"{key}={item}"]
        elif value is not None and (
            field.metadata.get("required") or value != getattr(defaults, field.name)
        ):
            parts += [option_name(field), str(value)]
    # beside the study's folder, not in it: no trial_* name there, no extra run in its TensorBoard
    trial = Path(run_dir)
    parts += ["--out", str(trial.parent.with_name(trial.parent.name + "-reruns") / trial.name)]
    return " ".join(shlex.quote(part) for part in parts)


def _rerun_note(config: dict[str, Any], identity: dict[str, Any]) -> str | None:
    """What `compare` and the re-run of a learned trial do not repeat of how it was scored:
    the study's window (trials are scored at the study's --horizon, a run at its own) and the
    start a ``tuned:`` family gives (tuned with the study's seed, in a re-run with its own)."""
    notes = []
    trained, scored = config.get("horizon"), identity.get("horizon")
    if trained is not None and scored is not None and trained != scored:
        notes.append(
            f"the trial was scored at ages 0..{scored - 1} (the study's --horizon); compare and "
            f"the re-run evaluate the run at its own horizon, ages 0..{trained - 1}, so their "
            "figures are another window's"
        )
    start = str(config.get("start_from") or "")
    if start.startswith("tuned:"):
        notes.append(
            f"the trial's {start} start was tuned with the study's seed {identity.get('seed')}; "
            "the re-run tunes it with its own seed"
        )
    return "; ".join(notes) or None


def _evaluate_command(identity: dict[str, Any], params: dict[str, Any], seed: int | None) -> str:
    parts = ["learnsyn", "evaluate", "--model", str(identity.get("target", "")).split(":")[-1]]
    for key, value in params.items():
        parts += ["--param", f"{key}={value}"]
    parts += ["--task", str(identity.get("task"))]
    for key, value in identity.get("task_params", {}).items():
        parts += ["--task-param", f"{key}={value}"]
    for key in ("synapses", "horizon", "threshold", "convention", "method"):
        parts += [f"--{key}", str(identity.get(key))]
    parts += ["--batch", str(identity.get("eval_batch")), "--seed", str(seed)]
    return " ".join(shlex.quote(part) for part in parts)


def print_summary(data: dict[str, Any], written_to: str, stream) -> None:
    """The human-readable summary (the JSON holds the same and more)."""
    settings, counts = data["settings"], data["trials"]
    metric = settings.get("metric", "objective")

    def say(text: str = "") -> None:
        print(text, file=stream)

    task_params = " ".join(f"{k}={v}" for k, v in settings.get("task_params", {}).items())
    say(
        f"study {data['study']} ({data['storage']}): {settings.get('target')} in "
        f"{settings.get('task')}{f' ({task_params})' if task_params else ''}, "
        f"N={settings.get('synapses')}, {metric} maximized"
    )
    say(
        f"trials: {counts['complete']} complete, {counts['pruned']} pruned, "
        f"{counts['fail']} failed, {counts['running']} running"
    )
    best = data["best_trial"]
    if best is None:
        say("best trial: none yet (no completed trial)")
    else:
        error = best.get("value_stderr")
        say(
            f"best trial {best['number']}: {metric} = {best['value']:.6g}"
            + (f" +- {error:.2g}" if error is not None else "")
            + (f" ({best['measured_on']})" if best.get("measured_on") else "")
        )
        exact = data.get("complete_exact", 0)
        if exact == counts["complete"]:
            say(f"  the best of {counts['complete']} completed trials, each exact (no noise)")
        elif exact and str(best.get("measured_on", "")).startswith("exact"):
            say(
                f"  the best of {counts['complete']} completed trials, itself exact ({exact} of "
                "them exact, the others Monte Carlo on the same random numbers, biased upward)"
            )
        elif exact:  # --method auto: exact where a trial's synapse allows it (review, s. 35)
            say(
                f"  the best of {counts['complete']} completed trials, {exact} of them exact and "
                "the others Monte Carlo on the same random numbers, so biased upward; the re-run "
                "below with another --seed evaluates it on fresh ones"
            )
        elif "compare" in best:
            say(
                f"  the best of {counts['complete']} completed trials on the same random "
                "numbers, so biased upward; `learnsyn compare` re-evaluates on fresh ones"
            )
        else:
            say(
                f"  the best of {counts['complete']} completed trials on the same random "
                "numbers, so biased upward; the re-run below with another --seed evaluates it "
                "on fresh ones"
            )
        values = best.get("model_params") or best["params"]
        say(f"  parameters: {described(values)}")
        say(f"  seed {best['seed']}, run {best['run_dir']} (host {best['host']})")
        if "compare" in best:
            say(f"  compare: {best['compare']}")
        say(f"  re-run: {best['rerun']}")
        if best.get("rerun_note"):
            say(f"  ({best['rerun_note']})")
    for line in data.get("running_trials", []):
        say(line)
    if data["importances"]:
        ranked = ", ".join(f"{_param_name(k)} {v:.2f}" for k, v in data["importances"].items())
        say(f"parameter importances: {ranked}")
    else:
        say(f"parameter importances: {data['importances_note']}")
    if written_to != "-":
        say(f"summary written to {written_to}")
    hidden = " (password hidden: put yours back)" if "***" in data["dashboard"] else ""
    say(f"dashboard: {data['dashboard']}{hidden}  (pip install optuna-dashboard)")

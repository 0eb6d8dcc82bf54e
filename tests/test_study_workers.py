"""Several `learnsyn study` worker processes on one study: journal file, SQLite and a real
PostgreSQL server (started here on a free local port), and a worker killed mid-trial."""

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest

from learnsyn.cli import main


def learned_study(iterations: int) -> list[str]:
    fixed = {
        "iterations": iterations,
        "batch": 32,
        "horizon": 40,
        "burn_in": 40,
        "eval_batch": 16,
        "device": "cpu",
        "figure_every": 1000,
        "checkpoint_every": 1000,
        "state_size": 2,
    }
    args = ["--target", "learned", "--task", "ideal", "--synapses", "100", "--study-name", "w"]
    for key, value in fixed.items():
        args += ["--fixed", f"{key}={value}"]
    return args


def start_worker(storage: str, out: Path, n_trials: int, iterations: int, *extra: str):
    command = [sys.executable, "-m", "learnsyn.cli", "study", *learned_study(iterations)]
    command += ["--storage", storage, "--out", str(out), "--n-trials", str(n_trials), *extra]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def finish(worker, timeout=240) -> str:
    _, err = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, err
    return err


def load_trials(storage: str):
    from learnsyn.study.storage import parse_storage

    study = optuna.load_study(study_name="w", storage=parse_storage(storage).open(create=False))
    return study.get_trials(deepcopy=False)


def check_two_workers(storage: str, out: Path, n_trials: int = 4) -> None:
    workers = [start_worker(storage, out, n_trials, 3, "--pruner", "none") for _ in range(2)]
    for worker in workers:
        finish(worker)
    trials = load_trials(storage)
    # exactly the requested number, each trial number once: none lost, none run twice
    assert [t.number for t in trials] == list(range(n_trials))
    assert [t.state.name for t in trials] == ["COMPLETE"] * n_trials
    assert {t.user_attrs["pid"] for t in trials} == {w.pid for w in workers}
    run_dirs = sorted(p.name for p in (out / "w").glob("trial_*"))
    assert run_dirs == sorted(f"trial_{k}" for k in range(n_trials))
    assert all((out / "w" / name / "checkpoint.pt").exists() for name in run_dirs)


def test_two_workers_share_a_journal_file(tmp_path):
    check_two_workers(f"journal:{tmp_path / 'runs/optuna.journal'}", tmp_path / "runs")


def test_two_workers_share_sqlite(tmp_path):
    check_two_workers(f"sqlite:///{tmp_path / 'runs/optuna.db'}", tmp_path / "runs")


def running_trials(database: Path) -> list[tuple[int, int]]:
    """(number, worker pid) of the running trials, read without writing (no table creation)."""
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
            rows = connection.execute(
                "SELECT t.number, a.value_json FROM trials t JOIN trial_user_attributes a "
                "ON a.trial_id = t.trial_id WHERE t.state = 'RUNNING' AND a.key = 'pid'"
            ).fetchall()
    except sqlite3.OperationalError:  # no database or no tables yet
        return []
    return [(number, int(pid)) for number, pid in rows]


def test_a_worker_killed_mid_trial_is_failed_by_heartbeat_and_replaced(tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs/optuna.db'}"
    workers = {
        worker.pid: worker
        for worker in (
            start_worker(storage, tmp_path / "runs", 3, 60, "--heartbeat", "1") for _ in range(2)
        )
    }
    # generous waits: under load (two cores shared with other work) importing and the first
    # trial take minutes, and a timeout here would fail the test for no fault of the study
    deadline = time.time() + 240
    killed_trial = victim = None
    while victim is None and time.time() < deadline:
        time.sleep(0.2)
        running = running_trials(tmp_path / "runs" / "optuna.db")
        if running:  # SIGKILL: no chance to clean up, as when a machine dies
            killed_trial, pid = running[0]
            victim = workers.pop(pid)
            victim.send_signal(signal.SIGKILL)
    assert victim is not None, "no worker ever ran a trial"
    victim.wait(timeout=30)
    (survivor,) = workers.values()
    finish(survivor, timeout=480)
    states = {t.number: t.state.name for t in load_trials(storage)}
    assert states[killed_trial] == "FAIL"  # marked by its stale heartbeat, not left RUNNING
    assert list(states.values()).count("COMPLETE") == 3
    assert sorted(states) == list(range(len(states)))


# --- a real PostgreSQL server ---------------------------------------------------------------


def _server_binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        pytest.skip("PostgreSQL server binaries not installed (.ci/run installs postgresql)")
    return Path(initdb).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A throw-away server on 127.0.0.1 with an empty database; stopped and deleted after."""
    binaries = _server_binaries()
    as_server_user: list[str] = []
    data_root = Path(tempfile.mkdtemp(prefix="learnsyn-postgres-"))
    if os.geteuid() == 0:  # the server refuses to run as root: use the package's system user
        user = pwd.getpwnam("postgres")
        os.chown(data_root, user.pw_uid, user.pw_gid)
        as_server_user = ["runuser", "-u", "postgres", "--"]
    data, port = data_root / "data", _free_port()
    pg_ctl = [*as_server_user, str(binaries / "pg_ctl"), "-D", str(data)]
    run = dict(check=True, capture_output=True, text=True, timeout=120)
    try:
        subprocess.run(
            [*as_server_user, str(binaries / "initdb"), "-D", str(data), "-U", "postgres"]
            + ["--auth=trust", "--no-sync", "-E", "UTF8"],
            **run,
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k '' -c fsync=off"
        log = data_root / "server.log"
        subprocess.run([*pg_ctl, "-o", options, "-l", str(log), "-w", "-t", "60", "start"], **run)
        subprocess.run(
            [str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
            + ["learnsyn_study"],
            **run,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/learnsyn_study"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(data_root, ignore_errors=True)


def test_two_workers_share_a_postgresql_server(tmp_path, postgres_url, capsys):
    check_two_workers(postgres_url, tmp_path / "runs")
    capsys.readouterr()
    summary = ["study", "--summary", "--storage", postgres_url, "--json", "-"]
    assert main([*summary, "--out", str(tmp_path / "runs")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["study"] == "w" and data["trials"]["complete"] == 4
    assert data["dashboard"].startswith("optuna-dashboard postgresql")

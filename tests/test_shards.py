"""``make test`` runs the suite as two interleaved parts side by side (``tests/run_shards.py``):
the parts must cover every test exactly once, and a failing part must fail the whole run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))
import run_shards  # noqa: E402


def _collected(*args) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *args],
        capture_output=True,
        text=True,
        cwd=TESTS.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_the_parts_cover_every_test_once():
    target = "tests/test_metrics.py"
    whole = _collected(target)
    parts = [_collected(target, f"--shard={k}/3") for k in (1, 2, 3)]
    assert len(whole) >= 6 and all(parts)
    assert sorted(sum(parts, [])) == sorted(whole)  # disjoint, nothing lost


@pytest.mark.parametrize("value", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_a_bad_shard_is_refused_in_one_line(value):
    from conftest import shard_of

    assert shard_of("2/3") == (2, 3)
    with pytest.raises(pytest.UsageError, match=r"expected K/N with 1 <= K <= N"):
        shard_of(value)


def test_a_failing_part_fails_the_run(monkeypatch, capsys):
    """Whichever part fails, the run fails with its status (review, session 26: a runner that
    returned the first part's status still passed the earlier version of this test)."""
    monkeypatch.chdir(TESTS.parent)
    real = run_shards.part_command
    for failing in (1, 2):

        def fake(k, n, args, failing=failing):
            code = 3 if k == failing else 0
            return [sys.executable, "-c", f"import sys; print('part {k}'); sys.exit({code})"]

        monkeypatch.setattr(run_shards, "part_command", fake)
        assert run_shards.main(["--shards", "2"]) == 3
        out = capsys.readouterr().out
        assert "part 1 of 2: exit" in out and "part 2 of 2: exit" in out
    monkeypatch.setattr(run_shards, "part_command", real)
    code = run_shards.main(["--shards", "2", "-q", "tests/test_metrics.py", "-k", "no_such_test"])
    assert code == run_shards.NO_TESTS_COLLECTED  # nothing selected anywhere is not a pass


def test_the_parts_failures_are_merged_for_a_later_lf(monkeypatch, tmp_path):
    """Each part keeps its own cache; the runner merges their last failures into the usual
    cache, so a plain ``pytest --lf`` reruns both parts' failures (the last writer won before)."""
    monkeypatch.setattr(run_shards, "CACHE", tmp_path)
    for k, node in ((1, "tests/a.py::test_a"), (2, "tests/b.py::test_b")):
        path = tmp_path / f"part-{k}" / run_shards.LAST_FAILED
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({node: True}))
    run_shards.merge_last_failed(2)
    merged = json.loads((tmp_path / run_shards.LAST_FAILED).read_text())
    assert merged == {"tests/a.py::test_a": True, "tests/b.py::test_b": True}
    command = run_shards.part_command(2, 2, ["-q"])
    assert command[-4:] == ["--shard=2/2", "-o", f"cache_dir={tmp_path / 'part-2'}", "-q"]
    assert "-o" not in run_shards.part_command(1, 1, ["-q"])  # one part: the usual cache

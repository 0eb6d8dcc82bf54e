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


def test_a_failing_part_fails_the_run(monkeypatch, capsys, tmp_path):
    """Whichever part fails, the run fails with its status (review, session 26: a runner that
    returned the first part's status still passed the earlier version of this test)."""
    monkeypatch.chdir(TESTS.parent)
    monkeypatch.setattr(run_shards, "CACHE", tmp_path)  # not the cache of the run around it
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
    """Each part keeps its own cache, started from the usual last failures; afterwards an old
    failure stays unless the part that ran it passed it, and every part's new failures are
    added, so a plain ``pytest --lf`` reruns exactly what failed (review, session 26: the last
    part to write won, then the union replaced failures from plain pytest runs)."""
    monkeypatch.setattr(run_shards, "CACHE", tmp_path)
    usual = tmp_path / run_shards.LAST_FAILED
    usual.parent.mkdir(parents=True)
    usual.write_text(json.dumps({"old_fails_again": True, "old_now_passes": True, "other": True}))
    run_shards.seed_part_caches(2)
    after = {
        1: ["old_fails_again", "other", "new_in_1"],  # part 1 ran old_now_passes: it passed
        2: ["old_fails_again", "old_now_passes", "other", "new_in_2"],
    }
    for k, failed in after.items():
        path = tmp_path / f"part-{k}" / run_shards.LAST_FAILED
        assert json.loads(path.read_text()) == json.loads(usual.read_text())  # seeded
        path.write_text(json.dumps(dict.fromkeys(failed, True)))
    run_shards.merge_last_failed(2)
    merged = set(json.loads(usual.read_text()))
    assert merged == {"old_fails_again", "other", "new_in_1", "new_in_2"}
    command = run_shards.part_command(2, 2, ["-q"])
    assert command[-4:] == ["--shard=2/2", "-o", f"cache_dir={tmp_path / 'part-2'}", "-q"]
    assert "-o" not in run_shards.part_command(1, 1, ["-q"])  # one part: the usual cache

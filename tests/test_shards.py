"""``make test`` runs the suite as two interleaved parts side by side (``tests/run_shards.py``):
the parts must cover every test exactly once, and a failing part must fail the whole run."""

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
    monkeypatch.chdir(TESTS.parent)
    code = run_shards.main(["--shards", "2", "-q", "tests/no_such_file.py"])
    assert code not in (0, run_shards.NO_TESTS_COLLECTED)
    assert "part 2 of 2" in capsys.readouterr().out
    code = run_shards.main(["--shards", "2", "-q", "tests/test_metrics.py", "-k", "no_such_test"])
    assert code == run_shards.NO_TESTS_COLLECTED  # nothing selected anywhere is not a pass

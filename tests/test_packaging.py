"""tasks/ and baselines/ are installed as learnsyn.tasks / learnsyn.baselines, so unrelated
packages called `tasks` or `baselines` can neither shadow them nor be shadowed by them."""

import subprocess
import sys
from pathlib import Path

import learnsyn

REPO = Path(learnsyn.__file__).resolve().parent.parent


def test_foreign_tasks_and_baselines_packages_do_not_shadow_ours(tmp_path):
    for name in ("tasks", "baselines"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("FOREIGN = True\n")
    code = (
        "import tasks, baselines, learnsyn.tasks, learnsyn.baselines\n"
        "from learnsyn.scenario import make_scenario\n"
        "from learnsyn.registry import make_model\n"
        "assert tasks.FOREIGN and baselines.FOREIGN\n"
        "assert not hasattr(learnsyn.tasks, 'FOREIGN')\n"
        "make_scenario('bounded'); make_model('benna-fusi')\n"
        "print(learnsyn.tasks.__file__)\n"
    )
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).resolve().is_relative_to(REPO / "tasks")


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "learnsyn"
    result = subprocess.run([str(script), "list"], capture_output=True, text=True)
    assert result.returncode == 0 and "benna-fusi" in result.stdout

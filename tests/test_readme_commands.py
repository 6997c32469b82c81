"""The README's install-and-test command: what CI extracts and runs, and that plain `pytest` collects."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_extractor():
    spec = importlib.util.spec_from_file_location("readme_commands", ROOT / ".ci" / "readme_commands.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ci_runs_the_readme_test_command_as_written():
    extractor = load_extractor()
    commands = extractor.test_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert commands == ["pip install torch==2.13.0", 'pip install -e ".[test]"', "pytest"]


def test_extraction_refuses_a_readme_without_the_test_line():
    extractor = load_extractor()
    app_only = "## Set up\n\n```bash\npip install torch==2.13.0 && pip install -e . && carexpert-tui\n```\n"
    with pytest.raises(extractor.ReadmeError, match="found none"):
        extractor.test_commands(app_only)
    not_pytest = '```bash\npip install -e ".[test]" && python -m unittest\n```\n'
    with pytest.raises(extractor.ReadmeError, match="should run pytest"):
        extractor.test_commands(not_pytest)
    unfenced = 'Run pip install -e ".[test]" && pytest in a shell.\n'
    with pytest.raises(extractor.ReadmeError):
        extractor.test_commands(unfenced)


def test_ci_script_exits_2_with_a_message_for_a_readme_without_it(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# a project\n\n```bash\npytest\n```\n", encoding="utf-8")
    result = subprocess.run([sys.executable, str(ROOT / ".ci" / "readme_commands.py"), str(readme)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "install-and-test command" in result.stderr and "fix:" in result.stderr


def test_plain_pytest_collects_the_tests_that_import_from_the_repository_root():
    """`pytest` (unlike `python -m pytest`) does not put the current folder on sys.path.

    ``python -P`` keeps the working directory off sys.path the same way, and PYTHONPATH is
    dropped, so only the pytest configuration can make ``tests.tui`` importable.
    """
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-P", "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             "tests/tui/conftest.py", "tests/reliability/test_app_load.py"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "ModuleNotFoundError" not in result.stdout

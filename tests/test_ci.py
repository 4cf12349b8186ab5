"""The CI's pytest wrapper: a run that collects no tests is red, failures stay failures."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def ci_pytest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / ".ci" / "pytest.sh"), sys.executable,
                           "-q", "-p", "no:cacheprovider", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("args, rc, fragment", [
    (("tests/test_errors.py", "-k", "no_test_has_this_name"), 1, "collected no tests (exit 5)"),
    (("tests/test_errors.py", "-k", "every_data_error"), 0, "test suite wall time"),
    (("tests/no_such_file.py",), 4, "file or directory not found"),
])
def test_ci_pytest_exit_codes(args, rc, fragment):
    proc = ci_pytest(*args)
    assert proc.returncode == rc, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert fragment in proc.stdout + proc.stderr


def test_ci_pytest_keeps_a_failing_test_red(tmp_path):
    (tmp_path / "test_red.py").write_text("def test_red():\n    assert 1 == 2\n")
    proc = ci_pytest(str(tmp_path / "test_red.py"))
    assert proc.returncode == 1 and "1 failed" in proc.stdout

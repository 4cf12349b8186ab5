"""Claimed, atomic output folders: checked before work, one writer, all or nothing, and the
leftovers of killed writers removed by the next writer (real SIGKILLed subprocesses)."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dc_mlops.errors import DataError
from dc_mlops.outputs import claim_output, claim_path, remove_stale
from tests.conditions import wait_for

REPO = Path(__file__).resolve().parents[1]

#: a writer in its own process: claims argv[1], writes its pid into the staging folder, then
#: tells the test it holds the claim (argv[2] appears, whole: written aside and renamed) and
#: waits until argv[3] appears
WRITER = """
import os, sys, time
from pathlib import Path
from dc_mlops.errors import DataError
from dc_mlops.outputs import claim_output
out, holding, release = (Path(a) for a in sys.argv[1:4])
try:
    with claim_output(out) as staging:
        (staging / "writer.txt").write_text(str(os.getpid()))
        part = holding.with_name(holding.name + ".part")  # whole when it appears
        part.write_text(str(staging))
        part.replace(holding)
        while not release.exists():
            time.sleep(0.01)
except DataError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
"""


def start_writer(tmp_path: Path, out: Path, tag: str) -> tuple[subprocess.Popen, Path, Path]:
    holding, release = tmp_path / f"holding-{tag}", tmp_path / f"release-{tag}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out), str(holding), str(release)],
                            env=env, stderr=subprocess.PIPE, text=True)
    return proc, holding, release


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_success_publishes_the_whole_folder_and_leaves_nothing_hidden(tmp_path):
    out = tmp_path / "new" / "cert"
    with claim_output(out) as staging:
        assert staging.parent == out.parent and staging.name.startswith(".cert.partial-")
        assert claim_path(out).is_file() and not out.exists()
        (staging / "summary.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]
    assert hidden(out.parent) == []


def test_an_error_leaves_no_output_and_no_staging(tmp_path):
    out = tmp_path / "cert"
    with pytest.raises(RuntimeError, match="boom"):
        with claim_output(out) as staging:
            (staging / "half.csv").write_text("run,ls\n")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_existing_folder_is_accepted(tmp_path):
    (tmp_path / "cert").mkdir()
    with claim_output(tmp_path / "cert") as staging:
        (staging / "a.txt").write_text("a")
    assert (tmp_path / "cert" / "a.txt").is_file()


@pytest.mark.parametrize("make, fragment", [
    (lambda t: (t / "cert").mkdir() or (t / "cert" / "x").write_text("x"), "already exists"),
    (lambda t: (t / "cert").write_text("a file"), "already exists"),
    (lambda t: (t / "cert").symlink_to(t / "elsewhere"), "already exists"),
])
def test_a_taken_output_is_refused_before_any_work(tmp_path, make, fragment):
    make(tmp_path)
    body_ran = False
    with pytest.raises(DataError, match=fragment) as err:
        with claim_output(tmp_path / "cert"):
            body_ran = True
    assert not body_ran and "\n" not in str(err.value)
    assert hidden(tmp_path) == []


def test_a_path_under_a_file_is_refused_at_once():
    with pytest.raises(DataError, match=r"/dev/null/x: cannot create it, /dev/null is not a folder"):
        with claim_output("/dev/null/x"):
            pytest.fail("the body must not run")


@contextlib.contextmanager
def unwritable_folder():
    """A folder this process cannot write in: mode 0555, and as root (who ignores modes) the
    process acts as `nobody` meanwhile. In /tmp, which `nobody` may traverse."""
    folder = Path(tempfile.mkdtemp(prefix="dcmlops-ro-"))
    folder.chmod(0o555)
    try:
        if os.geteuid() == 0:
            os.seteuid(65534)
            try:
                yield folder
            finally:
                os.seteuid(0)
        else:
            yield folder
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


def test_a_read_only_parent_is_refused_at_once():
    with unwritable_folder() as ro:
        with pytest.raises(DataError, match=r"cannot write in .*Permission denied"):
            with claim_output(ro / "sub" / "cert"):
                pytest.fail("the body must not run")
        assert list(ro.iterdir()) == []


def test_two_writers_of_one_new_output_exactly_one_wins(tmp_path):
    out = tmp_path / "cert"
    writers = [start_writer(tmp_path, out, tag) for tag in ("a", "b")]
    procs = [w[0] for w in writers]
    try:
        # the loser fails at once, while the winner still holds the claim
        wait_for(lambda: any(p.poll() is not None for p in procs), what="the loser to exit")
        loser = next(p for p in procs if p.poll() is not None)
        winner_i = 1 - procs.index(loser)
        winner, holding, release = writers[winner_i]
        assert loser.returncode == 2
        err = loser.stderr.read().strip()
        assert err.startswith(f"error: {out}: another process (pid {winner.pid} on ") and \
            "\n" not in err
        wait_for(holding.exists, what="the winner to hold the claim")
        release.touch()
        assert winner.wait(timeout=120) == 0
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert (out / "writer.txt").read_text() == str(winner.pid)
    assert [n for n in hidden(tmp_path)] == []
    # a third writer, after the winner published, is told the output exists
    late, _, _ = start_writer(tmp_path, out, "c")
    assert late.wait(timeout=120) == 2 and "output already exists" in late.stderr.read()


def killed_writer(tmp_path: Path, out: Path) -> Path:
    """A writer of ``out`` SIGKILLed while it holds the claim; returns its staging folder."""
    proc, holding, _ = start_writer(tmp_path, out, "k")
    wait_for(holding.exists, what="the writer to hold the claim")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    return Path(holding.read_text())


def test_a_killed_writer_leaves_no_output_and_the_next_writer_removes_its_leftovers(tmp_path):
    out = tmp_path / "cert"
    staging = killed_writer(tmp_path, out)
    assert not out.exists()
    assert staging.is_dir() and claim_path(out).is_file()  # what a kill leaves behind
    # the next writer of *another* output in the same folder cleans up
    with claim_output(tmp_path / "other") as s2:
        (s2 / "a.txt").write_text("a")
    assert not staging.exists() and not claim_path(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".", "cert"))) == []


def test_the_next_writer_of_the_same_output_takes_over_a_killed_claim(tmp_path):
    out = tmp_path / "cert"
    staging = killed_writer(tmp_path, out)
    with claim_output(out) as s2:
        (s2 / "b.txt").write_text("b")
    assert not staging.exists() and sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert hidden(tmp_path) == []


def test_a_live_writer_keeps_its_staging_while_others_write_beside_it(tmp_path):
    out = tmp_path / "cert"
    proc, holding, release = start_writer(tmp_path, out, "live")
    try:
        wait_for(holding.exists, what="the writer to hold the claim")
        staging = Path(holding.read_text())
        with claim_output(tmp_path / "other"):
            pass
        assert staging.is_dir() and claim_path(out).is_file()
        release.touch()
        assert proc.wait(timeout=120) == 0
    finally:
        proc.kill()
        proc.wait()
    assert (out / "writer.txt").is_file()


def test_leftovers_of_another_host_are_left_alone(tmp_path):
    (tmp_path / ".cert.partial-abc").mkdir()
    claim_path(tmp_path / "cert").write_text(json.dumps(
        {"host": socket.gethostname() + "-elsewhere", "pid": 1, "started": 0.0}))
    assert remove_stale(tmp_path) == []
    assert hidden(tmp_path) == [".cert.claim", ".cert.partial-abc"]

"""Output folders that appear whole or not at all, and that one process at a time writes.

``with claim_output(out) as staging:`` — call it before any work (before an MLflow run
starts) and build the files in ``staging``:

* **Checked first.** ``out`` must not exist (an empty folder is accepted) and its parent must
  be creatable and writable: ``--out /dev/null/x`` or a read-only parent is one
  :class:`~dc_mlops.errors.DataError` line before anything is computed.
* **Claimed atomically.** The claim is an exclusive ``flock`` on the hidden file
  ``.<name>.claim`` beside ``out``, holding the claimant's host and pid. Of two processes
  writing the same new ``out`` exactly one gets it; the other gets a one-line DataError
  naming the holder. The kernel drops the lock when its holder dies, even by SIGKILL, so a
  claim never outlives its process.
* **Published with one rename.** On success ``staging`` (``.<name>.partial-XXXX`` in the same
  parent, so on the same file system) is renamed to ``out``; on an exception it is removed
  and ``out`` does not appear. A kill leaves only hidden staging and claim files, which the
  next claimant in the same parent folder removes (below).
* **Stale leftovers removed.** Each claimant looks at the other ``.*.claim`` files in its
  parent folder: one whose lock it can take and whose owner is a dead process of this host
  belonged to a killed writer; its ``.<name>.partial-*`` folders and the claim file go.
  Leftovers of writers on other hosts are left alone (their liveness cannot be known here).

``flock`` is exclusive on local file systems and on NFSv4; on file systems without shared
locks two hosts could both claim, and the second rename then fails (``out`` exists), so at
most one output is ever published.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dc_mlops.errors import DataError
from dc_mlops.processes import Owner

log = logging.getLogger("dc_mlops")

CLAIM_SUFFIX = ".claim"
PARTIAL = ".partial-"


def claim_path(out: Path) -> Path:
    return out.parent / f".{out.name}{CLAIM_SUFFIX}"


@contextmanager
def claim_output(out: str | os.PathLike) -> Iterator[Path]:
    """Claim ``out``, yield an empty staging folder beside it, publish it as ``out`` on
    success. Raises DataError (before any work) when ``out`` cannot be created or is taken."""
    out = Path(out).absolute()
    _make_parent(out)
    _check_free(out)
    fd = _lock(out)
    staging: Path | None = None
    try:
        _check_free(out)  # another process may have published it before we got the claim
        remove_stale(out.parent, keep=out.name)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}{PARTIAL}", dir=out.parent))
        yield staging
        _check_free(out)
        if out.is_dir():
            out.rmdir()  # the accepted empty folder
        os.rename(staging, out)
        staging = None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        _unlock(out, fd)


def _check_free(out: Path) -> None:
    try:
        taken = out.is_symlink() or (out.exists() and (not out.is_dir() or any(out.iterdir())))
    except OSError as exc:
        raise DataError(f"{out}: cannot look inside it: {exc.strerror or exc}") from None
    if taken:
        raise DataError(f"{out}: output already exists; choose another `out` or remove it")


def _make_parent(out: Path) -> None:
    """Create out's parent folders and prove we can write in it (a probe file)."""
    try:
        existing = out.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise DataError(f"{out}: cannot create it, {existing} is not a folder")
        out.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out.parent).close()
    except OSError as exc:
        raise DataError(f"{out}: cannot write in {exc.filename or out.parent}: "
                        f"{exc.strerror or exc}") from None


def _lock(out: Path) -> int:
    """An exclusive lock on out's claim file (the file at the path, not an unlinked one)."""
    path = claim_path(out)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise DataError(f"{out}: cannot create the claim file {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise DataError(f"{out}: cannot lock {path}: {exc.strerror}") from None
            raise DataError(f"{out}: another process ({holder or 'unknown'}) is writing this "
                            "output; wait for it or choose another `out`") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, Owner.me().to_json().encode(), 0)
            return fd
        os.close(fd)  # its holder finished and removed it between our open and lock: again


def _unlock(out: Path, fd: int) -> None:
    try:
        claim_path(out).unlink(missing_ok=True)  # while still holding it (see _lock)
    finally:
        os.close(fd)


def _holder(fd: int, seconds: float = 2.0) -> Owner | None:
    """Who holds the claim: it writes its name just after it takes the lock, so a loser that
    came in between waits a moment for it (only the error message depends on it)."""
    deadline = time.monotonic() + seconds
    while (owner := Owner.from_json(_read(fd))) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return owner


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode(errors="replace")
    except OSError:
        return ""


def remove_stale(folder: Path, keep: str = "") -> list[Path]:
    """Remove the staging folders and claim files that killed writers left in ``folder``
    (``keep``: the name this process holds the claim of; its own leftovers go too).
    Returns what was removed."""
    removed: list[Path] = []
    for claim in folder.glob(f".*{CLAIM_SUFFIX}"):
        name = claim.name[1:-len(CLAIM_SUFFIX)]
        if name == keep:
            removed += _remove_partials(folder, name)
            continue
        try:
            fd = os.open(claim, os.O_RDWR)
        except OSError:
            continue  # gone meanwhile, or not ours to open
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its writer is alive
            owner = Owner.from_json(_read(fd))
            if owner is None or not owner.is_dead():
                continue  # another host's writer, or unreadable: leave it
            removed += _remove_partials(folder, name)
            if os.stat(claim).st_ino == os.fstat(fd).st_ino:
                claim.unlink()
                removed.append(claim)
        except FileNotFoundError:
            continue
        finally:
            os.close(fd)
    if removed:
        log.info("removed %d leftover(s) of killed writers in %s", len(removed), folder)
    return removed


def _remove_partials(folder: Path, name: str) -> list[Path]:
    prefix = f".{name}{PARTIAL}"
    partials = [p for p in folder.iterdir() if p.name.startswith(prefix) and p.is_dir()]
    for p in partials:
        shutil.rmtree(p, ignore_errors=True)
    return partials

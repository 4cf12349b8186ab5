"""Certification JSONs (Golden, DCS-only): ``{"<run>": [[first_ls, last_ls], ...]}``.

Ranges are inclusive. Reading validates strictly (a malformed or overlapping Golden JSON
would silently relabel good LS as bad), writing always emits sorted, merged ranges.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dc_mlops.errors import DataError

_PACK = 10_000_000  # LS numbers stay far below this; (run, ls) -> one int64 key


@dataclass(frozen=True)
class CertJSON:
    """An immutable set of (run, LS) stored as merged inclusive ranges per run."""

    ranges: dict[int, tuple[tuple[int, int], ...]]

    # ---------- construction ----------
    @classmethod
    def from_dict(cls, obj: object, where: str = "<json>") -> "CertJSON":
        if not isinstance(obj, dict):
            raise DataError(f"{where}: top level must be an object {{run: [[first, last], ...]}}")
        out: dict[int, tuple[tuple[int, int], ...]] = {}
        for key, value in obj.items():
            if not str(key).strip().isdigit():
                raise DataError(f"{where}: key {key!r} is not a run number")
            run = int(key)
            if not isinstance(value, list):
                raise DataError(f"{where}: run {key}: value must be a list of [first, last] ranges")
            pairs = []
            for item in value:
                if (not isinstance(item, list) or len(item) != 2
                        or not all(isinstance(x, int) and not isinstance(x, bool) for x in item)):
                    raise DataError(f"{where}: run {key}: range {item!r} is not [first, last] integers")
                first, last = item
                if first < 1 or last < first:
                    raise DataError(f"{where}: run {key}: range {item!r} has first > last or LS < 1")
                pairs.append((first, last))
            pairs.sort()
            for (a0, b0), (a1, b1) in zip(pairs, pairs[1:]):
                if a1 <= b0:
                    raise DataError(f"{where}: run {key}: ranges [{a0}, {b0}] and [{a1}, {b1}] overlap")
            if run in out:
                raise DataError(f"{where}: run {key} appears twice")
            if pairs:
                out[run] = _merge(pairs)
        return cls(dict(sorted(out.items())))

    @classmethod
    def from_lumisections(cls, runs, ls) -> "CertJSON":
        """The merged ranges covering the given (run, LS) pairs."""
        keys = np.unique(np.asarray(runs, np.int64) * _PACK + np.asarray(ls, np.int64))
        out: dict[int, tuple[tuple[int, int], ...]] = {}
        if len(keys) == 0:
            return cls({})
        r, l = keys // _PACK, keys % _PACK
        breaks = np.flatnonzero((np.diff(r) != 0) | (np.diff(l) != 1)) + 1
        starts = np.r_[0, breaks]
        ends = np.r_[breaks - 1, len(keys) - 1]
        for s, e in zip(starts, ends):
            out.setdefault(int(r[s]), ())
            out[int(r[s])] += ((int(l[s]), int(l[e])),)
        return cls(out)

    # ---------- queries ----------
    def contains(self, runs, ls) -> np.ndarray:
        """Vectorised membership: a bool per (run, LS)."""
        runs = np.asarray(runs, np.int64)
        ls = np.asarray(ls, np.int64)
        firsts, lasts = self._flat()
        key = runs * _PACK + ls
        i = np.searchsorted(firsts, key, side="right") - 1
        ok = i >= 0
        i = np.maximum(i, 0)
        return ok & (key <= lasts[i]) if len(firsts) else np.zeros(len(key), bool)

    def _flat(self) -> tuple[np.ndarray, np.ndarray]:
        firsts = [r * _PACK + a for r, rr in self.ranges.items() for a, _ in rr]
        lasts = [r * _PACK + b for r, rr in self.ranges.items() for _, b in rr]
        return np.asarray(firsts, np.int64), np.asarray(lasts, np.int64)

    def lumisections(self) -> tuple[np.ndarray, np.ndarray]:
        """Every (run, LS) as two arrays, sorted."""
        runs, ls = [], []
        for r, rr in self.ranges.items():
            for a, b in rr:
                ls.append(np.arange(a, b + 1))
                runs.append(np.full(b - a + 1, r))
        if not runs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(runs).astype(np.int64), np.concatenate(ls).astype(np.int64)

    @property
    def n_runs(self) -> int:
        return len(self.ranges)

    @property
    def n_ls(self) -> int:
        return sum(b - a + 1 for rr in self.ranges.values() for a, b in rr)

    # ---------- set operations ----------
    def union(self, other: "CertJSON") -> "CertJSON":
        r1, l1 = self.lumisections()
        r2, l2 = other.lumisections()
        return CertJSON.from_lumisections(np.r_[r1, r2], np.r_[l1, l2])

    def intersection(self, other: "CertJSON") -> "CertJSON":
        r, l = self.lumisections()
        keep = other.contains(r, l)
        return CertJSON.from_lumisections(r[keep], l[keep])

    def difference(self, other: "CertJSON") -> "CertJSON":
        r, l = self.lumisections()
        keep = ~other.contains(r, l)
        return CertJSON.from_lumisections(r[keep], l[keep])

    # ---------- output ----------
    def to_dict(self) -> dict[str, list[list[int]]]:
        return {str(r): [[a, b] for a, b in rr] for r, rr in self.ranges.items()}

    def to_text(self) -> str:
        """The usual layout of CMS certification JSONs: sorted runs, merged ranges, one run
        per line, so a DC expert can read and diff it."""
        lines = [f'  "{r}": {json.dumps([[a, b] for a, b in rr])}' for r, rr in self.ranges.items()]
        return "{\n" + ",\n".join(lines) + "\n}\n" if lines else "{}\n"

    def write(self, path: str | Path) -> None:
        """Write atomically (a reader never sees a half-written JSON), world-readable."""
        write_text_atomic(Path(path), self.to_text())


def _merge(pairs: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged = [pairs[0]]
    for a, b in pairs[1:]:
        if a == merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return tuple(merged)


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    """``json.loads`` keeps the last of two equal keys: a run listed twice would silently
    lose its first ranges (906 good LS become bad), so refuse it."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def read_certjson(path: str | Path) -> CertJSON:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: certification JSON not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); a certification JSON is "
                        "plain UTF-8 JSON") from None
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except _DuplicateKey as exc:
        raise DataError(f"{path}: run {exc.args[0]} appears twice; merge its ranges into one "
                        "entry") from None
    return CertJSON.from_dict(obj, str(path))


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

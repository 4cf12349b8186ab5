"""Who owns a run or an output being written: host, process id and process start time.

A process killed with SIGKILL cannot clean up after itself; the next process that starts
the same kind of work must recognise what the dead one left behind (an MLflow run still
RUNNING, a hidden staging folder). It can only do that for processes of its own host, so
an owner is (host, pid, start time): the start time tells a dead process from a new one
that got the same pid. Owners on other hosts are never judged dead.
"""
from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass

import psutil


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    started: float  # process start time, seconds since the epoch (psutil's create_time)

    @classmethod
    def me(cls) -> "Owner":
        return cls(socket.gethostname(), os.getpid(), psutil.Process().create_time())

    def is_local(self) -> bool:
        return self.host == socket.gethostname()

    def is_dead(self) -> bool:
        """True only when this owner is on this host and its process is gone (or the pid now
        belongs to a process started later). Unknown or remote owners are never dead."""
        if not self.is_local():
            return False
        try:
            proc = psutil.Process(self.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped by its parent
                return True
            return abs(proc.create_time() - self.started) > 1.0
        except psutil.NoSuchProcess:
            return True
        except psutil.AccessDenied:  # it exists; we may not look: not ours to judge
            return False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Owner | None":
        try:
            d = json.loads(text)
            return cls(str(d["host"]), int(d["pid"]), float(d["started"]))
        except (ValueError, KeyError, TypeError):
            return None

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


"""Owners (host, pid, start time): alive, dead, reused pid, another host."""
import subprocess
import sys

import psutil

from dc_mlops.processes import Owner
from tests.conditions import wait_for


def test_owner_liveness_by_host_pid_and_start_time():
    me = Owner.me()
    assert not me.is_dead()
    assert Owner(me.host, me.pid, me.started - 100).is_dead()  # the pid was reused
    assert not Owner(me.host + "-elsewhere", 999_999_999, 0.0).is_dead()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    child = Owner(me.host, proc.pid, psutil.Process(proc.pid).create_time())
    assert not child.is_dead()
    proc.kill()
    wait_for(child.is_dead, what="SIGKILL to land")  # it lands asynchronously
    assert psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE  # not reaped, yet dead
    proc.wait()
    assert child.is_dead()
    assert Owner.from_json(child.to_json()) == child and Owner.from_json("garbage") is None

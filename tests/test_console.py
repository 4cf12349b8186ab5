"""The console: progress bars only on a terminal, library noise off, one line per error."""
from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

from dc_mlops import console

REPO = Path(__file__).resolve().parents[1]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_is_silent_when_output_is_not_a_terminal():
    out = io.StringIO()
    with console.progress(5, "train sparse_ae", "epoch", file=out) as bar:
        for _ in range(5):
            bar.update(1)
    assert out.getvalue() == ""


def test_progress_bar_draws_on_a_terminal(monkeypatch):
    monkeypatch.setitem(console._state, "bars", True)  # an earlier `-q` command turned bars off
    out = _Terminal()
    with console.progress(5, "train sparse_ae", "epoch", file=out, mininterval=0) as bar:
        hook = console.epoch_hook(bar)
        for epoch in range(3):
            hook(epoch, {"val_loss": 0.25})
    text = out.getvalue()
    assert "train sparse_ae" in text and "3/5" in text and "val_loss 0.25" in text


def test_nothing_to_count_draws_no_bar():
    out = _Terminal()
    with console.progress(0, "train pca", "epoch", file=out) as bar:
        bar.update(1)
    assert out.getvalue() == ""


def test_epoch_hook_passes_every_epoch_on():
    seen = []
    with console.progress(3, enabled=False) as bar:
        hook = console.epoch_hook(bar, then=lambda e, logs: seen.append((e, logs["loss"])))
        for epoch in range(3):
            hook(epoch, {"loss": float(epoch)})
    assert seen == [(0, 0.0), (1, 1.0), (2, 2.0)]


def test_log_lines_name_the_level_only_when_it_matters():
    fmt = console._ConsoleFormatter()
    info = logging.LogRecord("dc_mlops", logging.INFO, "", 0, "train done", None, None)
    warn = logging.LogRecord("dc_mlops", logging.WARNING, "", 0, "out of domain", None, None)
    assert fmt.format(info).split(" ", 1)[1] == "train done"
    assert fmt.format(warn).split(" ", 1)[1] == "WARNING out of domain"


def test_startup_noise_pattern_keeps_real_errors():
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1795572540.366111   13064 port.cc:153] oneDNN custom operations are on.",
        "I0000 00:00:1795572540.368925   13064 cudart_stub.cc:31] Could not find cuda drivers",
        "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild",
    ]
    kept = ["E0000 00:00:1795572571.535109   13179 some_op.cc:52] a real failure",
            "Traceback (most recent call last):", "ImportError: libfoo.so not found"]
    assert all(console.STARTUP_NOISE.match(line) for line in noise)
    assert not any(console.STARTUP_NOISE.match(line) for line in kept)


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items()
               if k not in console.QUIET_ENVIRONMENT and k != "PYTHONWARNINGS"}
    environ.update(PYTHONPATH=str(REPO), **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environ, timeout=300, cwd=REPO)


def test_tensorflow_and_mlflow_start_silently_unless_verbose():
    code = ("import sys; from dc_mlops import console; console.configure(verbose={v}); "
            "import tensorflow, mlflow, warnings; "
            "warnings.warn('library deprecation', DeprecationWarning); print('ok')")
    quiet = _python(code.format(v=False))
    assert quiet.returncode == 0 and quiet.stdout.strip() == "ok", quiet.stderr
    assert quiet.stderr == ""
    loud = _python(code.format(v=True))
    assert loud.returncode == 0, loud.stderr
    assert "absl::InitializeLog" in loud.stderr or "I0000" in loud.stderr  # what is hidden


def test_a_failing_command_prints_exactly_one_line(tmp_path):
    dc = [sys.executable, "-c", "import sys; from dc_mlops.cli import main; sys.exit(main())"]
    environ = {k: v for k, v in os.environ.items() if k not in console.QUIET_ENVIRONMENT}
    environ.update(PYTHONPATH=str(REPO), MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db")
    environ.pop("MLFLOW_RUN_ID", None)
    proc = subprocess.run(dc + ["-q", "certify", "--data", "nope", "--pd", "JetHT"],
                          capture_output=True, text=True, env=environ, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr

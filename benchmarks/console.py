"""What a person reads on the console: line counts of the README's commands, and how many
of those lines are library noise (issue 13: "README command 1 prints at most about 60 lines").

Each command runs in a fresh folder with a fresh SQLite tracking store, stdout and stderr
merged as a terminal would show them (but not a terminal: progress bars are off, as in CI).
README command 1 (``mlflow run . -e main --env-manager local``) runs in a clean copy of the
checkout (``git archive HEAD``), as on a fresh clone after set-up.
A line counts as noise when it matches a known library pattern (TensorFlow's C++ banner,
MLflow's download bars and CloudPickle/input-example warnings, registry prints, TensorFlow
retracing warnings) or is one of the per-epoch lines a progress bar replaces; everything else
is ours.

    python benchmarks/console.py                       # this checkout
    python benchmarks/console.py --checkout ../other=before   # also another checkout, labelled
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import table, write  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOISE = {
    "TensorFlow C++ banner / cuInit / NodeDef": re.compile(
        r"^(WARNING: All log messages before absl|[IWE]\d{4} \d\d:\d\d:\d+\.\d+ |"
        r"To enable the following instructions)"),
    "MLflow 'Downloading artifacts' bars": re.compile(r"Downloading artifacts"),
    "MLflow CloudPickle / input-example warnings": re.compile(
        r"CloudPickle|input example was not provided|^\s*color_warning\(|mlflow\.pyfunc: "),
    "MLflow INFO lines / registry prints": re.compile(
        r"INFO mlflow\.|^Registered model .* already exists|^Created version '|"
        r"^Successfully registered model"),
    "TensorFlow retracing warnings": re.compile(r"triggered tf\.function retracing"),
    "one line per training epoch": re.compile(r" epoch \d+/\d+ "),
    "other Python warnings": re.compile(r"Warning: |^\s+warnings\.warn\("),
}
MLFLOW_RUN = "mlflow run"
CASES = [
    ("bad input, -q", ["-q", "certify", "--data", "nope", "--pd", "JetHT"]),
    ("main --pd ZeroBias --n-ls 6000", ["main", "--pd", "ZeroBias", "--n-ls", "6000"]),
    ("README command 1: mlflow run . -e main --env-manager local (all PDs, 40 000 LS)",
     [MLFLOW_RUN, ".", "-e", "main", "--env-manager", "local"]),
]


def run(checkout: Path, args: list[str]) -> tuple[int, list[str], float]:
    with tempfile.TemporaryDirectory(prefix="dc-console-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(checkout),
               "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db"}
        for key in ("MLFLOW_RUN_ID", "TF_CPP_MIN_LOG_LEVEL", "MLFLOW_LOGGING_LEVEL",
                    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "PYTHONWARNINGS"):
            env.pop(key, None)
        cwd = tmp
        if args[0] == MLFLOW_RUN:  # a clean copy of the checkout, the project itself
            cwd = f"{tmp}/clone"
            os.mkdir(cwd)
            archive = subprocess.run(["git", "-C", str(checkout), "archive", "HEAD"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", cwd], input=archive, check=True)
            env["PYTHONPATH"] = cwd
            # as after `. .venv/bin/activate`: the command's `python` is this environment's
            env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
            env["VIRTUAL_ENV"] = str(Path(sys.executable).parents[1])
            command = [str(Path(sys.executable).parent / "mlflow"), "run", *args[1:]]
        else:
            code = "import sys; from dc_mlops.cli import main; sys.exit(main())"
            command = [sys.executable, "-c", code, *args]
        t0 = time.perf_counter()
        proc = subprocess.run(command, cwd=cwd, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=3600)
        # lines as a terminal shows them: a bar redrawn with \r stays one line
        # (bytes, not text mode: universal newlines would turn each \r into a line)
        out = proc.stdout.decode(errors="replace")
        lines = out.rstrip("\n").split("\n") if out.strip() else []
        return proc.returncode, lines, time.perf_counter() - t0


def classify(lines: list[str]) -> dict[str, int]:
    counts = {name: 0 for name in NOISE}
    for line in lines:
        for name, pattern in NOISE.items():
            if pattern.search(line):
                counts[name] += 1
                break
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", action="append", default=[], metavar="PATH[=LABEL]",
                        help="another checkout to measure as well (e.g. before a change)")
    args = parser.parse_args()
    checkouts = [(REPO, "this checkout")]
    for spec in args.checkout:
        path, _, label = spec.partition("=")
        checkouts.append((Path(path).resolve(), label or path))
    rows, samples = [], []
    for checkout, label in checkouts:
        for name, argv in CASES:
            rc, lines, seconds = run(checkout, argv)
            noise = classify(lines)
            rows.append([label, name, rc, len(lines), sum(noise.values()),
                         len(lines) - sum(noise.values()),
                         ", ".join(f"{k}: {v}" for k, v in noise.items() if v) or "-",
                         f"{seconds:.0f} s"])
            samples.append(f"### {label}: {name} (exit {rc})\n\n```\n"
                           + "\n".join(line.replace("\r", " ¦ ")[:160] for line in lines[-40:])
                           + "\n```")
    body = table(["checkout", "command", "exit", "lines", "noise", "ours", "noise by kind",
                  "wall"], rows)
    body += ("\n\nExit code 2 on `main` means the chain stopped at a step's one-line error "
             "(the line is counted as ours); `mlflow run` exits 1 when its command fails. "
             "The last 40 lines of each run:\n\n"
             + "\n\n".join(samples))
    write("console", "Console lines of the README's commands", body,
          "python benchmarks/console.py " + " ".join(f"--checkout {c}" for c in args.checkout))


if __name__ == "__main__":
    main()

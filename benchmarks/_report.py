"""Shared by the benchmark scripts: print a Markdown table and write it with date and machine."""
from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}"


def command_line(script: str, argv: list[str] | None) -> str:
    """The command that reproduces a run, for the results file (``argv``: as parsed)."""
    import shlex
    import sys
    args = argv if argv is not None else sys.argv[1:]
    return " ".join([f"python benchmarks/{script}"] + [shlex.quote(a) for a in args])


def table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def write(name: str, title: str, body: str, command: str) -> Path:
    text = (f"# {title}\n\n{dt.datetime.now():%Y-%m-%d %H:%M}, {machine()}\n\n"
            f"Command: `{command}`\n\n{body}\n")
    print(text)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(text)
    return path

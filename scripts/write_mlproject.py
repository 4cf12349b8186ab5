"""Regenerate MLproject from dc_mlops/settings.py, where every parameter is declared once.

    python scripts/write_mlproject.py

tests/test_mlproject.py checks that the committed MLproject matches the settings.
"""
from pathlib import Path

from dc_mlops.settings import ENTRY_POINTS, parameters

TYPES = {int: "int", float: "float", str: "string", bool: "string"}


def render() -> str:
    lines = ["name: dc_mlops", "", "conda_env: conda.yaml", "", "entry_points:"]
    for entry, cls in ENTRY_POINTS.items():
        params = parameters(cls)
        lines += [f"  {entry}:", "    parameters:"]
        for name, (typ, default, _) in params.items():
            if isinstance(default, bool):
                value = f'"{str(default).lower()}"'
            else:
                value = f'"{default}"' if isinstance(default, str) else default
            lines.append(f"      {name}: {{type: {TYPES[typ]}, default: {value}}}")
        args = " ".join(f"--{n.replace('_', '-')} {{{n}}}" for n in params)
        lines.append(f'    command: "python entrypoints/{entry}.py {args}"')
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    (Path(__file__).resolve().parents[1] / "MLproject").write_text(render())

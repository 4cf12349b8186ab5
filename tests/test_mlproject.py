"""Every MLproject parameter reaches the code with the default declared in settings.py."""
import re

import pytest
import yaml

from dc_mlops.cli import build_parser
from dc_mlops.settings import ENTRY_POINTS, parameters
from tests.conftest import REPO

MLPROJECT = yaml.safe_load((REPO / "MLproject").read_text())
TYPES = {int: "int", float: "float", str: "string", bool: "string"}


def test_every_entry_point_is_declared():
    assert set(MLPROJECT["entry_points"]) == set(ENTRY_POINTS)


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_parameters_match_settings_and_reach_the_command(entry):
    spec = MLPROJECT["entry_points"][entry]
    declared = parameters(ENTRY_POINTS[entry])
    assert set(spec["parameters"]) == set(declared)
    for name, (typ, default, _) in declared.items():
        p = spec["parameters"][name]
        assert p["type"] == TYPES[typ], name
        assert p["default"] == (str(default).lower() if isinstance(default, bool) else default), name
        assert f"--{name.replace('_', '-')} {{{name}}}" in spec["command"], name
    assert re.match(rf"python entrypoints/{entry}\.py ", spec["command"])
    assert (REPO / "entrypoints" / f"{entry}.py").is_file()


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_cli_has_the_same_defaults(entry):
    args = build_parser().parse_args([entry])
    for name, (_, default, _) in parameters(ENTRY_POINTS[entry]).items():
        assert getattr(args, name) == default

"""Every parameter is checked when its settings are built: one line naming it, before any work."""
import pytest

from dc_mlops.cli import main
from dc_mlops.errors import DataError
from dc_mlops.settings import (CertifySettings, EvaluateSettings, PreprocessSettings,
                               TrainSettings, TuneSettings, parse_runs)

BAD = [  # (settings class, parameters, fragment of the one-line message)
    (TrainSettings, dict(seed=-1), "parameter seed: must be >= 0"),
    (TrainSettings, dict(model="foo"), "parameter model: unknown detector"),
    (TrainSettings, dict(conditions="temperature"), "parameter conditions: must be one of"),
    (EvaluateSettings, dict(seeds="a,b"), "parameter seeds"),
    (EvaluateSettings, dict(seeds="0,0"), "lists a value twice"),
    (EvaluateSettings, dict(models=""), "parameter models"),
    (EvaluateSettings, dict(models="pca,foo"), "unknown detector"),
    (EvaluateSettings, dict(models="pca,mahalanobis:score_mode=foo"),
     "parameter models: model 'mahalanobis:score_mode=foo': mahalanobis: score_mode must be"),
    (EvaluateSettings, dict(models="mahalanobis:depth=3"), "mahalanobis has no parameter 'depth'"),
    (EvaluateSettings, dict(models="mahalanobis:top_n"), "'top_n' is not key=value"),
    (EvaluateSettings, dict(models="mahalanobis:top_n=many"), "top_n='many' is not of the type"),
    (EvaluateSettings, dict(models="pca,pca"), "names a detector twice"),
    (EvaluateSettings, dict(max_bad_as_good=2.0), "parameter max_bad_as_good"),
    (EvaluateSettings, dict(max_good_as_bad=-0.5), "parameter max_good_as_bad"),
    (EvaluateSettings, dict(window_runs=5, calib_runs=5), "calib_runs (5) must be smaller"),
    (EvaluateSettings, dict(protocol="crystal-ball"), "parameter protocol"),
    (TuneSettings, dict(n_trials=-1), "parameter n_trials"),
    (TuneSettings, dict(n_jobs=0), "parameter n_jobs"),
    (TuneSettings, dict(timeout=-1), "parameter timeout"),
    (TuneSettings, dict(storage="bogus://x"), "parameter storage"),
    (TuneSettings, dict(storage="bogus://alice:SECRET@host/db"), "***@host"),
    (PreprocessSettings, dict(pd="path/to/set.txt"), "parameter pd"),
    (PreprocessSettings, dict(split_mode="runs"), "needs train_runs and test_runs"),
    (PreprocessSettings, dict(train_runs="297050"), "only used with split_mode=runs"),
    (PreprocessSettings, dict(split_mode="runs", train_runs="12-3", test_runs="4"),
     "ends before it starts"),
    (PreprocessSettings, dict(train_fraction=0.6, val_fraction=0.2, calib_fraction=0.2),
     "must leave a share for test"),
    (PreprocessSettings, dict(golden_json="g.json", label_column="good"), "not both"),
    (CertifySettings, dict(pd="JetHT,JetHT"), "names a PD twice"),
    (CertifySettings, dict(pd="all", model_uri="models:/x/1"), "for one PD only"),
    (TrainSettings, dict(seed=1.5), "parameter seed: must be int"),
]


@pytest.mark.parametrize("cls,params,fragment", BAD, ids=[f"{c.__name__}-{p}" for c, p, _ in BAD])
def test_bad_parameter_is_one_line_naming_it(cls, params, fragment):
    with pytest.raises(DataError) as exc:
        cls(**params)
    assert fragment in str(exc.value)
    assert "\n" not in str(exc.value)
    assert "SECRET" not in str(exc.value)


def test_defaults_are_valid():
    from dc_mlops.settings import ENTRY_POINTS
    for cls in ENTRY_POINTS.values():
        cls()


def test_run_lists_and_ranges():
    assert parse_runs("297050, 297056,297100-297300") == [(297050, 297050), (297056, 297056),
                                                          (297100, 297300)]


def test_cli_bad_parameter_exits_2_with_one_line(capsys):
    assert main(["evaluate", "--max-good-as-bad", "-0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: parameter max_good_as_bad")
    with pytest.raises(SystemExit) as exc:
        main(["train", "--no-such-option", "1"])
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1

"""review: verdicts on a certification become labels and a certifier with refreshed cut-offs."""
import json

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from dc_mlops.cli import main as cli
from dc_mlops.data.certjson import read_certjson
from dc_mlops.errors import DataError
from dc_mlops.settings import CertifySettings, ReviewSettings
from dc_mlops.steps.certify import run_certify
from dc_mlops.steps.review import run_review
from dc_mlops.tracking.registry import production_version

NAME = "dc-certifier-ZeroBias"


@pytest.fixture
def certified(production, tmp_path):
    """A certification whose grey and BAD LS were reviewed, the era's Golden JSON playing
    the DC expert."""
    run_certify(CertifySettings(pd="ZeroBias", data=str(production), out=str(tmp_path / "c")))
    golden = read_certjson(production / "golden.json")
    grey = pd.read_csv(tmp_path / "c" / "grey_zone.csv", keep_default_na=False)
    bad = pd.read_csv(tmp_path / "c" / "bad_ls.csv")
    rows = [(r, l) for r, l in zip(grey["run"], grey["ls"])]
    rows += [(b.run, l) for b in bad.itertuples() for l in range(b.first_ls, b.last_ls + 1)]
    runs, ls = zip(*rows)
    verdicts = pd.DataFrame({"run": runs, "ls": ls})
    verdicts["verdict"] = ["GOOD" if g else "BAD"
                           for g in golden.contains(verdicts["run"], verdicts["ls"])]
    path = tmp_path / "c" / "grey_zone.csv"
    verdicts.to_csv(path, index=False)
    return tmp_path / "c", verdicts


def test_review_logs_the_labels_and_refreshes_the_production_cutoffs(certified):
    folder, verdicts = certified
    before = production_version(NAME)
    res = run_review(ReviewSettings(verdicts=str(folder / "grey_zone.csv"), pd="ZeroBias"))
    assert res.n_good + res.n_bad == len(verdicts)
    after = production_version(NAME)
    assert res.versions == {"ZeroBias": str(after.version)} and after.version != before.version
    assert after.tags["dc_mlops.reviewed_from"] == str(before.version)
    spec = mlflow.pyfunc.load_model(f"models:/{NAME}@production").unwrap_python_model().spec
    old = mlflow.pyfunc.load_model(f"models:/{NAME}/{before.version}").unwrap_python_model().spec
    assert spec["reviews"] == 1
    assert spec["thresholds"]["t_lone"] == old["thresholds"]["t_lone"]  # the lone rule stays
    assert len(spec["calibration_scores"]) > len(old["calibration_scores"])
    # found bad LS never loosen t_good: it stays within what the fully labelled runs support
    from dc_mlops.evaluation.greyzone import bounded_good_cutoff
    assert len(old["known_bad_blocks"]) == len(old["known_bad_scores"])
    limit, _ = bounded_good_cutoff(old["known_bad_scores"], old["cutoffs"]["max_bad_as_good"],
                                   blocks=old["known_bad_blocks"])
    assert spec["thresholds"]["t_good"] <= limit
    assert spec["known_bad_scores"] == old["known_bad_scores"]
    client = MlflowClient()
    arts = {a.path for a in client.list_artifacts(res.run_id)}
    assert {"verdicts.csv", "reviewed_golden.json"} <= arts
    reviewed = json.loads(mlflow.artifacts.load_text(f"runs:/{res.run_id}/reviewed_golden.json"))
    good = verdicts[verdicts["verdict"] == "GOOD"]
    assert all(str(r) in reviewed for r in good["run"])


BAD_VERDICTS = [  # (file content, fragment of the one-line error): one row per case
    ("run,ls,verdict\n315300,1,MAYBE\n", "row 2: verdict 'MAYBE' is not GOOD, BAD or empty"),
    ("run,ls,verdict\n315300,1,\n", "no verdict given"),
    ("run,ls,verdict\n999999,1,GOOD\n", "(run 999999, LS 1) was not certified"),
    ("run,ls,verdict\n315300,1,GOOD\n315300,1,BAD\n", "has two verdicts"),
    ("run,verdict\n315300,GOOD\n", "missing column 'ls'"),
    ("run,ls,verdict\n315300,1.5,GOOD\n", "column 'ls' is not a run/LS number"),
]


def test_bad_verdict_files_are_one_line_errors(certified, capsys):
    folder, _ = certified
    before = production_version(NAME).version
    for content, fragment in BAD_VERDICTS:
        path = folder / "verdicts.csv"
        path.write_text(content)
        assert cli(["review", "--verdicts", str(path), "--pd", "ZeroBias"]) == 2, content
        err = capsys.readouterr().err.strip().splitlines()
        assert fragment in err[-1] and len(err) == 1, (content, err)
    assert production_version(NAME).version == before


def test_verdicts_outside_their_certification_folder_are_refused(certified, tmp_path):
    folder, verdicts = certified
    loose = tmp_path / "elsewhere.csv"
    verdicts.to_csv(loose, index=False)
    with pytest.raises(DataError, match="no flags.parquet beside it"):
        run_review(ReviewSettings(verdicts=str(loose), pd="ZeroBias"))

"""Detector benchmark (issue 3): every dc_mlops detector beside PyOD's, per PD, on one split.

Benchmark (fixed, defined here): per PD, ``simulate(pd, eras=2018A-D, n_ls, seed=2026)``,
written as an era folder and read back with ``load_ls_table`` (summary features of feature
set 2), LS with fewer than 500 events dropped (as ``preprocess`` does).

* ``era`` split (the headline): train on the good LS of 2018A-C (run-wise, chronological:
  the last 15 % of those LS, whole runs, are the early-stopping validation set), test on
  every LS (good and bad) of 2018D.
* ``random`` split (drift check, cheaper model set): runs of all four eras shuffled with a
  seed, 50 % / 15 % of LS (whole runs) for train / validation (good LS only), the last
  35 % of runs as test (good and bad).

Every dc_mlops detector (``registry.names()``) and PyOD 3.6.7's AutoEncoder, VAE, OCSVM,
IForest, KNN and ECOD get exactly the same raw feature matrices. PyOD models are fed the
features standardised with a StandardScaler fitted on the training LS (scaler time counted
in their fit and scoring time), because PyOD's OCSVM and KNN do not scale features
themselves (dc_mlops' baselines do it inside); PyOD's other parameters are its defaults.
Per detector: test ROC AUC and PR AUC (bad = positive), mean ± std over seeds, fit time,
scoring speed (LS/s, one ``score`` call on the test LS tiled to ``--speed-rows`` rows,
seed-0 model). Deterministic detectors (fit does not depend on the seed with these sizes:
dc_mlops pca, knn, ocsvm; PyOD OCSVM, KNN, ECOD) are fitted once.

Targets (issue 3): on every PD the best dc_mlops detector >= the best PyOD one (test ROC AUC);
a default autoencoder per PD reaches its early-stopped best in <= 2 min on 2 cores
(time to the best epoch, from ``fit_seconds_`` and ``history_``); scoring >= 200 000 LS/s
for JetHT feature set 2 on 2 cores.

Also the real pixel fixture (ZeroBias 2017B, chargeInner_PXLayer_1, runs 297047-297050):
train on good LS of the first half of run 297050 (by LS number), test on its second half
and on runs 297047-297049; labels from the ``good`` column, checked against the 2017 Golden
JSON.

    python benchmarks/detectors.py                    # the committed table (~20 min, 2 cores)
    python benchmarks/detectors.py --quick            # smoke run, a few minutes
    python benchmarks/detectors.py --pds JetHT --models vanilla_ae,pca --peers ECOD --seeds 1
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import RESULTS, table, write  # noqa: E402

from dc_mlops.data.certjson import read_certjson  # noqa: E402
from dc_mlops.data.lstable import LabelOptions, load_ls_table  # noqa: E402
from dc_mlops.data.simulator import simulate, write_era  # noqa: E402
from dc_mlops.detectors import registry  # noqa: E402

PDS = ["ZeroBias", "JetHT", "EGamma", "SingleMuon"]
ERAS = ["2018A", "2018B", "2018C", "2018D"]
SIM_SEED = 2026
MIN_EVENTS = 500
PEERS = ["AutoEncoder", "VAE", "OCSVM", "IForest", "KNN", "ECOD"]
DETERMINISTIC = {"pca", "knn", "ocsvm", "OCSVM", "KNN", "ECOD"}
CONTRACTIVE = {"contractive_ae", "sparse_contractive_ae", "contractive_variational_ae"}
RANDOM_SPLIT_MODELS = ["vanilla_ae", "pca", "knn", "iforest", "ocsvm"]
RANDOM_SPLIT_PEERS = ["IForest", "KNN", "ECOD"]
PIXEL = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PIXEL_CSV = PIXEL / "cms2017B_zerobias_pixel" / "chargeInner_PXLayer_1_runs297047-297050.csv"
GOLDEN_2017 = PIXEL / "certification_json" / \
    "Cert_294927-306462_13TeV_PromptReco_Collisions17_JSON.txt"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- data ---------------------------------------------------------------------------------
def load_pd(pd_name: str, n_ls: int, workdir: Path) -> tuple[pd.DataFrame, list[str]]:
    sim = simulate(pd_name, eras=ERAS, n_ls=n_ls, seed=SIM_SEED)
    folder = workdir / pd_name
    write_era(sim, folder)
    t = load_ls_table(str(folder), pd_name, LabelOptions())
    frame = t.frame[t.frame["EventsPerLs"].to_numpy() >= MIN_EVENTS].reset_index(drop=True)
    return frame, t.feature_names


def _tail_runs(frame: pd.DataFrame, share: float) -> np.ndarray:
    """Runs (whole) making up the last ``share`` of the LS of ``frame``, chronologically."""
    runs, counts = np.unique(frame["runId"].to_numpy(), return_counts=True)
    cum = np.cumsum(counts) / counts.sum()
    return runs[cum - 0.5 * counts / counts.sum() > 1 - share]


def era_split(frame: pd.DataFrame, test_era: str = "2018D") -> dict[str, pd.DataFrame]:
    early = frame[frame["era"] != test_era]
    val_runs = _tail_runs(early, 0.15)
    good = early["label"].to_numpy() == 0
    in_val = early["runId"].isin(val_runs).to_numpy()
    return {"train": early[good & ~in_val], "val": early[good & in_val],
            "test": frame[frame["era"] == test_era]}


def random_split(frame: pd.DataFrame, seed: int = SIM_SEED) -> dict[str, pd.DataFrame]:
    runs, counts = np.unique(frame["runId"].to_numpy(), return_counts=True)
    order = np.random.default_rng(seed).permutation(len(runs))
    runs, counts = runs[order], counts[order]
    mid = (np.cumsum(counts) - 0.5 * counts) / counts.sum()
    part = np.where(mid < 0.5, "train", np.where(mid < 0.65, "val", "test"))
    where = frame["runId"].map(dict(zip(runs.tolist(), part.tolist()))).to_numpy()
    good = frame["label"].to_numpy() == 0
    return {"train": frame[(where == "train") & good], "val": frame[(where == "val") & good],
            "test": frame[where == "test"]}


# ---- detectors ----------------------------------------------------------------------------
class Peer:
    """A PyOD detector behind the dc_mlops calling convention (fit, score, fit_seconds_)."""

    vae_epochs = 30  # PyOD's default; --vae-epochs changes it

    def __init__(self, name: str, seed: int):
        self.name, self.seed = name, seed

    def _make(self):
        from pyod.models.auto_encoder import AutoEncoder
        from pyod.models.ecod import ECOD
        from pyod.models.iforest import IForest
        from pyod.models.knn import KNN
        from pyod.models.ocsvm import OCSVM
        from pyod.models.vae import VAE
        s = self.seed
        return {"AutoEncoder": lambda: AutoEncoder(random_state=s, verbose=0),
                "VAE": lambda: VAE(random_state=s, verbose=0, epoch_num=self.vae_epochs),
                "OCSVM": lambda: OCSVM(), "IForest": lambda: IForest(random_state=s),
                "KNN": lambda: KNN(), "ECOD": lambda: ECOD()}[self.name]()

    def fit(self, X, X_val=None):  # PyOD has no validation-driven early stopping
        t0 = time.perf_counter()
        self.scaler_ = StandardScaler().fit(X)
        self.model_ = self._make().fit(self.scaler_.transform(X))
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def score(self, X):
        return self.model_.decision_function(self.scaler_.transform(X))


def build(kind: str, name: str, seed: int, overrides: dict):
    if kind == "pyod":
        return Peer(name, seed)
    return registry.build(name, seed=seed, **overrides.get(name, {}))


def ae_overrides(models: list[str], args) -> dict[str, dict]:
    """Parameters changed from the registry defaults (written into the results)."""
    out: dict[str, dict] = {}
    for m in models:
        if m in CONTRACTIVE and args.contractive_epochs:
            out[m] = {"epochs": args.contractive_epochs}
        elif registry.family(m) == "autoencoder" and args.ae_epochs:
            out[m] = {"epochs": args.ae_epochs}
    return out


def time_to_best(det) -> float | None:
    """Seconds of training until the best (restored) epoch, pro rata over epochs run."""
    if not hasattr(det, "best_epoch_"):
        return None
    n = len(det.history_.get("val_loss", [])) or 1
    return det.fit_seconds_ * (det.best_epoch_ + 1) / n


def evaluate(kind: str, name: str, seeds: list[int], split: dict, feats: list[str],
             overrides: dict, speed_rows: int) -> dict:
    Xtr = split["train"][feats].to_numpy(np.float64)
    Xva = split["val"][feats].to_numpy(np.float64)
    Xte = split["test"][feats].to_numpy(np.float64)
    y = split["test"]["label"].to_numpy()
    seeds = seeds[:1] if name in DETERMINISTIC else seeds
    rec: dict = {"kind": kind, "model": name, "seeds": len(seeds), "roc": [], "pr": [],
                 "fit_s": [], "best_s": [], "best_epoch": [], "epochs_run": []}
    for i, seed in enumerate(seeds):
        det = build(kind, name, seed, overrides)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            det.fit(Xtr, Xva)
            s = det.score(Xte)
        rec["roc"].append(roc_auc_score(y, s))
        rec["pr"].append(average_precision_score(y, s))
        rec["fit_s"].append(det.fit_seconds_)
        if hasattr(det, "best_epoch_"):
            rec["best_s"].append(time_to_best(det))
            rec["best_epoch"].append(det.best_epoch_ + 1)
            rec["epochs_run"].append(det.n_epochs_)
        if i == 0:
            big = np.tile(Xte, (int(np.ceil(speed_rows / len(Xte))), 1))[:speed_rows]
            t0 = time.perf_counter()
            det.score(big)
            rec["ls_per_s"] = speed_rows / (time.perf_counter() - t0)
            good_te = s[y == 0]
            rec["good_test_median"] = float(np.median(good_te))
            rec["good_val_median"] = float(np.median(det.score(Xva)))
    rec["roc_mean"], rec["roc_std"] = float(np.mean(rec["roc"])), float(np.std(rec["roc"]))
    rec["pr_mean"], rec["pr_std"] = float(np.mean(rec["pr"])), float(np.std(rec["pr"]))
    rec["fit_mean"] = float(np.mean(rec["fit_s"]))
    return rec


def run_grid(pd_name: str, split_name: str, split: dict, feats: list[str], models, peers,
             seeds, overrides, speed_rows, contractive_seeds, variant_seeds=99,
             deep_peer_seeds=99) -> list[dict]:
    out = []
    for kind, names in (("dc_mlops", models), ("pyod", peers)):
        for name in names:
            s = seeds[:contractive_seeds] if name in CONTRACTIVE else seeds
            if kind == "dc_mlops" and name not in CONTRACTIVE and name != "vanilla_ae" \
                    and registry.family(name) == "autoencoder":
                s = seeds[:variant_seeds]
            if kind == "pyod" and name in ("AutoEncoder", "VAE"):
                s = seeds[:deep_peer_seeds]
            t0 = time.perf_counter()
            rec = evaluate(kind, name, s, split, feats, overrides, speed_rows)
            rec.update(pd=pd_name, split=split_name)
            out.append(rec)
            log(f"{pd_name} {split_name} {kind}:{name} ROC {rec['roc_mean']:.4f}±"
                f"{rec['roc_std']:.4f} PR {rec['pr_mean']:.4f} fit {rec['fit_mean']:.1f}s "
                f"{rec['ls_per_s']:.0f} LS/s epochs {rec['epochs_run']} "
                f"({time.perf_counter() - t0:.0f}s)")
    return out


# ---- pixel fixture ------------------------------------------------------------------------
def pixel_benchmark(models, peers, seeds, speed_rows) -> tuple[list[dict], dict]:
    info: dict = {}
    recs = []
    golden = read_certjson(GOLDEN_2017)
    for rep in ("summary", "bins"):
        t = load_ls_table(str(PIXEL_CSV), "auto", LabelOptions(label_column="good"), rep)
        f = t.frame[t.frame["EventsPerLs"].to_numpy() >= MIN_EVENTS].reset_index(drop=True)
        in_golden = np.asarray(golden.contains(f["runId"].to_numpy(), f["lumiId"].to_numpy()))
        info["golden_agrees"] = bool(((f["label"].to_numpy() == 0) == in_golden).all())
        last = f[f["runId"] == 297050]
        cut = (last["lumiId"].min() + last["lumiId"].max()) / 2
        first = (f["runId"] == 297050) & (f["lumiId"] <= cut)
        train = f[first & (f["label"] == 0)]
        test = f[~first]
        info.update(n_ls=len(f), n_train=len(train), n_test=len(test),
                    n_test_bad=int(test["label"].sum()),
                    n_test_bad_297050=int(test.loc[test["runId"] == 297050, "label"].sum()),
                    n_test_good=int((test["label"] == 0).sum()), cut_ls=cut)
        split = {"train": train, "val": train, "test": test}  # val only used by AEs below
        for kind, names in (("dc_mlops", models), ("pyod", peers)):
            for name in names:
                # AEs carve their own seeded validation share out of train (X_val=None)
                rec = _pixel_eval(kind, name, seeds, split, t.feature_names, speed_rows)
                rec.update(pd="ZeroBias 2017B pixel", split=rep)
                recs.append(rec)
                log(f"pixel {rep} {kind}:{name} ROC {rec['roc_mean']:.4f}±{rec['roc_std']:.4f}"
                    f" PR {rec['pr_mean']:.4f} (297050 2nd half only: "
                    f"{rec.get('roc_297050', float('nan')):.4f})")
    return recs, info


def _pixel_eval(kind, name, seeds, split, feats, speed_rows) -> dict:
    Xtr = split["train"][feats].to_numpy(np.float64)
    test = split["test"]
    Xte = test[feats].to_numpy(np.float64)
    y = test["label"].to_numpy()
    same = (test["runId"] == 297050).to_numpy()
    one = name in DETERMINISTIC or (kind == "dc_mlops" and registry.family(name) == "autoencoder")
    seeds = seeds[:1] if one else seeds
    rec: dict = {"kind": kind, "model": name, "seeds": len(seeds), "roc": [], "pr": [],
                 "fit_s": [], "roc_same": [], "best_s": [], "epochs_run": []}
    for i, seed in enumerate(seeds):
        det = build(kind, name, seed, {})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            det.fit(Xtr, None)
            s = det.score(Xte)
        rec["roc"].append(roc_auc_score(y, s))
        rec["pr"].append(average_precision_score(y, s))
        if 0 < y[same].sum() < same.sum():
            rec["roc_same"].append(roc_auc_score(y[same], s[same]))
        rec["fit_s"].append(det.fit_seconds_)
        if hasattr(det, "best_epoch_"):
            rec["epochs_run"].append(det.n_epochs_)
        if i == 0:
            t0 = time.perf_counter()
            det.score(np.tile(Xte, (max(1, speed_rows // len(Xte)), 1)))
            rec["ls_per_s"] = len(Xte) * max(1, speed_rows // len(Xte)) / (
                time.perf_counter() - t0)
    rec["roc_mean"], rec["roc_std"] = float(np.mean(rec["roc"])), float(np.std(rec["roc"]))
    rec["pr_mean"], rec["pr_std"] = float(np.mean(rec["pr"])), float(np.std(rec["pr"]))
    rec["fit_mean"] = float(np.mean(rec["fit_s"]))
    if rec["roc_same"]:
        rec["roc_297050"] = float(np.mean(rec["roc_same"]))
    return rec


# ---- report -------------------------------------------------------------------------------
def _pm(m, s, n):
    return f"{m:.4f} ± {s:.4f}" if n > 1 else f"{m:.4f} (1 fit)"


def grid_rows(recs: list[dict], overrides: dict) -> list[list]:
    rows = []
    for r in recs:
        note = []
        if r["model"] in overrides:
            note.append(", ".join(f"{k}={v}" for k, v in overrides[r["model"]].items()))
        if r["epochs_run"]:
            note.append(f"epochs run {min(r['epochs_run'])}-{max(r['epochs_run'])}, best at "
                        f"{min(r['best_epoch'])}-{max(r['best_epoch'])}")
        if r.get("good_val_median"):
            note.append(f"good-LS median score test/val {r['good_test_median'] / r['good_val_median']:.2f}")
        if r["roc_mean"] < 0.5:
            note.append("**AUC < 0.5**")
        best = f"{np.mean(r['best_s']):.1f}" if r["best_s"] else ""
        rows.append([r["pd"], r["kind"], r["model"], r["seeds"],
                     _pm(r["roc_mean"], r["roc_std"], r["seeds"]),
                     _pm(r["pr_mean"], r["pr_std"], r["seeds"]), f"{r['fit_mean']:.1f}",
                     best, f"{r['ls_per_s']:,.0f}", "; ".join(note)])
    return rows


def summary_rows(recs: list[dict]) -> list[list]:
    rows = []
    for pd_name in dict.fromkeys(r["pd"] for r in recs):
        mine = [r for r in recs if r["pd"] == pd_name and r["kind"] == "dc_mlops"]
        peer = [r for r in recs if r["pd"] == pd_name and r["kind"] == "pyod"]
        if not mine or not peer:
            continue
        a = max(mine, key=lambda r: r["roc_mean"])
        b = max(peer, key=lambda r: r["roc_mean"])
        diff = a["roc_mean"] - b["roc_mean"]
        rows.append([pd_name, f"{a['model']} {a['roc_mean']:.4f}", f"{b['model']} "
                     f"{b['roc_mean']:.4f}", f"{diff:+.4f}", "yes" if diff >= 0 else "**no**",
                     f"{a['fit_mean'] / b['fit_mean']:.2f}",
                     f"{a['ls_per_s'] / b['ls_per_s']:.2f}"])
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pds", default=",".join(PDS))
    ap.add_argument("--models", default=",".join(registry.names()),
                    help="dc_mlops detectors (registry names)")
    ap.add_argument("--peers", default=",".join(PEERS), help="PyOD detectors")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--contractive-seeds", type=int, default=1,
                    help="seeds for the three contractive AEs (2.3 s/epoch on 30k LS)")
    ap.add_argument("--variant-seeds", type=int, default=1,
                    help="seeds for the non-contractive AE variants other than vanilla_ae")
    ap.add_argument("--deep-peer-seeds", type=int, default=1,
                    help="seeds for PyOD AutoEncoder/VAE (34 s and ~100 s per fit here)")
    ap.add_argument("--vae-epochs", type=int, default=10,
                    help="PyOD VAE epoch_num (its default is 30; 10 = PyOD AutoEncoder's)")
    ap.add_argument("--pixel-models", default="vanilla_ae,variational_ae,ocsvm,iforest,pca,knn",
                    help="dc_mlops detectors on the pixel fixture (AEs with 1 seed there)")
    ap.add_argument("--contractive-epochs", type=int, default=40,
                    help="epoch cap for the contractive AEs (0: registry default 200)")
    ap.add_argument("--ae-epochs", type=int, default=0,
                    help="epoch cap for the other AEs (0: registry default 200)")
    ap.add_argument("--n-ls", type=int, default=20000)
    ap.add_argument("--speed-rows", type=int, default=10000)
    ap.add_argument("--no-random-split", action="store_true")
    ap.add_argument("--no-pixel", action="store_true")
    ap.add_argument("--only-pixel", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 4000 LS, 1 seed, AEs capped at 5 epochs")
    ap.add_argument("--name", default="detectors", help="results file name (.md/.csv)")
    args = ap.parse_args(argv)
    if args.quick:
        args.n_ls, args.seeds, args.ae_epochs, args.contractive_epochs = 4000, 1, 5, 3
        args.speed_rows = 5000
        if args.name == "detectors":
            args.name = "detectors_quick"
    command = "python benchmarks/detectors.py " + " ".join(shlex.quote(a) for a in
                                                          (argv or sys.argv[1:]))
    pds = [p for p in args.pds.split(",") if p]
    models = [m for m in args.models.split(",") if m]
    peers = [p for p in args.peers.split(",") if p]
    for m in models:
        registry.detector_class(m)
    seeds = list(range(args.seeds))
    Peer.vae_epochs = args.vae_epochs
    overrides = ae_overrides(models, args)
    try:
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
    except ImportError:
        log("torch missing: PyOD AutoEncoder/VAE skipped")
        peers = [p for p in peers if p not in ("AutoEncoder", "VAE")]
    t_start = time.perf_counter()
    era_recs, rnd_recs, counts = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for pd_name in ([] if args.only_pixel else pds):
            t0 = time.perf_counter()
            frame, feats = load_pd(pd_name, args.n_ls, Path(tmp))
            split = era_split(frame)
            counts.append([pd_name, len(feats), len(frame)] + [
                f"{len(split[k])}" for k in ("train", "val")] + [
                f"{len(split['test'])} ({int(split['test']['label'].sum())} bad)"])
            log(f"{pd_name}: {len(frame)} LS, {len(feats)} features, split "
                f"{counts[-1][3:]} ({time.perf_counter() - t0:.0f}s)")
            era_recs += run_grid(pd_name, "era", split, feats, models, peers, seeds, overrides,
                                 args.speed_rows, args.contractive_seeds, args.variant_seeds,
                                 args.deep_peer_seeds)
            if not args.no_random_split:
                rs = random_split(frame)
                m2 = [m for m in RANDOM_SPLIT_MODELS if m in models]
                p2 = [p for p in RANDOM_SPLIT_PEERS if p in peers]
                rnd_recs += run_grid(pd_name, "random", rs, feats, m2, p2, seeds[:1],
                                     overrides, args.speed_rows, 1)
            pd.DataFrame(era_recs + rnd_recs).to_csv(RESULTS / f"{args.name}.csv", index=False)
    pix_models = [m for m in args.pixel_models.split(",") if m]
    pix_recs, pix_info = ([], {}) if args.no_pixel else pixel_benchmark(
        pix_models, peers, seeds, args.speed_rows)
    total = time.perf_counter() - t_start
    pd.DataFrame(era_recs + rnd_recs + pix_recs).to_csv(RESULTS / f"{args.name}.csv",
                                                        index=False)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(
        {"overrides": overrides, "pixel": pix_info, "total_s": total}, indent=1, default=str))
    body = report(args, era_recs, rnd_recs, pix_recs, pix_info, counts, overrides, total)
    write(args.name, "Detector benchmark: dc_mlops vs PyOD", body, command.strip())


def report(args, era, rnd, pix, pix_info, counts, overrides, total) -> str:
    hdr = ["PD", "lib", "detector", "seeds", "test ROC AUC", "test PR AUC", "fit s",
           "s to best epoch", "scoring LS/s", "notes"]
    parts = [f"Simulated eras 2018A-D, seed {SIM_SEED}, n_ls={args.n_ls} per PD, LS with "
             f"< {MIN_EVENTS} events dropped; feature set 2 (7 summary numbers per histogram). "
             f"Total wall time {total / 60:.1f} min.",
             "\n## LS per split (era split: train/val = good LS of 2018A-C, test = all 2018D)\n",
             table(["PD", "features", "LS", "train", "val", "test"], counts)]
    if era:
        parts += ["\n## Era split: dc_mlops vs PyOD (test = 2018D)\n",
                  table(hdr, grid_rows(era, overrides)),
                  "\n## Best dc_mlops vs best PyOD (by mean test ROC AUC; ratios = dc_mlops / "
                  "PyOD)\n",
                  table(["PD", "best dc_mlops", "best PyOD", "ROC AUC diff", "target met",
                         "fit time ratio", "scoring speed ratio"], summary_rows(era))]
    if rnd:
        parts += ["\n## Drift check: random run-wise split over 2018A-D (1 seed)\n",
                  table(hdr, grid_rows(rnd, overrides))]
    if pix:
        parts += [f"\n## Real data: ZeroBias 2017B pixel chargeInner_PXLayer_1\n\n"
                  f"{pix_info}\n\nROC AUC on the whole test set; the last column is ROC AUC "
                  f"on the second half of run 297050 alone (runs 297047-297049 are all bad).\n",
                  table(["representation", "lib", "detector", "seeds", "test ROC AUC",
                         "test PR AUC", "fit s", "LS/s", "ROC AUC 297050 2nd half"],
                        [[r["split"], r["kind"], r["model"], r["seeds"],
                          _pm(r["roc_mean"], r["roc_std"], r["seeds"]),
                          _pm(r["pr_mean"], r["pr_std"], r["seeds"]), f"{r['fit_mean']:.2f}",
                          f"{r['ls_per_s']:,.0f}", f"{r.get('roc_297050', float('nan')):.4f}"]
                         for r in pix]),
                  table(["PD", "best dc_mlops", "best PyOD", "ROC AUC diff", "target met",
                         "fit time ratio", "scoring speed ratio"],
                        summary_rows([dict(r, pd=f"pixel {r['split']}") for r in pix]))]
    parts.append(f"\nDeviations from the defaults: {overrides or 'none'}; contractive AEs with "
                 f"{args.contractive_seeds} seed(s), the other AE variants (not vanilla_ae) with "
                 f"{args.variant_seeds} seed(s), PyOD AutoEncoder/VAE with "
                 f"{args.deep_peer_seeds} seed(s), PyOD VAE epoch_num={args.vae_epochs} "
                 f"(PyOD default 30); on the pixel fixture dc_mlops AEs 1 seed with registry "
                 f"defaults, every other detector {args.seeds} seed(s). Per-detector rows: `{args.name}.csv`.")
    return "\n".join(parts)


if __name__ == "__main__":
    main()

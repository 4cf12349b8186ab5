"""Does every autoencoder flavour earn its name? (issue 11, item 2)

Per flavour at its default weight, beside ``vanilla_ae`` with the same seed and data, the
quantity its extra term acts on, so a term that does nothing (or collapses the model) shows:

* ``code L1``: mean Σ_k |h_k| of the code over the good test LS (the sparse term's target),
  and ``code ~0``: the share of code activations below 1 % of the largest;
* ``‖J‖²``: mean squared Frobenius norm of ∂h/∂x over good test LS (the contractive term);
* ``KL``: mean KL of the latent to N(0, 1) (the variational term);
* ``output spread``: mean over features of the standard deviation of the reconstruction
  across good test LS, divided by that of the input (scaled space). A model whose output no
  longer varies (issue 11: sparse_ae at the study's λ, 1e-5 of the input's variation) has
  a ratio near 0 and is a constant-output detector, i.e. distance to a fixed point;
* test ROC AUC on the judged failures (moderate visibility, the PD's own subsystems) of a
  same-era simulated split (``tests/detectors/simulated.py``) with the conditions fit on,
  and distance-to-the-training-mean on the same corrected inputs for reference.

    python benchmarks/autoencoders.py                       # the committed table
    python benchmarks/autoencoders.py --pds ZeroBias --models vanilla_ae,sparse_ae \\
        --scan lambda_sparse=1e-4,1e-3,1e-2 --name autoencoders_scan
    python benchmarks/autoencoders.py --preset study --name autoencoders_study
"""
from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]
from _report import table, write  # noqa: E402

from dc_mlops.detectors import registry  # noqa: E402
from tests.detectors.simulated import same_era_split  # noqa: E402

AES = [n for n in registry.names() if registry.family(n) == "autoencoder"]


def flavour_figures(det, X: np.ndarray, c: np.ndarray) -> dict[str, float]:
    from keras import ops

    from dc_mlops.detectors import losses
    code = det.encode(X, c)
    x = ops.convert_to_tensor(det._scale(det.correction_.transform(X, c)))
    jac = ops.convert_to_numpy(losses.jacobian_frobenius_sq(det.model_.encode_mean, x))
    out = {"code_l1": float(np.abs(code).sum(axis=1).mean()),
           "code_zero": float(np.mean(np.abs(code) < 0.01 * np.abs(code).max())),
           "jac": float(jac.mean()), "spread": det.output_spread(X, c)}
    if det.model_.variational:
        z_mean, z_log_var = det.model_.encoder(x)
        out["kl"] = float(ops.convert_to_numpy(ops.mean(losses.kl_divergence(z_mean, z_log_var))))
    return out


def run(pd_name: str, models: list[str], params: dict, preset: str, seed: int,
        n_ls: int, sim_seed: int, max_train: int) -> list[dict]:
    sp = same_era_split(pd_name, n_ls=n_ls, seed=sim_seed, max_train=max_train)
    Xtr, Xva, Xte = sp.X("train"), sp.X("val"), sp.X("test")
    ctr, cva, cte = sp.c("train"), sp.c("val"), sp.c("test")
    y = sp.y
    inside = (cte >= ctr.min()) & (cte <= ctr.max())
    recs = []
    for name in models:
        accepted = registry.default_params(name)
        p = {k: v for k, v in params.items() if k in accepted}
        det = registry.build(name, preset=preset, seed=seed, **p)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            det.fit(Xtr, Xva, conditions=ctr, conditions_val=cva)
        s = det.score(Xte, conditions=cte)
        corr = det.correction_
        good = (y == 0) & inside
        R_tr = corr.transform(Xtr, ctr)
        dist = np.linalg.norm(corr.transform(Xte, cte) - R_tr.mean(axis=0), axis=1)
        rec = {"pd": pd_name, "model": name, "params": p, "preset": preset,
               "roc": roc_auc_score(y[inside], s[inside]),
               "roc_dist": roc_auc_score(y[inside], dist[inside]),
               "fit_s": det.fit_seconds_, "epochs": det.n_epochs_, "best": det.best_epoch_ + 1,
               "converged": det.converged_,
               "val_recon": float(det.history_["val_recon"][det.best_epoch_]),
               **flavour_figures(det, Xte[good], cte[good])}
        recs.append(rec)
        print(f"{pd_name} {name} {p} ROC {rec['roc']:.4f} (dist {rec['roc_dist']:.4f}) "
              f"spread {rec['spread']:.3f} code L1 {rec['code_l1']:.3g} ~0 {rec['code_zero']:.2f} "
              f"J {rec['jac']:.3g} KL {rec.get('kl', float('nan')):.3g} epochs {rec['epochs']} "
              f"fit {rec['fit_s']:.0f}s", flush=True)
    return recs


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pds", default="ZeroBias")
    ap.add_argument("--models", default=",".join(AES))
    ap.add_argument("--preset", default="default", choices=registry.PRESETS)
    ap.add_argument("--scan", default="", help="one parameter and its values, e.g. "
                                               "lambda_sparse=1e-4,1e-3; every model runs each")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-ls", type=int, default=40000, help="LS simulated per PD (one era)")
    ap.add_argument("--sim-seed", type=int, default=1, help="simulator seed")
    ap.add_argument("--max-train", type=int, default=3000,
                    help="good training LS kept (seeded subsample; 0: all)")
    ap.add_argument("--name", default="autoencoders")
    args = ap.parse_args(argv)
    logging.getLogger("dc_mlops").setLevel(logging.ERROR)
    command = "python benchmarks/autoencoders.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    grid = [{}]
    if args.scan:
        key, values = args.scan.split("=")
        grid = [{key: float(v)} for v in values.split(",")]
    t0 = time.perf_counter()
    recs = []
    for pd_name in args.pds.split(","):
        for params in grid:
            recs += run(pd_name, args.models.split(","), params, args.preset, args.seed,
                        args.n_ls, args.sim_seed, args.max_train)
    rows = []
    for r in recs:
        rows.append([r["pd"], r["model"], ", ".join(f"{k}={v:g}" for k, v in r["params"].items())
                     or "defaults", f"{r['roc']:.4f}", f"{r['roc_dist']:.4f}",
                     f"{r['spread']:.3f}", f"{r['code_l1']:.3g}", f"{r['code_zero']:.2f}",
                     f"{r['jac']:.3g}", f"{r['kl']:.3g}" if "kl" in r else "",
                     f"{r['val_recon']:.4g}", f"{r['epochs']} ({r['best']})",
                     "yes" if r["converged"] else "**no**", f"{r['fit_s']:.0f}"])
    body = (f"Same-era simulated split per PD (`tests/detectors/simulated.py`: one era, "
            f"{args.n_ls} LS, simulator seed {args.sim_seed}, runs shuffled, 50 % of LS train / "
            f"15 % validation, at most {args.max_train or 'all'} good training LS), conditions fit "
            f"on pile-up, preset `{args.preset}`, seed {args.seed}. ROC AUC on the judged failures "
            "(the PD's own subsystems, visibility 2-8) against the good test LS, both restricted "
            "to pile-up inside the training range; `dist` = distance to the training mean on "
            "the same corrected inputs (what a constant-output model scores). Figures on the "
            "good test LS. Total "
            f"{(time.perf_counter() - t0) / 60:.1f} min on a shared, loaded machine.\n\n"
            + table(["PD", "model", "params", "ROC AUC", "dist ROC AUC", "output spread",
                     "code L1", "code ~0", "‖J‖²", "KL", "val recon", "epochs (best)",
                     "converged", "fit s"], rows))
    write(args.name, "Autoencoder flavours: what each term changes", body, command.strip())


if __name__ == "__main__":
    main()

"""One Keras code path for every backend: JAX and PyTorch train, save, load and score.

The Keras backend is fixed when Keras is first imported, so each backend runs in its own
Python process (``KERAS_BACKEND=...``). JAX is in the ``dev`` extra, so CI runs the JAX
case; PyTorch comes with the ``bench`` extra and its case is skipped without it. The JAX
case also loads a model saved under TensorFlow (this process) and must score it the same:
a model trained on a GPU host (JAX) certifies on a laptop (TensorFlow) and back.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dc_mlops.detectors import registry

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, sys
import numpy as np
import keras
from dc_mlops.detectors import load_detector, registry
out_dir, tf_model = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
X = rng.normal(size=(400, 12)); c = rng.uniform(20, 50, 400); X[:, :3] += 0.05 * c[:, None]
report = {"backend": keras.backend.backend(), "models": {}}
for name in ("vanilla_ae", "sparse_contractive_ae", "contractive_variational_ae"):
    det = registry.build(name, hidden=(16, 8), latent_dim=4, epochs=3, seed=1)
    det.fit(X[:300], X[300:350], conditions=c[:300], conditions_val=c[300:350])
    s = det.score(X, conditions=c)
    again = registry.build(name, hidden=(16, 8), latent_dim=4, epochs=3, seed=1).fit(
        X[:300], X[300:350], conditions=c[:300], conditions_val=c[300:350]).score(X, c)
    det.save(f"{out_dir}/{name}")
    back = load_detector(f"{out_dir}/{name}").score(X, conditions=c)
    report["models"][name] = {"history": sorted(det.history_), "finite": bool(np.isfinite(s).all()),
                              "reload_max_diff": float(np.abs(back - s).max()),
                              "same_seed_max_diff": float(np.abs(again - s).max()),
                              "explain_sums": bool(np.allclose(det.explain(X, c).sum(axis=1), s, rtol=1e-5))}
report["tf_model_scores"] = load_detector(tf_model).score(X, conditions=c).tolist()
print("REPORT " + json.dumps(report))
"""


def _run(backend: str, tmp_path: Path, tf_model: Path) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend,
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), str(tf_model)],
                         capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("REPORT "))
    return json.loads(line[len("REPORT "):])


@pytest.fixture(scope="module")
def tf_model(tmp_path_factory):
    """A vanilla AE trained here, on the default backend, and saved."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 12))
    c = rng.uniform(20, 50, 400)
    X[:, :3] += 0.05 * c[:, None]
    det = registry.build("vanilla_ae", hidden=(16, 8), latent_dim=4, epochs=3, seed=1)
    det.fit(X[:300], X[300:350], conditions=c[:300], conditions_val=c[300:350])
    path = tmp_path_factory.mktemp("tf") / "vanilla_ae"
    det.save(path)
    return path, det.score(X, conditions=c)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_backend_trains_saves_loads_and_scores(backend, tmp_path, tf_model):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (jax: the dev extra; torch: the bench extra)")
    report = _run(backend, tmp_path, tf_model[0])
    assert report["backend"] == backend
    for name, r in report["models"].items():
        assert r["finite"] and r["explain_sums"], name
        assert r["reload_max_diff"] < 1e-5, name
        assert r["same_seed_max_diff"] < 1e-5, name  # seeding works on this backend
        assert "val_recon" in r["history"] and "train_contractive" in r["history"] or \
            name == "vanilla_ae"
    # a model saved under TensorFlow scores the same here
    np.testing.assert_allclose(report["tf_model_scores"], tf_model[1], rtol=1e-4, atol=1e-6)

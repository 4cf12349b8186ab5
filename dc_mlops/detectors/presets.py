"""Named parameter sets (``train --preset``): the original study's numbers, kept to compare.

``default`` is each detector's constructor defaults (what works best here, measured in
``benchmarks/results/autoencoders.md``). ``study`` reproduces the original study's
autoencoder: the shape d → 128 → 64 → 16 → 64 → 128 → d, an L1 penalty λ = 1e-5 on every
kernel weight, λc = 1e-5, Adam at lr 1e-4 with β1 0.7, β2 0.9, and 1200 epochs (early stopping on the validation loss still restores the
best epoch). Against a reconstruction error averaged over features that weight penalty
dominates the loss and the sparse variants collapse to a constant output (issue 11): the
preset exists to reproduce and compare, not as a recommendation. The baselines have no
study preset: ``study`` leaves them at their defaults.
"""
from __future__ import annotations

from typing import Any

#: family -> parameters; a variant takes only those it accepts (vanilla_ae: no λ)
STUDY: dict[str, dict[str, Any]] = {
    "autoencoder": {"hidden": [128, 64], "latent_dim": 16, "lambda_sparse": 1e-5,
                    "sparse_on": "weights", "lambda_contractive": 1e-5, "learning_rate": 1e-4,
                    "beta_1": 0.7, "beta_2": 0.9, "epochs": 1200},
}

"""Model-based membership attacks on the released model (Yeom et al. 2018; LiRA-style calibration).

Scores are "higher means member":

* **loss attack**: s_i = −L_i(θ_final) — members were fitted, so their loss is lower;
* **reference-calibrated attack**: s_i = L_i(θ_0) − L_i(θ_final) — the loss drop relative to the base model
  (the reference, trained on nothing), which removes how hard each record was to begin with (the offline
  calibration of Carlini et al. 2022, "Membership Inference Attacks From First Principles", with the base
  model as the one reference model).

Their member/non-member decision thresholds at the median score: it needs no labels and matches prior 1/2.
"""

from __future__ import annotations

import numpy as np


def loss_scores(final_losses: np.ndarray) -> np.ndarray:
    """s_i = −L_i(θ_final)."""
    return -np.asarray(final_losses, dtype=np.float64)


def reference_scores(*, base_losses: np.ndarray, final_losses: np.ndarray) -> np.ndarray:
    """s_i = L_i(θ_0) − L_i(θ_final)."""
    return np.asarray(base_losses, dtype=np.float64) - np.asarray(final_losses, dtype=np.float64)


def median_decision(scores: np.ndarray) -> np.ndarray:
    """Member iff the score is above the median score."""
    scores = np.asarray(scores, dtype=np.float64)
    return scores > np.median(scores)

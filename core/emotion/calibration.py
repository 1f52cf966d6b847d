"""Temperature scaling (Guo et al. 2017): one scalar fitted on held-out logits by NLL.

Used by training (the shipped models) and by fine-tuning in the app, so it lives in core.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Return T in [0.05, 20] minimising the NLL of softmax(logits / T) on held-out (validation) data.

    A bounded 1-D search cannot diverge the way gradient steps on a bad start can.
    """
    logits = logits.double()
    if not torch.isfinite(logits).all():
        raise ValueError("logits contain NaN or inf; the model is broken, not miscalibrated")

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(logits / math.exp(log_t), labels).item())

    res = minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return float(math.exp(res.x))

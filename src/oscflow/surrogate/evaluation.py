"""What a trained surrogate is worth, measured on the test split after training: accuracy
against the exact model and the fit bias its error would cause (``accuracy``), and its speed
(single-spectrum latency, batched throughput). Everything runs on the CPU fast path
(``FastSurrogate``) that fits use, so the figures are those of the model users load."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .accuracy import evaluate, fit_bias
from .model import FastSurrogate, SpectrumSurrogate, SurrogateSpec
from .threads import float64_evaluator


@dataclass(frozen=True)
class Evaluation:
    """Test-split metrics (accuracy, fit bias; ``speed`` filled in only when measured) of the
    surrogate of ``spec``, and the predictions they were computed from (N, K), in the order
    of ``params``."""

    spec: SurrogateSpec
    metrics: dict[str, float]
    speed: dict[str, float]
    params: NDArray[np.floating]
    truth: NDArray[np.floating]
    predictions: NDArray[np.float64]


def evaluate_surrogate(
    surrogate: SpectrumSurrogate,
    params: NDArray[np.floating],
    spectra: NDArray[np.floating],
    sigmas: Mapping[str, float],
    timing: bool = True,
    priors: Mapping[str, float] | None = None,
) -> Evaluation:
    """Accuracy of ``surrogate`` on ``params`` → ``spectra`` (the truth: exact-model spectra),
    the fit bias in units of each input's uncertainty ``sigmas`` (float64 Jacobian, the
    precision fits use; ``priors``: the inputs a fit constrains, ``accuracy.fit_bias``), and
    with ``timing`` its latency and throughput here
    (``FastSurrogate.timing``)."""
    fast = FastSurrogate(surrogate.cpu().eval())
    metrics, preds = evaluate(fast.predict, params, spectra)
    metrics.update(fit_bias(float64_evaluator(fast), params, spectra, preds, sigmas, priors))
    speed = fast.timing() if timing else {}
    return Evaluation(surrogate.spec, metrics, speed, params, spectra, preds)

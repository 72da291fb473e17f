"""Accuracy of a surrogate against the exact model on held-out spectra.

The test split of a dataset holds exact-predictor spectra (the truth), so accuracy needs no
re-simulation. Metrics (relative deviation d = pred/true − 1 per bin):
- ``max_rel_dev_peak1`` / ``p99_rel_dev_peak1``: max and 99th percentile of |d| over bins holding
  ≥ 1 % of the spectrum's peak (the bins that carry the physics);
- ``max_rel_dev_all`` / ``p99_rel_dev_all``: the same over all bins with true > 0;
- ``artefact_rms_median`` / ``artefact_rms_max``: seed 001's "oscillatory artefacts": the RMS of
  the bin-to-bin wiggle of d, i.e. d minus its running mean over ``window`` bins, over the
  ≥ 1 %-of-peak bins, per spectrum (median and max over spectra). A smooth normalisation or
  slope error does not count; a ripple does;
- ``pearson_chi2_median`` / ``pearson_chi2_max``: Σ (pred − true)²/true per spectrum (counts at
  the dataset's exposure, bins with true > 0): √ of it bounds every parameter's linearised fit
  bias in σ (``surrogate.losses``);
- ``fit_bias_max_sigma`` / ``fit_bias_rms_sigma`` (``fit_bias``): what the error does to a fit,
  the linearised shift of each parameter's best fit in units of its error in that fit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..stats import bias

PEAK_FRACTION = 0.01


def relative_deviation(
    pred: NDArray[np.floating], true: NDArray[np.floating]
) -> NDArray[np.float64]:
    true = np.asarray(true, dtype=np.float64)
    return np.divide(
        np.asarray(pred, dtype=np.float64) - true, true, out=np.zeros_like(true), where=true > 0
    )


def _running_mean(d: NDArray[np.float64], window: int) -> NDArray[np.float64]:
    kernel = np.ones(window) / window
    pad = window // 2
    padded = np.pad(d, ((0, 0), (pad, window - 1 - pad)), mode="edge")
    return np.stack([np.convolve(row, kernel, mode="valid") for row in padded])


def accuracy_metrics(
    pred: NDArray[np.floating], true: NDArray[np.floating], window: int = 25
) -> dict[str, float]:
    """Metrics for a batch of predictions (N, K) against the truth (N, K)."""
    true = np.asarray(true, dtype=np.float64)
    d = relative_deviation(pred, true)
    peak_mask = true >= PEAK_FRACTION * true.max(axis=1, keepdims=True)
    all_mask = true > 0
    wiggle = d - _running_mean(np.where(peak_mask, d, 0.0), window)
    rms = np.sqrt(
        np.sum(np.where(peak_mask, wiggle**2, 0.0), axis=1) / np.maximum(peak_mask.sum(axis=1), 1)
    )
    a_peak, a_all = np.abs(d[peak_mask]), np.abs(d[all_mask])
    chi2 = np.sum(d * d * np.where(all_mask, true, 0.0), axis=1)
    return {
        "max_rel_dev_peak1": float(a_peak.max()),
        "p99_rel_dev_peak1": float(np.percentile(a_peak, 99)),
        "max_rel_dev_all": float(a_all.max()),
        "p99_rel_dev_all": float(np.percentile(a_all, 99)),
        "mean_abs_rel_dev_peak1": float(a_peak.mean()),
        "artefact_rms_median": float(np.median(rms)),
        "artefact_rms_max": float(rms.max()),
        "pearson_chi2_median": float(np.median(chi2)),
        "pearson_chi2_max": float(chi2.max()),
        "n_spectra": float(true.shape[0]),
    }


def evaluate(
    predict: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    params: NDArray[np.floating],
    spectra: NDArray[np.floating],
    chunk: int = 8192,
) -> tuple[dict[str, float], NDArray[np.float64]]:
    """Predict the whole split in chunks; returns the metrics and the predictions."""
    preds = np.concatenate(
        [
            predict(np.asarray(params[s : s + chunk], dtype=np.float64))
            for s in range(0, len(params), chunk)
        ]
    )
    return accuracy_metrics(preds, np.asarray(spectra)), preds


def experiment_priors(parameters: Mapping[str, Any], inputs: Sequence[str]) -> dict[str, float]:
    """The widths of the priors a fit puts on the inputs (``ParameterSpec.prior``, as the fit
    service profiles them); inputs without one are free."""
    priors = {k: parameters[k].prior for k in inputs}
    return {k: float(prior[1]) for k, prior in priors.items() if prior is not None}


def fit_bias(
    predict: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    params: NDArray[np.floating],
    truth: NDArray[np.floating],
    pred: NDArray[np.floating],
    sigmas: Mapping[str, float],
    priors: Mapping[str, float] | None = None,
    step: float = 0.1,
) -> dict[str, float]:
    """Linearised shift of an Asimov fit caused by the surrogate's error, in units of each
    parameter's error in that fit (``oscflow.stats.bias``), at every point of ``params``
    (columns in the order of ``sigmas``), at the spectra's own exposure. ``predict`` gives the
    Jacobian by central differences of ``step``·σ (σ: the experiment's parameter uncertainty).
    ``priors``: the inputs the fit profiles with a Gaussian prior, and its width (detector
    parameters: ``experiment_priors``); the others are free."""
    names = list(sigmas)
    steps = [step * float(sigmas[k]) for k in names]
    widths = [float((priors or {}).get(k, np.inf)) for k in names]
    shifts = bias.fit_bias(
        predict, np.asarray(params, dtype=np.float64), truth, pred, steps, widths
    )
    return bias.fit_bias_metrics(shifts, names)

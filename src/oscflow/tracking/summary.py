"""The summary metrics of a training run: one value per run, what each means, in which unit.

``oscflow train`` logs them at step 0 (``SUMMARY_STEP``) once training is done. MLflow 3's
chart view draws a metric that every run has at step 0 as a bar chart, one bar per run (the
runs side by side), and a metric logged at any step ≥ 1 as a line against the step (the
per-epoch losses): summary metrics logged at the last training step came out as one dot per
run on a step axis. MLflow has no metric descriptions; the units are in the names where they
are physical (``_s``, ``_per_s``, ``_sigma``) and every metric's unit and meaning is in the
run's description (``description``), which the run's UI page shows.
"""

from __future__ import annotations

from collections.abc import Mapping

SUMMARY_STEP = 0

# name → (unit, meaning); relative deviations d = surrogate/exact − 1 per bin, on the test split.
UNITS: dict[str, tuple[str, str]] = {
    "p99_rel_dev_peak1": ("fraction", "99th percentile of |d| over bins with ≥ 1 % of the peak"),
    "max_rel_dev_peak1": ("fraction", "max |d| over bins with ≥ 1 % of the peak"),
    "p99_rel_dev_all": ("fraction", "99th percentile of |d| over all bins with counts"),
    "max_rel_dev_all": ("fraction", "max |d| over all bins with counts"),
    "mean_abs_rel_dev_peak1": ("fraction", "mean |d| over bins with ≥ 1 % of the peak"),
    "artefact_rms_median": ("fraction", "median RMS of the bin-to-bin wiggle of d"),
    "artefact_rms_max": ("fraction", "max RMS of the bin-to-bin wiggle of d"),
    "pearson_chi2_median": ("χ²", "median Σ (surrogate − exact)²/exact, counts at the exposure"),
    "pearson_chi2_max": ("χ²", "max of that χ²; √χ² bounds each parameter's fit shift in σ"),
    "fit_bias_max_sigma": ("σ", "max linearised fit shift / stat. error, all parameters"),
    "fit_bias_rms_sigma": ("σ", "RMS linearised fit shift / stat. error"),
    "latency_single_s": ("s", "one spectrum, CPU fast path (median)"),
    "throughput_per_s": ("spectra/s", "batches of 4096, CPU fast path (median)"),
    "train_seconds": ("s", "wall time of the fit"),
    "n_parameters": ("count", "trainable parameters"),
    "epochs": ("count", "epochs trained"),
    "n_spectra": ("count", "test spectra evaluated"),
}
FIT_BIAS_PREFIX = "fit_bias_max_sigma."  # + parameter name: that parameter's max shift, σ


def unit(name: str) -> tuple[str, str]:
    """(unit, meaning) of a summary metric; ("", "") for one not in the catalogue."""
    if name.startswith(FIT_BIAS_PREFIX):
        return "σ", f"max linearised fit shift of {name[len(FIT_BIAS_PREFIX) :]} / its stat. error"
    return UNITS.get(name, ("", ""))


def description(title: str, metrics: Mapping[str, float]) -> str:
    """A run description (markdown) listing ``metrics`` with their units and meanings."""
    lines = [
        (
            f"**{title}**: summary metrics (test split, logged at step {SUMMARY_STEP}: bar charts "
            "in the chart view)"
        ),
        "",
        "| metric | value | unit | meaning |",
        "|---|---|---|---|",
    ]
    for name in sorted(metrics):
        u, meaning = unit(name)
        lines.append(f"| `{name}` | {float(metrics[name]):.4g} | {u} | {meaning} |")
    return "\n".join(lines)

"""Entry points: ``oscflow.fit`` (Python) and the command line's result table.

The command line takes conf/fit.yaml's keys as they are: ``model_uri=<uri>``,
``observation=asimov|toy|real|file`` (a config group), ``observation.path=<file>``,
``observation.n_toys=N``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

OBSERVATIONS = ("asimov", "toy", "real", "file")


def _flatten(config: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v and not key.startswith("+"):
            out += _flatten(v, f"{key}.")
        elif isinstance(v, list | tuple):
            out.append(f"{key}=[{','.join(str(x) for x in v)}]")
        else:
            out.append(f"{key}={'null' if v is None else v}")
    return out


def fit(
    model_uri: str | None = None,
    observation: str | Mapping[str, Any] = "asimov",
    **config: Any,
) -> dict[str, Any]:
    """Fit from Python, as ``oscflow fit`` does: ``fit("models:/juno-spectrum@champion",
    {"kind": "toy", "n_toys": 200}, exposure={"days": 100}, record=False)``.
    ``observation``: one of OBSERVATIONS, the path of a counts file, or a mapping with its
    ``kind`` and other keys of conf/observation/<kind>.yaml. Other keyword arguments are config
    keys (nested dicts become dotted keys); returns the JSON-ready result."""
    from ...config import load

    if isinstance(observation, Mapping):
        rest = {k: v for k, v in observation.items() if k != "kind"}
        kind = str(observation.get("kind", "asimov"))
        args = [f"observation={kind}", *_flatten(rest, "observation.")]
    elif observation in OBSERVATIONS:
        args = [f"observation={observation}"]
    else:
        args = ["observation=file", f"observation.path={Path(observation).resolve()}"]
    args += _flatten(config)
    if model_uri is not None:
        args.append(f"model_uri={model_uri}")
    return run_cli(load("fit", args))


def run_cli(cfg: Any) -> dict[str, Any]:
    """Run (and record, unless ``record=false``) the configured fit."""
    if cfg.record:
        from .recording import record

        return record(cfg, {})
    from .run import run

    return run(cfg)


def summary_table(result: Mapping[str, Any]) -> str:
    """A short human-readable summary of a fit result."""
    head = (
        f"{result['experiment']} fit: {result['predictor']['kind']} predictor, "
        f"{result['data']['kind']} data, {result['exposure']['days']:g} days, "
        f"statistic {result['statistic']}"
    )
    lines = [head]
    if "best_fit" in result:
        for name, value in result["best_fit"].items():
            err = result["errors"][name]
            lines.append(f"  {name:<20} {value:>13.6g} ± {err:.3g} ({err / abs(value):.2%})")
        st = result["fit"]["statistic"]
        fit = result["fit"]
        calls = f"{fit['nfcn']} calls"
        if fit.get("ngrad") or fit.get("nhessian"):
            calls += f" + {fit['ngrad']} gradients + {fit['nhessian']} Hessians (exact)"
        lines.append(f"  χ² {st['value']:.2f} / ndf {st['ndf']}; {calls}, {fit['wall_s']:.2f} s")
    if "mass_ordering" in result:
        mo = result["mass_ordering"]
        lines.append(f"  Δχ²(IO−NO) = {mo['delta_chi2_io_minus_no']:.2f} ({mo['predictor']})")
    if "referee" in result:
        for name, r in result["referee"]["parameters"].items():
            lines.append(f"  referee {name:<12} shift {r['shift_sigma']:+.3f} σ")
    if "toys" in result:
        t = result["toys"]
        fitter = f", {t['fitter']} fitter" if "fitter" in t else ""
        lines.append(f"  toys: {t['n_toys']} ({t['n_failed']} not converged{fitter})")
        for name, s in t["pulls"].items():
            lines.append(f"  pull {name:<15} mean {s['mean']:+.3f}  width {s['width']:.3f}")
    if result.get("mlflow_run_id"):
        lines.append(f"  MLflow run {result['mlflow_run_id']}")
    return "\n".join(lines)

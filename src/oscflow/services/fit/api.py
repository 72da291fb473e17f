"""Entry points: the command line's override mapping and result table, and ``oscflow.fit``.

Command line: ``model=<uri>`` → ``model_uri`` (``model`` is the training architecture group);
``data=asimov|toy`` → ``fit/observation=<kind>``, ``data=<file>`` → ``fit/observation=file
observation.path=<file>`` (``data`` is the training dataset group); ``n_toys=N`` and
``seed=S`` → ``observation.n_toys`` / ``observation.seed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...errors import ConfigError

DATA_KINDS = ("asimov", "toy", "real")
SHORTHANDS = {"n_toys": "observation.n_toys", "seed": "observation.seed"}


def cli_overrides(args: Sequence[str]) -> list[str]:
    """Translate the fit command's shorthands into Hydra overrides of conf/fit.yaml."""
    out: list[str] = []
    for a in args:
        key, _, value = a.partition("=")
        if key == "model":
            out.append(f"model_uri={value}")
        elif key == "data":
            if value in DATA_KINDS:
                out.append(f"fit/observation={value}")
            elif value == "file":
                raise ConfigError("data", "data=file needs the file", "give data=<path>")
            else:
                out += ["fit/observation=file", f"observation.path={Path(value).resolve()}"]
        elif key in SHORTHANDS:
            out.append(f"{SHORTHANDS[key]}={value}")
        else:
            out.append(a)
    return out


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


def fit(model: str | None = None, data: str = "asimov", **config: Any) -> dict[str, Any]:
    """Fit from Python, as ``oscflow fit`` does: ``fit("models:/juno-spectrum@champion",
    data="toy", n_toys=200, exposure={"days": 100}, record=False)``. Keyword arguments are
    config keys (nested dicts become dotted keys); returns the JSON-ready result."""
    from ...config import load

    args = [f"data={data}", *_flatten(config)]
    if model is not None:
        args.append(f"model={model}")
    cfg = load("fit", cli_overrides(args))
    return run_cli(cfg)


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
        lines.append(
            f"  χ² {st['value']:.2f} / ndf {st['ndf']}; {result['fit']['nfcn']} calls, "
            f"{result['fit']['wall_s']:.2f} s"
        )
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

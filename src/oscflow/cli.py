"""The ``oscflow`` command line: ``oscflow <command> [--json] [key=value ...]``.

Commands compose their Hydra config from ``conf/<command>.yaml`` (see ``oscflow.config``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from omegaconf import OmegaConf

from .errors import OscflowError

USAGE = """usage: oscflow <command> [--json] [--cfg] [key=value ...]

commands:
  simulate   DVC stage: detector Monte Carlo (E_nu, E_rec) pairs       (conf/simulate.yaml)
  spectra    DVC stage: sampled parameters and exact spectra          (conf/spectra.yaml)
  predict    expected spectrum for given parameters and exposure      (conf/predict.yaml)
  summary    what the dataset pipeline produced and where it went     (conf/spectra.yaml)
  train      train a surrogate, log it to MLflow, register it         (conf/train.yaml)
             with -m: a Hydra multirun, e.g. `oscflow train -m hparams_search=juno_arch`
  fit        iminuit fit of a spectrum: model=<uri> data=asimov|toy|<file>  (conf/fit.yaml)
  sensitivity solar  solar ν_e → ν̄_e / magnetic-moment sensitivity (seed 003):
             background.source=paper|model limit.method=fc|gauss|auto  (conf/sensitivity.yaml)

platform (conf/platform.yaml; see `oscflow.platform.cli`):
  up | down | status           the local stack: MLflow server, event intake, workers
  intake | worker | reconcile | register-webhook
  registry promote NAME VERSION [--alias champion] [--force --reason TEXT]
  registry show NAME | registry wait NAME [VERSION|@ALIAS]

options:
  --json     print the result as JSON on stdout
  --cfg      print the composed configuration and exit
"""


def _simulate(cfg: Any) -> dict[str, Any]:
    from .data.simulate import run

    return run(cfg)


def _spectra(cfg: Any) -> dict[str, Any]:
    from .data.spectra import run

    return run(cfg)


def _predict(cfg: Any) -> dict[str, Any]:
    from .predict import run

    return run(cfg)


def _train(cfg: Any, overrides: Sequence[str] = ()) -> dict[str, Any]:
    from .train import run

    return run(cfg, overrides)


def _summary(cfg: Any) -> dict[str, Any]:
    from .data.summary import run

    return run(cfg)


def _fit(cfg: Any) -> dict[str, Any]:
    from .services.fit.api import run_cli

    return run_cli(cfg)


def _sensitivity(cfg: Any) -> dict[str, Any]:
    from .services import sensitivity

    return sensitivity.record(cfg, {}) if cfg.record else sensitivity.run(cfg)


COMMANDS: dict[str, tuple[str, Callable[[Any], dict[str, Any]]]] = {
    "simulate": ("simulate", _simulate),
    "spectra": ("spectra", _spectra),
    "predict": ("predict", _predict),
    "summary": ("spectra", _summary),
    "train": ("train", _train),
    "fit": ("fit", _fit),
    "sensitivity": ("sensitivity", _sensitivity),
}


def _human(command: str, result: dict[str, Any]) -> str:
    if command == "predict":
        from .predict import summary_table

        return summary_table(result)
    if command == "fit":
        from .services.fit.api import summary_table as fit_summary

        return fit_summary(result)
    if command == "sensitivity":
        from .services.sensitivity.service import summary_table as sensitivity_summary

        return sensitivity_summary(result)
    if command == "summary":
        from .data.summary import format_summary

        return format_summary(result)
    return json.dumps(result, indent=2)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    from .platform.cli import COMMANDS as PLATFORM_COMMANDS

    if command in PLATFORM_COMMANDS:
        from .platform.cli import main as platform_main

        return platform_main(command, rest)
    if command == "train" and ({"-m", "--multirun"} & set(rest)):
        from .train import _hydra_main

        sys.argv = ["oscflow-train", *rest]
        _hydra_main()
        return 0
    if command not in COMMANDS:
        print(f"oscflow: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    as_json = "--json" in rest
    show_cfg = "--cfg" in rest
    unknown_flags = [a for a in rest if a.startswith("--") and a not in ("--json", "--cfg")]
    if unknown_flags:
        print(
            f"oscflow {command}: unknown option {unknown_flags[0]} (options: --json, --cfg)",
            file=sys.stderr,
        )
        return 2
    overrides = [a for a in rest if not a.startswith("--")]
    if command == "predict":  # `model=<uri>`: the group name `model` belongs to training
        overrides = [f"model_uri={a[6:]}" if a.startswith("model=") else a for a in overrides]
    if command == "sensitivity":  # `oscflow sensitivity <analysis> [key=value ...]`
        words = [a for a in overrides if "=" not in a]
        if len(words) != 1:
            print("usage: oscflow sensitivity solar [key=value ...] [--json]", file=sys.stderr)
            return 2
        overrides = [f"analysis={words[0]}"] + [
            f"model_uri={a[6:]}" if a.startswith("model=") else a for a in overrides if "=" in a
        ]
    job, fn = COMMANDS[command]
    try:
        if command == "fit":  # model=<uri>, data=asimov|toy|<file> (see services/fit/api.py)
            from .services.fit.api import cli_overrides

            overrides = cli_overrides(overrides)
        from .config import load

        cfg = load(job, overrides)
        if show_cfg:
            print(OmegaConf.to_yaml(cfg))
            return 0
        result = fn(cfg, overrides) if command == "train" else fn(cfg)
    except OscflowError as exc:
        print(f"oscflow {command}: error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as exc:
        print(f"oscflow {command}: error: {exc}", file=sys.stderr)
        return 1
    if result.get("rank", 0) > 0:  # data-parallel worker: rank 0 reports
        return 0
    print(json.dumps(result) if as_json else _human(command, result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

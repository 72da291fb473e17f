"""The ``oscflow`` command line: ``oscflow <command> [--json] [key=value ...]``.

Commands compose their Hydra config from ``conf/<command>.yaml`` (see ``oscflow.config``).
``main`` is the one error boundary of every command (platform commands and ``train -m``
included): expected failures become a one-paragraph message on stderr and an exit code from
``oscflow.errors.ExitCode``; anything else is reported as an internal error; ``--debug`` (any
position, or ``OSCFLOW_DEBUG=1``) adds the traceback.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

from omegaconf import OmegaConf

from .errors import ExitCode, InternalError, UsageError, classify, one_paragraph
from .services import Command

USAGE_HEAD = """usage: oscflow <command> [--json] [--cfg] [--check] [--debug] [key=value ...]
       oscflow <command> --help

commands:
"""

PLATFORM_USAGE = """
platform (conf/platform.yaml; see `oscflow.platform.cli`):
  up         start the local stack: MLflow server, event intake, workers (stack=team: team
             backends); later commands use the settings `up` saved
  down       stop what `up` started
  status     health of the stack, its jobs and failures [--json]
  intake     run the webhook intake in the foreground
  worker     run a worker (the services' jobs) in the foreground
  reconcile  one reconciler pass: registry state vs recorded runs [--json]
  register-webhook  create or update the MLflow webhook that posts to the intake
  registry   promote NAME VERSION [--alias champion] [--pair W] [--force --reason TEXT]
             | show NAME [--json] | wait NAME [VERSION|@ALIAS]

options:
  --json     print the result as JSON on stdout
  --cfg      print the composed configuration and exit
  --check    validate the configuration (types, ranges, the experiment's values) and exit;
             nothing is computed or written (with --json: the validated config as JSON)
  --debug    on an error, also print the full traceback (anywhere on the line)
  -h, --help this text; `oscflow <command> --help`: the command's config groups and keys

exit status:
  0  success
  1  input or configuration error (a value, a file, a model): the message names it and the fix
  2  usage error: unknown command or option, malformed key=value override
  3  internal error: a bug in oscflow; rerun with --debug and report the traceback
  4  platform: not ready (`status`: the stack is unhealthy; `registry wait`: timed out)
"""


def usage() -> str:
    """The top-level help: the core commands, then every discovered service's command (its
    ``COMMAND.summary``), then the platform's."""
    import textwrap

    lines = []
    for name, (job, cmd) in commands().items():
        head = f"{name} {cmd.usage}".strip()
        text = f"{head:<10} {cmd.summary}  (conf/{job}.yaml)"
        lines += textwrap.wrap(text, 94, initial_indent="  ", subsequent_indent=" " * 13)
    return USAGE_HEAD + "\n".join(lines) + "\n" + PLATFORM_USAGE


OPTIONS = ("--json", "--cfg", "--check")
HELP_FLAGS = ("-h", "--help")


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


def _compare(cfg: Any) -> dict[str, Any]:
    from .compare import run

    return run(cfg)


def _compare_text(result: dict[str, Any]) -> str:
    from .compare import human

    return human(result)


def _compare_name(words: list[str], overrides: list[str]) -> list[str]:
    """``oscflow compare NAME`` → ``name=NAME`` (one word at most)."""
    if len(words) > 1:
        msg = (
            f"unexpected word {words[1]!r}. Fix: name one experiment or registered model, "
            "then key=value overrides (e.g. sweep=<parent run id>)"
        )
        raise UsageError(msg)
    return [f"name={json.dumps(w)}" for w in words] + overrides


def _summary(cfg: Any) -> dict[str, Any]:
    from .data.summary import run

    return run(cfg)


def _predict_table(result: dict[str, Any]) -> str:
    from .predict import summary_table

    return summary_table(result)


def _summary_text(result: dict[str, Any]) -> str:
    from .data.summary import format_summary

    return format_summary(result)


# The core commands (dataset stages, prediction, training); services add theirs (COMMAND).
CORE: dict[str, tuple[str, Command]] = {
    "simulate": (
        "simulate",
        Command("DVC stage: detector Monte Carlo (E_nu, E_rec) pairs", _simulate),
    ),
    "spectra": ("spectra", Command("DVC stage: sampled parameters and exact spectra", _spectra)),
    "predict": (
        "predict",
        Command(
            "expected spectrum for given parameters and exposure",
            _predict,
            human=_predict_table,
        ),
    ),
    "summary": (
        "spectra",
        Command("what the dataset pipeline produced and where it went", _summary, _summary_text),
    ),
    "train": (
        "train",
        Command(
            "train a surrogate, log it to MLflow, register it; with -m: a Hydra multirun, "
            "e.g. `oscflow train -m hparams_search=juno_arch`",
            _train,
        ),
    ),
    "compare": (
        "compare",
        Command(
            "surrogate architectures side by side: the runs of an experiment (sweep=<parent "
            "run>: a sweep's trials) or the versions of a registered model; table, Pareto "
            "fronts, fit bias, residuals, logged as a run in <NAME>-comparisons",
            _compare,
            human=_compare_text,
            argv=_compare_name,
            usage="NAME",
        ),
    ),
}


def commands() -> dict[str, tuple[str, Command]]:
    """Every command but the platform's: the core ones and each service's (discovered)."""
    from .services import commands as service_commands

    return {**CORE, **service_commands()}


def _platform_commands() -> tuple[str, ...]:
    from .platform.cli import COMMANDS as PLATFORM_COMMANDS

    return tuple(PLATFORM_COMMANDS)


# --- results -------------------------------------------------------------------------------


def _non_finite(value: Any, path: str = "result") -> Iterator[str]:
    """Paths of the NaN/infinite numbers in a JSON-ready result."""
    if isinstance(value, float) and not math.isfinite(value):
        yield f"{path} = {value}"
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _non_finite(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _non_finite(v, f"{path}[{i}]")


def to_json(result: Any, **kwargs: Any) -> str:
    """``result`` as strict JSON: NaN and infinity are refused (they are not JSON, and a result
    that has them is a bug), as an InternalError naming where they are."""
    try:
        return json.dumps(result, allow_nan=False, **kwargs)
    except ValueError:
        bad = list(_non_finite(result))
        where = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        msg = f"the result has numbers that are not finite ({where or 'somewhere'})."
        raise InternalError(msg) from None


def _human(command: str, result: dict[str, Any]) -> str:
    human = commands()[command][1].human
    return human(result) if human is not None else to_json(result, indent=2)


# --- validation without running (--check) --------------------------------------------------


def check(cfg: Any) -> dict[str, Any]:
    """Validate a composed config the way every job does before computing: the config layer
    (``config.load`` already ran ``check_values``), then the experiment plug-in, the parameter
    point, the exposure and the binning. Returns what was checked."""
    from .config import bin_edges

    checked: dict[str, Any] = {"config": True}
    if "experiment" not in cfg:
        return checked
    from .experiments import load_experiment

    experiment = load_experiment(cfg.experiment)
    checked["experiment"] = experiment.name
    if cfg.get("params") is not None:
        checked["params"] = experiment.validate_params(dict(cfg.params))
    exposure = cfg.get("exposure")
    if exposure is not None and exposure.get("days") is not None:
        exp = experiment.exposure(exposure.days, exposure.get("efficiency", 1.0))
        checked["exposure"] = {"days": exp.days, "efficiency": exp.efficiency}
    if cfg.get("binning") is not None:
        edges = bin_edges(cfg.binning)
        experiment.check_edges(edges, str(cfg.get("energy", "prompt")))
        checked["binning"] = {"emin": edges[0], "emax": edges[-1], "nbins": len(edges) - 1}
    return checked


# --- help ----------------------------------------------------------------------------------


def _summaries() -> dict[str, str]:
    """Each command's summary: its ``Command.summary``; a platform command's read from
    PLATFORM_USAGE (so the two never disagree): a line ``  name [words]  summary`` and its
    more deeply indented continuation lines."""
    out: dict[str, list[str]] = {name: [cmd.summary] for name, (_, cmd) in commands().items()}
    current: list[str] | None = None
    for line in PLATFORM_USAGE.splitlines():
        if not line.startswith("  ") or line.lstrip().startswith("-"):
            current = None
        elif line.startswith("   ") and current is not None:  # continuation
            current.append(line.strip())
        else:
            names, *text = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            current = out[names.split()[0]] = text
    return {k: one_paragraph(" ".join(v)) for k, v in out.items()}


def _groups(job: str) -> list[tuple[str, str, list[str]]]:
    """(group, default choice, options) of the job's defaults list, from conf/<job>.yaml,
    with those of a job config it composes (``nmo.yaml``: ``- fit``)."""
    from .config import config_dir

    cdir = config_dir()
    raw = OmegaConf.load(cdir / f"{job}.yaml")
    tree = OmegaConf.to_container(raw, resolve=False)
    assert isinstance(tree, dict)  # a job's config file is a mapping
    defaults = tree.get("defaults") or []
    out: list[tuple[str, str, list[str]]] = []
    for entry in defaults:
        if isinstance(entry, str) and entry != job and (cdir / f"{entry}.yaml").is_file():
            out += [g for g in _groups(entry) if g[0] not in {o[0] for o in out}]
        if not isinstance(entry, dict):
            continue
        for key, choice in entry.items():
            words = str(key).split()
            if words[0] == "override" or words[-1].startswith("hydra"):
                continue
            group = words[-1]  # with its @package: what an override must name
            options = sorted(p.stem for p in (cdir / group.split("@", 1)[0]).glob("*.yaml"))
            label = "null" if choice is None else str(choice)
            if label.startswith("${") and label.endswith("}"):
                label = f"the {label[2:-1]} choice"
            if words[0] == "optional":
                label += ", optional"
            out.append((group, label, options))
    return out


def _flow(value: Any) -> str:
    """A plain config value in YAML flow style."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return str(value)


def _short(value: Any, width: int = 72) -> str:
    """A config value in one line: inline if short, else its keys (or its length)."""
    plain = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    text = _flow(plain)
    if len(text) <= width:
        return text
    if isinstance(plain, dict):
        text = f"{{{len(plain)} keys: {', '.join(str(k) for k in plain)}}}"
        return text if len(text) <= width else text[: width - 2] + "…}"
    if isinstance(plain, list):
        return f"[{len(plain)} items]"
    return text[: width - 1] + "…"


def command_help(command: str) -> str:
    """Help of one command: summary, config file, config groups and their options, and the
    top-level keys of the composed config with their defaults (generated from conf/)."""
    from .config import load

    platform = command in _platform_commands()
    job = "platform" if platform else commands()[command][0]
    summary = _summaries().get(command, "")
    words = "" if platform else commands()[command][1].usage
    if command == "registry":
        usage = "oscflow registry promote|show|wait NAME ... [key=value ...] (see above)"
    elif platform:
        usage = f"oscflow {command} [--json] [key=value ...]"
    else:
        usage = f"oscflow {f'{command} {words}'.strip()} [--json] [--cfg] [--check] [key=value ...]"
    lines = [f"oscflow {command}: {summary}", "", f"usage: {usage}"]
    if command == "train":
        lines.append("       oscflow train -m key=a,b ... (Hydra multirun; -m hparams_search=…)")
    shown = "" if platform else f" (the composed config: oscflow {command} --cfg)"
    lines += [
        f"config: conf/{job}.yaml{shown}",
        "",
        "config groups (choose one with group=option; the default first):",
    ]
    for group, default, options in _groups(job):
        rest = [o for o in options if o != default]
        lines.append(f"  {group:<28} {default}" + (f"  (also: {', '.join(rest)})" if rest else ""))
    cfg = load(job)
    lines += ["", "main keys (defaults; set with key=value, nested keys as a.b=value):"]
    width = max(len(str(k)) for k in cfg)
    for key in cfg:
        lines.append(f"  {key!s:<{width}}  {_short(cfg[key])}")
    flags = "--json  --debug" if platform else "--json  --cfg  --check  --debug"
    lines += ["", f"options: {flags}  -h/--help (see `oscflow --help`)"]
    return "\n".join(lines)


# --- the error boundary --------------------------------------------------------------------


def _debug_requested(args: Sequence[str]) -> bool:
    return "--debug" in args or os.environ.get("OSCFLOW_DEBUG", "") not in ("", "0", "false")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``oscflow`` command; returns its exit status (``errors.ExitCode``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    # MLflow's client writes "View run … at: <link>" to stdout whenever a run on a tracking
    # server ends: it would break --json output, and its link opens MLflow 3's GenAI view.
    # oscflow prints its own links (tracking/ui.py).
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    debug = _debug_requested(args)
    args = [a for a in args if a != "--debug"]
    prog = f"oscflow {args[0]}" if args and not args[0].startswith("-") else "oscflow"
    try:
        return int(_dispatch(args))
    except SystemExit as exc:  # argparse/Hydra inside a command: keep their status
        if exc.code is None or isinstance(exc.code, int):
            return int(exc.code or 0)
        print(f"{prog}: error: {one_paragraph(str(exc.code))}", file=sys.stderr)
        return int(ExitCode.INPUT)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the boundary: every failure is reported here
        failure = classify(exc)
        if debug:
            traceback.print_exception(exc, file=sys.stderr)
        print(f"{prog}: error: {one_paragraph(failure.message)}", file=sys.stderr)
        return int(failure.code)


def _dispatch(args: list[str]) -> int:
    if not args:
        print(usage(), file=sys.stderr)
        return int(ExitCode.USAGE)
    if args[0] in HELP_FLAGS or (args[0] == "help" and len(args) == 1):
        print(usage())
        return 0
    if args[0] == "help":
        args = [args[1], "--help"]
    command, rest = args[0], args[1:]
    platform = _platform_commands()
    known = commands()
    if command not in known and command not in platform:
        names = ", ".join([*known, *platform])
        msg = f"unknown command {command!r}. Fix: use one of {names} (`oscflow --help`)"
        raise UsageError(msg)
    if set(HELP_FLAGS) & set(rest):
        print(command_help(command))
        return 0
    if command in platform:
        from .platform.cli import main as platform_main

        return platform_main(command, rest)
    if command == "train" and ({"-m", "--multirun"} & set(rest)):
        return _multirun(rest)
    return _run(command, rest)


def _multirun(rest: list[str]) -> int:
    """``oscflow train -m …``: Hydra's multirun, with its exceptions raised to ``main`` (not
    printed by Hydra as a traceback)."""
    from .train import _hydra_main

    saved_argv, saved_env = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = ["oscflow-train", *rest]
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        _hydra_main()
    finally:
        sys.argv = saved_argv
        if saved_env is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_env
    return 0


def _run(command: str, rest: list[str]) -> int:
    as_json = "--json" in rest
    show_cfg = "--cfg" in rest
    only_check = "--check" in rest
    unknown_flags = [a for a in rest if a.startswith("--") and a not in OPTIONS]
    if unknown_flags:
        msg = (
            f"unknown option {unknown_flags[0]}. Fix: use {', '.join(OPTIONS)}, --debug or "
            f"--help (`oscflow {command} --help`)"
        )
        raise UsageError(msg)
    job, cmd = commands()[command]
    given = [a for a in rest if not a.startswith("--")]
    words = [a for a in given if "=" not in a]
    overrides = [a for a in given if "=" in a]
    if cmd.argv is not None:
        overrides = cmd.argv(words, overrides)
    elif words:
        msg = f"unexpected word {words[0]!r}. Fix: give key=value overrides only"
        raise UsageError(msg)
    from .config import load, to_container

    cfg = load(job, overrides)
    if show_cfg:
        print(OmegaConf.to_yaml(cfg))
        return 0
    if only_check:
        checked = check(cfg)
        if as_json:
            document = {"command": command, "valid": True, "checked": checked}
            print(to_json(document | {"config": to_container(cfg)}))
        else:
            print(f"oscflow {command}: the configuration is valid ({', '.join(checked)} checked)")
        return 0
    result = _train(cfg, overrides) if command == "train" else cmd.run(cfg)
    if result.get("rank", 0) > 0:  # data-parallel worker: rank 0 reports
        return 0
    link = _run_link(cfg, result)
    if link:
        result["mlflow_ui"] = link
    print(to_json(result) if as_json else _human(command, result))
    if link and not as_json:
        print(f"MLflow UI: {link}")
    return 0


def _run_link(cfg: Any, result: dict[str, Any]) -> str | None:
    """The UI link (model-training view) of the MLflow run a service recorded
    (``mlflow_run_id``), when its tracking store is a server; a result that has its own
    ``mlflow_ui`` keeps it."""
    run_id = result.get("mlflow_run_id")
    logger = cfg.get("logger")
    if not isinstance(run_id, str) or "mlflow_ui" in result or logger is None:
        return None
    from .tracking.ui import ui_base, ui_link

    uri = str(logger.get("tracking_uri") or "")
    if ui_base(uri) is None:
        return None
    from mlflow.tracking import MlflowClient

    experiment_id = MlflowClient(uri).get_run(run_id).info.experiment_id
    return ui_link(uri, experiment_id=experiment_id, run_id=run_id)


if __name__ == "__main__":
    raise SystemExit(main())

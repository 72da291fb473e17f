"""``oscflow compare NAME [key=value ...]``: surrogate architectures side by side.

NAME is an experiment (its training runs; with ``sweep=<parent run id>`` a sweep's trials) or
a registered model (its versions, each with its training run's figures). The sequence:

    store (``logger.tracking_uri``) → what NAME is (``tracking.compare.resolve``; neither: a
    ConfigError naming the experiments and models there) → runs or versions (``filter``,
    ``status``, ``max_results``) → one row each (``tracking.compare``: what ``oscflow train``
    logged, the promotion gates' verdicts from ``registry.promotion.gates_for``) → Pareto
    fronts → residual patterns (each run's ``predictions_sample.npz``) → figures
    (``plots.compare``) → with ``record``, one MLflow run in ``<NAME>-comparisons``: the table
    (``comparison.json``), the figures, a description with the table and links, tags naming
    the compared runs; a sweep's parent run is tagged with it and links to it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from .errors import ConfigError
from .tracking import tags as tag_names

REPORT = "comparison_report.png"
RESIDUALS = "residuals.png"
TABLE = "comparison.json"
RUN_IDS_TAG_LIMIT = 5000  # characters of the comma-separated run ids in a tag (MLflow: 8000)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Compare, plot, record; returns the JSON result (``oscflow compare --json``)."""
    from mlflow.tracking import MlflowClient

    from .tracking import compare as cmp
    from .tracking import runs
    from .tracking.ui import ui_link

    if not cfg.name:
        raise ConfigError(
            "name",
            "nothing to compare",
            "name an experiment or a registered model: oscflow compare juno-surrogate",
        )
    name = str(cfg.name)
    uri = runs.tracking_uri(str(cfg.logger.tracking_uri), cfg.paths.root_dir)
    client = MlflowClient(uri)
    kind, entity = cmp.resolve(client, name)
    gates = _gates(cfg)
    statuses = None if cfg.status is None else [str(s).upper() for s in cfg.status]
    sweep = str(cfg.sweep) if cfg.sweep else None
    if kind == "experiment":
        sweep_run = _sweep_parent(client, sweep, name) if sweep else None
        found = cmp.training_runs(
            client, entity.experiment_id, str(cfg.filter or ""), statuses, cfg.max_results, sweep
        )
        versions = cmp.versions_by_run(client, [r.info.run_id for r in found])
        rows = [cmp.run_row(r, uri, gates, versions.get(r.info.run_id)) for r in found]
        link = ui_link(uri, experiment_id=entity.experiment_id)
    else:
        if sweep:
            raise ConfigError(
                "sweep",
                f"{name} is a registered model; a sweep's trials are runs of an experiment",
                "name the experiment of the sweep: oscflow compare juno-surrogate sweep=<id>",
            )
        sweep_run = None
        rows = [
            cmp.version_row(client, mv, uri, gates)
            for mv in _versions(client, name, str(cfg.filter or ""), int(cfg.max_results))
        ]
        # a version whose training run is gone stays, its metrics missing
        rows = [r for r in rows if statuses is None or r["status"] in (*statuses, None)]
        link = ui_link(uri, model=name)
    if not rows:
        what = (
            "trials of sweep " + sweep
            if sweep
            else ("runs" if kind == "experiment" else "versions")
        )
        raise ConfigError(
            "filter" if cfg.filter else "name",
            f"no {what} of {name} match (filter {str(cfg.filter or '')!r}, status "
            f"{statuses or 'any'})",
            "loosen filter=..., or status=null for runs that did not finish",
        )
    cmp.label_rows(rows)
    cmp.mark_pareto(rows)
    labels = [r["label"] for r in rows]
    samples = [
        (r["label"], cmp.read_sample(client, r["run_id"]) if r.get("status") else None)
        for r in rows
    ]
    residuals = cmp.residual_patterns(samples, int(cfg.residual_points))
    limit = _fit_bias_limit(rows)
    result: dict[str, Any] = {
        "of": name,
        "kind": "sweep" if sweep else kind,
        "sweep": sweep,
        "tracking_uri": uri,
        "ui": link,
        "n": len(rows),
        "columns": [{"key": c.key, "header": c.header, **_unit(c.key)} for c in cmp.COLUMNS],
        "accuracy": cmp.ACCURACY,
        "rows": rows,
        "pareto": {c: [r["label"] for r in rows if r["pareto"][c]] for c in cmp.COSTS},
        "residuals": residuals,
        "figures": [REPORT, RESIDUALS],
        "comparison_run": None,
    }
    title = f"{name}" + (f", sweep {sweep[:8]}" if sweep else "") + f": {len(rows)} compared"
    recorded = start_record(cfg, client, uri, result, link) if cfg.record else None
    result["comparison_run"] = recorded
    try:
        with tempfile.TemporaryDirectory(prefix="oscflow-compare-") as tmp:
            out = Path(tmp)
            _figures(out, labels, rows, residuals, limit, title)
            _write_json(out / TABLE, result)
            if recorded is not None:
                client.log_artifacts(recorded["run_id"], str(out))
            if cfg.output_dir:
                dest = Path(str(cfg.output_dir))
                dest.mkdir(parents=True, exist_ok=True)
                for f in out.iterdir():
                    shutil.copyfile(f, dest / f.name)
                result["output_dir"] = str(dest.resolve())
        if recorded is not None:
            client.set_terminated(recorded["run_id"], "FINISHED")
    except BaseException as exc:
        if recorded is not None:
            with contextlib.suppress(Exception):
                if isinstance(exc, KeyboardInterrupt):
                    client.set_tag(recorded["run_id"], tag_names.FAILURE_REASON, "interrupted")
                    client.set_terminated(recorded["run_id"], "KILLED")
                else:
                    runs.mark_failed(client, recorded["run_id"], f"{type(exc).__name__}: {exc}")
        raise
    if recorded is not None and sweep_run is not None:
        _link_sweep(client, sweep_run, recorded)
    result["residuals"] = {k: v for k, v in residuals.items() if k != "curves"} | {
        "runs": list(residuals["curves"])
    }
    return result


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, allow_nan=False, default=str))


def _unit(key: str) -> dict[str, str]:
    from .tracking.summary import unit

    u, meaning = unit(key)
    return {"unit": u, "meaning": meaning}


def _gates(cfg: DictConfig) -> Callable[[Mapping[str, str]], list[dict[str, Any]]]:
    """Gate tags → verdicts (``GateResult.as_dict()``), with the gates of the experiment the
    tags name (``oscflow.experiment``), each experiment's config composed once."""
    from .registry.gates import evaluate
    from .registry.promotion import gates_for

    cache: dict[str | None, dict[str, Any]] = {}

    def verdicts(gate_tags: Mapping[str, str]) -> list[dict[str, Any]]:
        experiment = gate_tags.get(tag_names.EXPERIMENT)
        if experiment not in cache:
            cache[experiment] = gates_for(cfg, gate_tags)
        return [r.as_dict() for r in evaluate(gate_tags, cache[experiment])]

    return verdicts


def _fit_bias_limit(rows: list[dict[str, Any]]) -> float | None:
    """The fit-bias gate's bound (``fit_bias_max_sigma <= x``) that applies to the rows."""
    for row in rows:
        for g in row.get("gate_results") or []:
            if g["gate"] == "fit_bias_max_sigma" and str(g["bound"]).startswith("<="):
                return float(str(g["bound"])[2:])
    return None


def _sweep_parent(client: Any, sweep: str, name: str) -> Any:
    """The sweep's parent run (a ConfigError naming the fix if there is none)."""
    from mlflow.exceptions import MlflowException

    try:
        parent = client.get_run(sweep)
    except MlflowException:
        parent = None
    if parent is None or parent.data.tags.get(tag_names.SWEEP) != "parent":
        raise ConfigError(
            "sweep",
            f"{sweep!r} is not the parent run of a sweep",
            f"give the run id of a sweep's parent run (tag oscflow.sweep=parent, named "
            f"sweep-<study>) in {name}",
        )
    return parent


def _versions(client: Any, name: str, filter_string: str, max_results: int) -> list[Any]:
    """Versions of registered model ``name`` matching ``filter_string``, oldest first."""
    query = f"name = '{name}'" + (f" and {filter_string}" if filter_string.strip() else "")
    from .tracking.compare import refused_filter

    with refused_filter(filter_string):
        found = client.search_model_versions(query)
    return sorted(found, key=lambda v: int(v.version))[:max_results]


def _figures(
    out: Path,
    labels: list[str],
    rows: list[dict[str, Any]],
    residuals: dict[str, Any],
    limit: float | None,
    title: str,
) -> None:
    from .plots.compare import plot_report, plot_residuals

    plot_report(out / REPORT, labels, rows, residuals, limit, title)
    plot_residuals(out / RESIDUALS, residuals, labels, f"{title}: residual patterns")


def start_record(
    cfg: DictConfig, client: Any, uri: str, result: dict[str, Any], link: str | None = None
) -> dict[str, Any]:
    """Open the comparison's run in ``logger.experiment_name`` (``<NAME>-comparisons``): tags
    naming what was compared, the selection as params, counts as metrics, a description (the
    table, linked to the runs and the report). The caller adds the artifacts and ends it."""
    from .tracking import runs
    from .tracking.compare import markdown_table
    from .tracking.lineage import git_commit
    from .tracking.ui import ui_link

    exp_id = runs.ensure_experiment(
        client, str(cfg.logger.experiment_name), cfg.logger.get("artifact_location")
    )
    rows = result["rows"]
    ids = ",".join(str(r["run_id"]) for r in rows if r.get("run_id"))
    if len(ids) > RUN_IDS_TAG_LIMIT:
        ids = ids[: RUN_IDS_TAG_LIMIT - 40].rsplit(",", 1)[0] + f",… ({len(rows)} in {TABLE})"
    sweep = result["sweep"]
    name = f"compare-{result['of']}" + (f"-sweep-{sweep[:8]}" if sweep else "")
    run_tags = {
        tag_names.COMPARISON_OF: result["of"],
        tag_names.COMPARISON_KIND: result["kind"],
        tag_names.COMPARISON_RUNS: ids,
        tag_names.GIT_COMMIT: git_commit(cfg.paths.root_dir),
        **({tag_names.COMPARISON_SWEEP: sweep} if sweep else {}),
    }
    run_id = client.create_run(exp_id, run_name=name, tags=run_tags).info.run_id
    recorded = {
        "run_id": run_id,
        "experiment": str(cfg.logger.experiment_name),
        "experiment_id": exp_id,
        "ui": ui_link(uri, experiment_id=exp_id, run_id=run_id),
        "report_ui": ui_link(uri, experiment_id=exp_id, run_id=run_id, artifact=REPORT),
    }
    try:
        client.set_tag(
            run_id,
            tag_names.MLFLOW_NOTE,
            _description(result, link, recorded["report_ui"], markdown_table),
        )
        for key in ("name", "filter", "sweep", "status", "max_results"):
            client.log_param(run_id, key, str(cfg.get(key)))
        client.log_metric(run_id, "n_compared", float(len(rows)), step=0)
        for cost, front in result["pareto"].items():
            client.log_metric(run_id, f"n_pareto_{cost}", float(len(front)), step=0)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            runs.mark_failed(client, run_id, f"{type(exc).__name__}: {exc}")
        raise
    return recorded


def _description(
    result: Mapping[str, Any],
    link: str | None,
    report_ui: str | None,
    markdown_table: Callable[..., str],
) -> str:
    of = f"[{result['of']}]({link})" if link else f"`{result['of']}`"
    what = "versions" if result["kind"] == "model" else "runs"
    if result["sweep"]:
        what = f"trials of sweep `{result['sweep']}`"
    report = f"[{REPORT}]({report_ui})" if report_ui else f"`{REPORT}`"
    return "\n".join(
        [
            (
                f"**oscflow compare**: {result['n']} {what} of {of}. Accuracy: p99 of "
                "|surrogate/exact − 1| in the bins holding ≥ 1 % of the peak (test split). "
                "★ on the Pareto front of accuracy vs parameters, ◆ vs latency."
            ),
            "",
            markdown_table(result["rows"], label="label"),
            "",
            f"Figures: {report}, `{RESIDUALS}`; the table: `{TABLE}`.",
        ]
    )


def _link_sweep(client: Any, parent: Any, recorded: Mapping[str, Any]) -> None:
    """Tag the sweep's parent run with its comparison (and describe it, unless someone
    wrote a description of their own)."""
    run_id = parent.info.run_id
    client.set_tag(run_id, tag_names.COMPARISON_RUN, recorded["run_id"])
    if recorded.get("ui"):
        client.set_tag(run_id, tag_names.COMPARISON_UI, recorded["ui"])
    note = parent.data.tags.get(tag_names.MLFLOW_NOTE, "")
    if not note or note.startswith(SWEEP_NOTE):
        target = (
            f"[{recorded['run_id']}]({recorded['ui']})"
            if recorded.get("ui")
            else f"`{recorded['run_id']}`"
        )
        client.set_tag(
            run_id,
            tag_names.MLFLOW_NOTE,
            f"{SWEEP_NOTE} run {target} in `{recorded['experiment']}` (the trials' table, "
            "Pareto fronts, fit bias and residual patterns).",
        )


SWEEP_NOTE = "**Comparison of this sweep's trials**:"


def human(result: Mapping[str, Any]) -> str:
    """The comparison for a terminal: the table, the fronts, what is missing, the links."""
    from .tracking.compare import COSTS, format_table

    kind = result["kind"]
    head = f"oscflow compare {result['of']}: {result['n']} " + (
        "versions" if kind == "model" else ("trials" if kind == "sweep" else "runs")
    )
    lines = [head + (f"   {result['ui']}" if result.get("ui") else ""), ""]
    lines += format_table(result["rows"], label="label").splitlines()
    lines += [
        "",
        f"front: * Pareto front of {result['accuracy']} vs {COSTS[0]}, + vs {COSTS[1]}",
    ]
    for row in result["rows"]:
        if row["missing"]:
            lines.append(f"missing: {row['label']} lacks {', '.join(row['missing'])}")
    res = result["residuals"]
    if res.get("runs"):
        lines.append(f"residual patterns: {len(res['runs'])} runs at {len(res['points'])} points")
    for who, why in (res.get("skipped") or {}).items():
        lines.append(f"no residuals for {who}: {why}")
    rec = result.get("comparison_run")
    if rec:
        lines.append(f"recorded: run {rec['run_id']} in {rec['experiment']}")
        if rec.get("ui"):
            lines.append(f"  {rec['ui']}")
        if rec.get("report_ui"):
            lines.append(f"  report: {rec['report_ui']}")
    if result.get("output_dir"):
        lines.append(f"written to {result['output_dir']}")
    return "\n".join(lines)

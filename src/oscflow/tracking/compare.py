"""Comparing surrogate training runs: the table, the Pareto front and the residual patterns
(pure functions of metrics, tags and arrays), and reading the runs or registered versions
that ``oscflow compare`` and ``oscflow registry show`` tabulate.

A row is one training run (a registered version: its training run), read from what ``oscflow
train`` logs (``tracking.summary``): the architecture (tag ``oscflow.architecture``), the
parameter count, the accuracy against the exact model on the test split (p99 and max of
|surrogate/exact − 1| over the bins holding ≥ 1 % of the peak), the artefact RMS, the fit bias
in σ (overall and per oscillation parameter), latency, throughput, training time, the promotion
gates' verdicts and the dataset's DVC md5. A metric a run lacks is None and named in the row's
``missing``; nothing is filled in.

The Pareto front of accuracy against a cost (parameter count, latency): the rows no other row
beats in both (``pareto_front``). Residual patterns: the relative deviation per energy bin of
each run at the same test-split parameter points, from the ``predictions_sample.npz`` artifact
that training logs (points, predictions, exact spectra, bin edges).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError
from ..surrogate.accuracy import PEAK_FRACTION
from . import tags
from .summary import FIT_BIAS_PREFIX
from .ui import ui_link

SAMPLE_ARTIFACT = "predictions_sample.npz"


@dataclasses.dataclass(frozen=True)
class Column:
    """A numeric column of the table: the row's ``key`` (the training metric of that name),
    its ``header`` for people (with the unit), ``scale`` applied for display only."""

    key: str
    header: str
    fmt: str = ".3g"
    scale: float = 1.0


COLUMNS = (
    Column("n_parameters", "params", ",.0f"),
    Column("p99_rel_dev_peak1", "p99 |Δ|/exact", ".2e"),
    Column("max_rel_dev_peak1", "max |Δ|/exact", ".2e"),
    Column("artefact_rms_median", "artefact RMS", ".2e"),
    Column("fit_bias_max_sigma", "fit bias σ", ".3f"),
    Column("latency_single_s", "latency ms", ".3f", 1e3),
    Column("throughput_per_s", "spectra/s", ",.0f"),
    Column("train_seconds", "train s", ".0f"),
)
METRICS = tuple(c.key for c in COLUMNS)
ACCURACY = "p99_rel_dev_peak1"  # the accuracy of the Pareto fronts (lower is better)
COSTS = ("n_parameters", "latency_single_s")  # what accuracy is traded against


def _number(value: Any) -> float | None:
    """A finite float, or None (absent, not a number, NaN, ±inf)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def summary_row(metrics: Mapping[str, Any], run_tags: Mapping[str, str]) -> dict[str, Any]:
    """The table's columns for one training run with these metrics and tags: architecture,
    dataset (name, DVC md5), ordering, each of ``METRICS`` (None where the run lacks it, the
    parameter count falling back to the ``oscflow.n_parameters`` tag), the fit bias per
    parameter, and ``missing``: the ``METRICS`` it lacks."""
    values = {k: _number(metrics.get(k)) for k in METRICS}
    if values["n_parameters"] is None:
        values["n_parameters"] = _number(run_tags.get(tags.N_PARAMETERS))
    return {
        "architecture": run_tags.get(tags.ARCHITECTURE),
        "dataset": run_tags.get(tags.DATASET_NAME),
        "dataset_md5": run_tags.get(tags.DATASET_SPECTRA_MD5),
        "ordering": run_tags.get(tags.ORDERING),
        **values,
        "fit_bias_sigma": {
            k[len(FIT_BIAS_PREFIX) :]: x
            for k, v in sorted(metrics.items())
            if k.startswith(FIT_BIAS_PREFIX) and (x := _number(v)) is not None
        },
        "missing": [k for k in METRICS if values[k] is None],
    }


def pareto_front(cost: Sequence[float | None], error: Sequence[float | None]) -> list[bool]:
    """Which points (cost, error) are on the Pareto front when both are to be small: those no
    other point dominates (as good in both and better in one). A point missing either value
    is on no front and dominates nothing; equal points are all on it."""
    if len(cost) != len(error):
        msg = f"cost and error differ in length ({len(cost)} vs {len(error)})"
        raise ValueError(msg)
    points = [
        (c, e)
        if c is not None and e is not None and math.isfinite(c) and math.isfinite(e)
        else None
        for c, e in zip(cost, error, strict=True)
    ]
    front = []
    for p in points:
        if p is None:
            front.append(False)
            continue
        dominated = any(
            q is not None and q[0] <= p[0] and q[1] <= p[1] and (q[0] < p[0] or q[1] < p[1])
            for q in points
        )
        front.append(not dominated)
    return front


def mark_pareto(
    rows: list[dict[str, Any]], accuracy: str = ACCURACY, costs: Sequence[str] = COSTS
) -> None:
    """Set each row's ``pareto`` to {cost: on the front of ``accuracy`` vs that cost}."""
    fronts = {c: pareto_front([r[c] for r in rows], [r[accuracy] for r in rows]) for c in costs}
    for i, row in enumerate(rows):
        row["pareto"] = {c: fronts[c][i] for c in costs}


def label_rows(rows: list[dict[str, Any]]) -> None:
    """Give each row a unique ``label`` (figures, legends, the table's first column): a
    version's ``v<N> <run name>``, a run's name, made unique with its id's first characters."""
    for row in rows:
        base = row.get("run_name") or row.get("run_id") or "?"
        row["label"] = f"v{row['version']} {base}" if row.get("kind") == "version" else str(base)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["label"]] = counts.get(row["label"], 0) + 1
    for row in rows:
        if counts[row["label"]] > 1:
            row["label"] = f"{row['label']} ({str(row.get('run_id') or '')[:8]})"


def gate_summary(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The gates' verdicts (``registry.gates.GateResult.as_dict()``s) as a row's ``gates``
    ({gate: pass | FAIL | missing}) and ``gates_passed`` ("3/4")."""
    results = [{**g, "value": _number(g["value"])} for g in results]
    verdicts = {
        str(g["gate"]): "missing" if g["value"] is None else ("pass" if g["passed"] else "FAIL")
        for g in results
    }
    passed = sum(v == "pass" for v in verdicts.values())
    return {
        "gates": verdicts,
        "gates_passed": f"{passed}/{len(verdicts)}",
        "gate_results": [
            {**g, "margin": _number(g.get("margin"))} if "margin" in g else g for g in results
        ],
    }


def gate_tags(metrics: Mapping[str, Any], version_tags: Mapping[str, str] | None) -> dict[str, str]:
    """What the promotion gates read for a run: its registered version's tags (validation,
    else training metrics: the verdict a promotion gives) if it has a version, else its own
    metrics as the training-time tags ``oscflow.metric.<name>``."""
    if version_tags is not None:
        return dict(version_tags)
    return {
        f"{tags.METRIC_PREFIX}{k}": repr(x)
        for k, v in metrics.items()
        if (x := _number(v)) is not None
    }


# --- the table for people ------------------------------------------------------------------


def _cell(value: Any, column: Column | None = None) -> str:
    if value is None:
        return "—"
    if column is None:
        return str(value)
    return format(float(value) * column.scale, column.fmt)


def format_table(rows: Sequence[Mapping[str, Any]], label: str = "label") -> str:
    """The rows as a fixed-width text table: label, architecture, ``COLUMNS``, the Pareto
    marks (* on the front vs parameters, + vs latency), gates, dataset md5 (8 characters);
    a missing value is "—"."""
    headers = [
        label.replace("_", " "),
        "architecture",
        *(c.header for c in COLUMNS),
        "front",
        "gates",
        "dataset md5",
    ]
    body = []
    for r in rows:
        pareto = r.get("pareto") or {}
        marks = ("*" if pareto.get(COSTS[0]) else "") + ("+" if pareto.get(COSTS[1]) else "")
        md5 = r.get("dataset_md5")
        body.append(
            [
                str(r.get(label) or "—"),
                _cell(r.get("architecture")),
                *(_cell(r.get(c.key), c) for c in COLUMNS),
                marks or "-",
                str(r.get("gates_passed") or "—"),
                md5[:8] if md5 else "—",
            ]
        )
    widths = [
        max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(headers)
    ]
    numeric = set(range(2, 2 + len(COLUMNS)))

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), *(line(b) for b in body)])


def markdown_table(rows: Sequence[Mapping[str, Any]], label: str = "label") -> str:
    """The same table in markdown (a comparison run's description), labels linked to the
    rows' UI pages where they have one."""
    headers = [label.replace("_", " "), "architecture", *(c.header for c in COLUMNS)]
    lines = [
        "| " + " | ".join([*headers, "front", "gates", "dataset md5"]) + " |",
        "|" + "---|" * (len(headers) + 3),
    ]
    for r in rows:
        name = str(r.get(label) or "—")
        cell = f"[{name}]({r['ui']})" if r.get("ui") else name
        pareto = r.get("pareto") or {}
        marks = ("★" if pareto.get(COSTS[0]) else "") + ("◆" if pareto.get(COSTS[1]) else "")
        md5 = r.get("dataset_md5")
        cells = [
            cell,
            _cell(r.get("architecture")),
            *(_cell(r.get(c.key), c) for c in COLUMNS),
            marks or "",
            str(r.get("gates_passed") or "—"),
            f"`{md5[:8]}`" if md5 else "—",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def dataframe(rows: Sequence[Mapping[str, Any]]) -> Any:
    """The rows as a pandas DataFrame (one column per scalar field, fit bias per parameter
    as ``fit_bias_sigma.<name>``, gates as ``gate.<name>``)."""
    import pandas as pd

    flat = []
    for r in rows:
        out = {k: v for k, v in r.items() if not isinstance(v, dict | list)}
        out.update({f"fit_bias_sigma.{k}": v for k, v in (r.get("fit_bias_sigma") or {}).items()})
        out.update({f"gate.{k}": v for k, v in (r.get("gates") or {}).items()})
        out.update({f"pareto.{k}": v for k, v in (r.get("pareto") or {}).items()})
        flat.append(out)
    return pd.DataFrame(flat)


# --- residual patterns ---------------------------------------------------------------------


def residual_patterns(
    samples: Sequence[tuple[str, Mapping[str, NDArray[Any]] | None]], n_points: int = 3
) -> dict[str, Any]:
    """Relative deviation (prediction/exact − 1) per energy bin of each labelled sample (a
    run's ``predictions_sample.npz``: ``params``, ``predictions``, ``truth``, ``bin_edges``)
    in the bins holding ≥ 1 % of the spectrum's peak (None elsewhere, as in the accuracy
    metrics) at the same parameter points: up to ``n_points`` points that every usable sample holds
    (the first is the one nearest the centre of the points, then spread over the rest). A
    sample without exact spectra, with other bin edges or without the points is listed in
    ``skipped`` with the reason. Returns {"bin_edges", "inputs", "energy", "points",
    "curves": {label: [deviation per bin, per point]}, "skipped": {label: reason}}."""
    skipped: dict[str, str] = {}
    usable: list[tuple[str, Mapping[str, NDArray[Any]]]] = []
    for label, sample in samples:
        if sample is None:
            skipped[label] = f"no {SAMPLE_ARTIFACT} artifact"
        elif "truth" not in sample or "bin_edges" not in sample:
            skipped[label] = f"its {SAMPLE_ARTIFACT} has no exact spectra (logged before they were)"
        else:
            usable.append((label, sample))
    empty: dict[str, Any] = {
        "bin_edges": [],
        "inputs": [],
        "energy": None,
        "points": [],
        "curves": {},
    }
    if not usable:
        return {**empty, "skipped": skipped}
    ref_label, ref = usable[0]
    edges = np.asarray(ref["bin_edges"], dtype=np.float64)
    keys = [_key(p) for p in np.asarray(ref["params"], dtype=np.float64)]
    common = set(keys)
    kept = []
    for label, sample in usable:
        other = np.asarray(sample["bin_edges"], dtype=np.float64)
        if other.shape != edges.shape or not np.allclose(other, edges, rtol=1e-9, atol=0):
            skipped[label] = f"other energy bins than {ref_label}"
            continue
        mine = {_key(p) for p in np.asarray(sample["params"], dtype=np.float64)}
        if not common & mine:
            skipped[label] = f"none of {ref_label}'s parameter points (another test split)"
            continue
        common &= mine
        kept.append((label, sample))
    order = [i for i, k in enumerate(keys) if k in common]
    chosen = _spread(np.asarray(ref["params"], dtype=np.float64)[order], n_points)
    points = [np.asarray(ref["params"], dtype=np.float64)[order[i]] for i in chosen]
    curves: dict[str, list[list[float | None]]] = {}
    for label, sample in kept:
        index = {_key(p): i for i, p in enumerate(np.asarray(sample["params"], dtype=np.float64))}
        rows = [index[_key(p)] for p in points]
        pred = np.asarray(sample["predictions"], dtype=np.float64)[rows]
        truth = np.asarray(sample["truth"], dtype=np.float64)[rows]
        populated = truth >= PEAK_FRACTION * truth.max(axis=1, keepdims=True)
        dev = np.divide(
            pred - truth, truth, out=np.full_like(truth, np.nan), where=populated & (truth > 0)
        )
        curves[label] = [[_finite_or_none(x) for x in row] for row in dev]
    inputs = ref.get("inputs")
    energy = ref.get("energy")
    return {
        "bin_edges": edges.tolist(),
        "inputs": [str(x) for x in np.asarray(inputs).ravel()] if inputs is not None else [],
        "energy": str(np.asarray(energy)) if energy is not None else None,
        "points": [p.tolist() for p in points],
        "curves": curves,
        "skipped": skipped,
    }


def _key(point: NDArray[np.float64]) -> tuple[float, ...]:
    return tuple(float(f"{x:.9g}") for x in point)


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _spread(points: NDArray[np.float64], n: int) -> list[int]:
    """Indices of up to ``n`` of ``points``: the one nearest their centre (in units of each
    column's spread), then evenly spaced over the others."""
    if len(points) == 0 or n <= 0:
        return []
    span = np.ptp(points, axis=0)
    scaled = (points - points.mean(axis=0)) / np.where(span > 0, span, 1.0)
    first = int(np.argmin(np.sum(scaled**2, axis=1)))
    rest = [i for i in range(len(points)) if i != first]
    if not rest or n == 1:
        return [first]
    picks = np.linspace(0, len(rest) - 1, min(n - 1, len(rest))).round().astype(int)
    return [first, *(rest[int(i)] for i in picks)]


# --- reading MLflow ------------------------------------------------------------------------


def resolve(client: Any, name: str) -> tuple[str, Any]:
    """("experiment", Experiment) or ("model", RegisteredModel) named ``name`` (an
    experiment first); a name that is neither is a ConfigError listing both."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None and experiment.lifecycle_stage == "active":
        return "experiment", experiment
    try:
        return "model", client.get_registered_model(name)
    except MlflowException:
        pass
    experiments = sorted(e.name for e in client.search_experiments())
    models = sorted(m.name for m in client.search_registered_models())
    raise ConfigError(
        "name",
        f"no experiment or registered model named {name!r} in this tracking store",
        f"name one of the experiments {experiments or '(none)'} or registered models "
        f"{models or '(none)'}, or point logger.tracking_uri (MLFLOW_TRACKING_URI) at the "
        "store that has it",
    )


def training_runs(
    client: Any,
    experiment_id: str,
    filter_string: str = "",
    statuses: Sequence[str] | None = ("FINISHED",),
    max_results: int = 500,
    sweep: str | None = None,
) -> list[Any]:
    """The training runs of an experiment, oldest first: those matching ``filter_string``
    (MLflow's run search syntax) with one of ``statuses`` (None: any), a sweep's trials only
    with ``sweep`` (its parent run id); never a sweep's parent run."""
    clauses = [filter_string.strip()] if filter_string.strip() else []
    if sweep:
        clauses.append(f"tags.`{tags.MLFLOW_PARENT_RUN}` = '{sweep}'")
    with refused_filter(filter_string):
        found = client.search_runs(
            [experiment_id],
            " and ".join(clauses),
            max_results=int(max_results),
            order_by=["attributes.start_time ASC"],
        )
    return [
        r
        for r in found
        if r.data.tags.get(tags.SWEEP) != "parent"
        and (statuses is None or r.info.status in statuses)
    ]


@contextlib.contextmanager
def refused_filter(filter_string: str) -> Iterator[None]:
    """A filter MLflow cannot parse becomes a ConfigError naming ``filter``."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        if not filter_string.strip() or exc.error_code != "INVALID_PARAMETER_VALUE":
            raise
        raise ConfigError(
            "filter",
            f"MLflow cannot use {filter_string!r} ({exc.message})",
            "write MLflow's search syntax, clauses joined by 'and' (no parentheses), e.g. "
            "metrics.p99_rel_dev_peak1 < 0.001 and tags.`oscflow.architecture` = 'resmlp'",
        ) from None


def versions_by_run(client: Any, run_ids: Iterable[str]) -> dict[str, Any]:
    """Training run id → the newest registered model version made from it."""
    out: dict[str, Any] = {}
    for run_id in run_ids:
        found = client.search_model_versions(f"tags.`{tags.TRAINING_RUN}` = '{run_id}'")
        if found:
            out[run_id] = max(found, key=lambda v: int(v.version))
    return out


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """MLflow's download progress bars off (one per run would fill the terminal)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    saved = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved


def read_sample(client: Any, run_id: str) -> dict[str, NDArray[Any]] | None:
    """A run's ``predictions_sample.npz`` as arrays, or None if it has none."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="oscflow-compare-") as tmp, _no_progress_bar():
        try:
            path = client.download_artifacts(run_id, SAMPLE_ARTIFACT, tmp)
        except (MlflowException, OSError):
            return None
        if not Path(path).is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}


def run_row(
    run: Any,
    tracking_uri: str,
    gates: Callable[[Mapping[str, str]], list[dict[str, Any]]] | None = None,
    version: Any = None,
) -> dict[str, Any]:
    """One run's row: ``summary_row`` plus its id, name, status, UI link, registered version
    (``version``: an MLflow ModelVersion, or None) and, with ``gates`` (gate tags →
    ``GateResult.as_dict()``s), the gate verdicts a promotion would give."""
    metrics = dict(run.data.metrics)
    row = {
        "kind": "run",
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "status": run.info.status,
        "experiment_id": run.info.experiment_id,
        "version": None if version is None else str(version.version),
        "model": None if version is None else str(version.name),
        **summary_row(metrics, run.data.tags),
        "ui": ui_link(tracking_uri, experiment_id=run.info.experiment_id, run_id=run.info.run_id),
    }
    if gates is not None:
        row.update(
            gate_summary(gates(gate_tags(metrics, None if version is None else version.tags)))
        )
    return row


def version_row(
    client: Any,
    version: Any,
    tracking_uri: str,
    gates: Callable[[Mapping[str, str]], list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """A registered version's row: its training run's (``oscflow.training_run`` tag, else the
    version's run id), with the version's gate verdicts; a version whose run is gone has
    every metric missing."""
    from mlflow.exceptions import MlflowException

    run_id = version.tags.get(tags.TRAINING_RUN) or version.run_id
    run = None
    if run_id:
        try:
            run = client.get_run(run_id)
        except MlflowException:
            run = None
    if run is not None:
        row = run_row(run, tracking_uri, gates, version)
    else:
        row = {
            "kind": "version",
            "run_id": run_id,
            "run_name": None,
            "status": None,
            "experiment_id": None,
            "version": str(version.version),
            "model": str(version.name),
            **summary_row({}, version.tags),
            "ui": None,
        }
        if gates is not None:
            row.update(gate_summary(gates(dict(version.tags))))
    row["kind"] = "version"
    row["label"] = f"v{version.version} {row.get('run_name') or ''}".rstrip()
    row["version_ui"] = ui_link(tracking_uri, model=version.name, version=version.version)
    return row

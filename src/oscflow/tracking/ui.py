"""Links into the MLflow UI: the one place oscflow builds them.

MLflow 3's UI has two workflows, GenAI and model training. Which one a page opens in comes from
the URL parameter ``workflowType`` (``genai`` or ``machine_learning``), else from the choice
the browser stored, GenAI by default: a new user following a bare experiment link lands on the
GenAI overview (traces, sessions, judges: "no data"), not on the training runs. Every link
oscflow prints therefore carries ``workflowType=machine_learning``. The experiments oscflow
creates are tagged ``mlflow.experimentKind = custom_model_development`` as well
(``tracking.runs.ensure_experiment``), for MLflow versions that read the kind from the tag
(3.17 does not: seen in a browser, the tag alone left the experiment on the GenAI view).

The routes are those of MLflow 3.17's single-page app (``#/experiments/<id>``,
``#/experiments/<id>/runs/<run>``, ``.../runs/<run>/artifacts/<path>``, ``#/models/<name>``,
``#/models/<name>/versions/<v>``). Only an ``http(s)`` tracking server has a UI: for any other
tracking URI (a SQLite file, a local directory) every link is None.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

WORKFLOW_PARAM = "workflowType"
WORKFLOW = "machine_learning"  # MLflow 3 UI's model-training workflow (the other: "genai")


def ui_base(tracking_uri: str | None) -> str | None:
    """The UI's root URL for a tracking server at ``tracking_uri`` (credentials removed), or
    None when it is not an http(s) server."""
    if not tracking_uri:
        return None
    parts = urlsplit(str(tracking_uri))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def ui_link(
    tracking_uri: str | None,
    *,
    experiment_id: str | None = None,
    run_id: str | None = None,
    artifact: str | None = None,
    model: str | None = None,
    version: str | int | None = None,
) -> str | None:
    """The UI page of a run (``experiment_id`` and ``run_id``; with ``artifact``: that file in
    the run's artifact view), an experiment's runs (``experiment_id``), a registered model or
    one of its versions (``model``, ``version``), else the experiments list; always on the
    model-training view. None if ``tracking_uri`` has no UI (not http(s))."""
    base = ui_base(tracking_uri)
    if base is None:
        return None
    if model is not None:
        route = f"/models/{quote(str(model), safe='')}"
        if version is not None:
            route += f"/versions/{quote(str(version), safe='')}"
    elif run_id is not None:
        if experiment_id is None:
            msg = "a run's UI link needs its experiment id"
            raise ValueError(msg)
        route = f"/experiments/{quote(str(experiment_id))}/runs/{quote(str(run_id))}"
        if artifact:
            route += f"/artifacts/{quote(str(artifact).lstrip('/'))}"
    elif experiment_id is not None:
        route = f"/experiments/{quote(str(experiment_id))}"
    else:
        route = "/experiments"
    return f"{base}/#{route}?{WORKFLOW_PARAM}={WORKFLOW}"

"""``oscflow registry wait``: block until the services a promotion triggers have finished
(or failed for good), then report their runs and headline results."""

from __future__ import annotations

import time
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from ..errors import ConfigError
from ..tracking.ui import ui_link


def wait_for_services(cfg: DictConfig) -> dict[str, Any]:
    from ..events.jobs import done, plan, routed, service_runs
    from ..events.ledger import Ledger
    from ..events.routing import JobSpec, effective

    routing = effective(cfg.routing)
    client = MlflowClient(str(cfg.tracking_uri))
    name = str(cfg.registry.name)
    if cfg.registry.version is not None:
        # the services the version calls for now: every version's, and those of its aliases
        # (a version not yet promoted: its validation, which the promotion gates read)
        version = str(cfg.registry.version)
        held = [a for a, v in (_aliases(client, name)).items() if str(v) == version]
        services = list(routing["on_version_created"]) + [
            s
            for a in held
            for s in routing["on_alias"].get(a) or []
            if s not in routing["on_version_created"]
        ]
    else:
        try:
            version = str(client.get_model_version_by_alias(name, str(cfg.registry.alias)).version)
        except MlflowException:
            raise ConfigError(
                "registry.alias",
                f"{name} has no alias @{cfg.registry.alias}",
                "promote a version first: oscflow registry promote NAME VERSION",
            ) from None
        services = list(routing["on_alias"].get(str(cfg.registry.alias)) or [])
    ledger = Ledger(str(cfg.ledger_url))
    specs = routed((JobSpec(s, name, version) for s in services), cfg)
    planned = {s.service: plan(s, cfg) for s in specs}
    deadline = time.time() + float(cfg.wait_timeout_s)
    runs: dict[str, Any] = {}
    while True:
        pending = []
        for service, p in planned.items():
            run_id = done(client, p)
            job = ledger.job(p.key)
            if run_id:
                runs[service] = {"status": "FINISHED", "run_id": run_id}
            elif job and job["state"] == "failed":
                failed = service_runs(client, p, "FAILED")
                runs[service] = {
                    "status": "FAILED",
                    "run_id": failed[0].info.run_id if failed else None,
                    "error": job["error"],
                }
            else:
                pending.append(service)
        if not pending or time.time() > deadline:
            break
        time.sleep(1.0)
    for service in pending:
        runs[service] = {"status": "PENDING", "run_id": None}
    for info in runs.values():
        if info["run_id"]:
            run = client.get_run(info["run_id"])
            info["metrics"] = dict(run.data.metrics)
            info["experiment_id"] = run.info.experiment_id
            info["ui"] = ui_link(
                str(cfg.tracking_uri), experiment_id=run.info.experiment_id, run_id=info["run_id"]
            )
    return {
        "model": name,
        "version": version,
        "complete": not pending and all(r["status"] == "FINISHED" for r in runs.values()),
        "runs": runs,
    }


def _aliases(client: MlflowClient, name: str) -> dict[str, Any]:
    try:
        return dict(client.get_registered_model(name).aliases or {})
    except MlflowException:
        raise ConfigError(
            "registry.name", f"no registered model {name!r}", "check the name (registry show)"
        ) from None


def format_wait(result: dict[str, Any]) -> str:
    lines = [f"{result['model']} v{result['version']}: downstream runs"]
    for service, r in result["runs"].items():
        lines.append(f"  {service:<12} {r['status']:<9} {r.get('run_id') or ''}")
        if r.get("error"):
            lines.append(f"      error: {r['error']}")
        for key, value in sorted((r.get("metrics") or {}).items())[:12]:
            lines.append(f"      {key:<32} {value:.6g}")
        if r.get("ui"):
            lines.append(f"      {r['ui']}")
    return "\n".join(lines)

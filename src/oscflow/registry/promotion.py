"""``oscflow registry promote|show``: promotion to an alias behind the gates, and what the
registry knows about each version (aliases, gate results, lineage, downstream runs)."""

from __future__ import annotations

import functools
import getpass
import time
from collections.abc import Mapping
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError, OscflowError
from ..tracking.ui import ui_link
from .gates import evaluate, gate_config

LINEAGE = (
    "oscflow.training_run",
    "oscflow.dataset.spectra_md5",
    "oscflow.dataset.pairs_md5",
    "oscflow.config_hash",
    "oscflow.git_commit",
    "oscflow.architecture",
)


class PromotionRefused(OscflowError):
    """A version failed a gate and the promotion was not forced."""


def gates_for(cfg: DictConfig, version_tags: Mapping[str, str]) -> dict[str, Any]:
    """The platform's gates merged with those of the experiment the version was trained for
    (its ``oscflow.experiment`` tag; else the platform's experiment)."""
    experiment = cfg.experiment if "experiment" in cfg else None
    name = version_tags.get("oscflow.experiment")
    if name and (experiment is None or name != experiment.name):
        from ..config import load

        experiment = load("platform", [f"experiment={name}"]).experiment
    extra = experiment.get("gates") if experiment is not None else None
    container = OmegaConf.to_container(cfg.gates, resolve=True)
    extra_c = OmegaConf.to_container(extra, resolve=True) if extra is not None else None
    # OmegaConf types to_container as any container; a DictConfig's is a dict
    return gate_config(container, extra_c)  # type: ignore[arg-type]


def _version(client: MlflowClient, name: str, version: str, key: str = "registry.version") -> Any:
    try:
        return client.get_model_version(name, version)
    except MlflowException:
        try:
            versions = sorted(
                int(v.version) for v in client.search_model_versions(f"name = '{name}'")
            )
        except MlflowException:
            versions = []
        raise ConfigError(
            key,
            f"{name} has no version {version!r}",
            f"use one of {versions}" if versions else f"register a model named {name} first",
        ) from None


def promote(cfg: DictConfig) -> dict[str, Any]:
    """Point ``registry.alias`` at the version if every gate passes (or ``force`` with a
    ``reason``, recorded on the version); else raise PromotionRefused naming each failure.
    With ``registry.pair`` (a version of the same model trained for the other mass ordering,
    ``registry/pairs.py``) both versions must pass and the pair is recorded on both before the
    alias moves, so the services the alias triggers see it."""
    reg = cfg.registry
    name, version, alias = str(reg.name), str(reg.version), str(reg.alias)
    if reg.version is None:
        raise ConfigError(
            "registry.version", "no version given", "oscflow registry promote NAME VERSION"
        )
    client = MlflowClient(str(cfg.tracking_uri))
    versions = [version] + ([str(reg.pair)] if reg.get("pair") is not None else [])
    if versions[1:] == [version]:
        raise ConfigError(
            "registry.pair", "a version cannot be its own pair", "name the partner's version"
        )
    checked = {
        v: _gated(cfg, client, name, v, "registry.pair" if i else "registry.version")
        for i, v in enumerate(versions)
    }
    failed = {v: [r for r in results if not r.passed] for v, results in checked.items()}
    if any(failed.values()) and not reg.force:
        raise PromotionRefused(
            f"{name} v{version}{f' (pair v{versions[1]})' if len(versions) > 1 else ''} not "
            f"promoted to @{alias}; gates:\n  "
            + "\n  ".join(f"v{v}: {r.describe()}" for v, rs in checked.items() for r in rs)
            + "\n  (override with --force --reason '...'; the override is recorded on the version)"
        )
    if reg.force and not (reg.reason and str(reg.reason).strip()):
        raise ConfigError(
            "registry.reason", "--force needs a reason", "add --reason 'why this version anyway'"
        )
    orderings: dict[str, str] = {}
    if len(versions) > 1:
        from .pairs import check_pair, pair_tags

        orderings = check_pair(name, version, versions[1], str(cfg.tracking_uri))
        for v, extra in pair_tags(orderings).items():
            for key, value in extra.items():
                client.set_model_version_tag(name, v, key, value)
    for v in versions:
        _record_promotion(client, name, v, alias, checked[v], failed[v], reg.reason)
    client.set_registered_model_alias(name, alias, version)
    out = _promotion_result(name, version, alias, checked[version], failed[version], reg.reason)
    if orderings:
        partner = versions[1]
        out["pair"] = {
            "orderings": orderings,
            **_promotion_result(
                name, partner, alias, checked[partner], failed[partner], reg.reason
            ),
        }
    return out


def _gated(cfg: DictConfig, client: MlflowClient, name: str, version: str, key: str) -> list[Any]:
    mv = _version(client, name, version, key)
    return evaluate(mv.tags, gates_for(cfg, mv.tags))


def _record_promotion(
    client: MlflowClient,
    name: str,
    version: str,
    alias: str,
    results: list[Any],
    failed: list[Any],
    reason: Any,
) -> None:
    for r in results:
        client.set_model_version_tag(
            name,
            version,
            f"oscflow.gate.{r.gate}",
            f"{'pass' if r.passed else 'fail'} {r.describe()}",
        )
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    client.set_model_version_tag(name, version, "oscflow.promotion.alias", alias)
    client.set_model_version_tag(name, version, "oscflow.promotion.at", stamp)
    client.set_model_version_tag(name, version, "oscflow.promotion.by", getpass.getuser())
    if failed:
        client.set_model_version_tag(name, version, "oscflow.promotion.forced", "true")
        client.set_model_version_tag(name, version, "oscflow.promotion.reason", str(reason))
        client.set_model_version_tag(
            name, version, "oscflow.promotion.failed_gates", ",".join(r.gate for r in failed)
        )


def _promotion_result(
    name: str, version: str, alias: str, results: list[Any], failed: list[Any], reason: Any
) -> dict[str, Any]:
    return {
        "model": name,
        "version": version,
        "alias": alias,
        "promoted": True,
        "forced": bool(failed),
        "reason": str(reason) if failed else None,
        "gates": [r.as_dict() for r in results],
        "model_uri": f"models:/{name}@{alias}",
    }


def _verdicts(tags: Mapping[str, str], gates: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [r.as_dict() for r in evaluate(tags, gates)]


def show(cfg: DictConfig) -> dict[str, Any]:
    """Versions (newest first) with aliases, gate results, lineage, downstream runs, and the
    comparison columns of ``oscflow compare`` (``summary``: architecture, parameters,
    accuracy, artefact RMS, fit bias, latency, throughput, training time from the training
    run; gates as a promotion reads them; dataset md5) with the UI links."""
    from ..tracking.compare import mark_pareto, version_row

    name = str(cfg.registry.name)
    uri = str(cfg.tracking_uri)
    client = MlflowClient(uri)
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        names = [m.name for m in client.search_registered_models()]
        raise ConfigError(
            "registry.name", f"no registered model {name!r}", f"use one of {names}"
        ) from None
    aliases: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    experiments = [e.experiment_id for e in client.search_experiments()]
    versions = []
    for mv in sorted(
        client.search_model_versions(f"name = '{name}'"), key=lambda v: -int(v.version)
    ):
        gates = gates_for(cfg, mv.tags)
        runs = client.search_runs(
            experiments,
            f"tags.`oscflow.model.name` = '{name}' and tags.`oscflow.model.version` = '{mv.version}'",
            max_results=100,
        )
        summary = version_row(client, mv, uri, functools.partial(_verdicts, gates=gates))
        versions.append(
            {
                "version": str(mv.version),
                "aliases": aliases.get(str(mv.version), []),
                "created": mv.creation_timestamp,
                "gates": summary.pop("gate_results"),
                "lineage": {k: mv.tags[k] for k in LINEAGE if k in mv.tags},
                "ordering": mv.tags.get("oscflow.ordering"),
                "pair": {
                    k.removeprefix("oscflow.pair."): v
                    for k, v in mv.tags.items()
                    if k.startswith("oscflow.pair.")
                },
                "promotion": {
                    k.split(".", 2)[2]: v
                    for k, v in mv.tags.items()
                    if k.startswith("oscflow.promotion.")
                },
                "summary": summary,
                "ui": summary["version_ui"],
                "service_runs": [
                    {
                        "service": r.data.tags.get("oscflow.service"),
                        "run_id": r.info.run_id,
                        "status": r.info.status,
                        "experiment_id": r.info.experiment_id,
                        "failure": r.data.tags.get("oscflow.failure_reason"),
                        "ui": ui_link(
                            uri, experiment_id=r.info.experiment_id, run_id=r.info.run_id
                        ),
                    }
                    for r in runs
                ],
            }
        )
    mark_pareto([v["summary"] for v in versions])
    return {
        "model": name,
        "aliases": dict(model.aliases or {}),
        "ui": ui_link(uri, model=name),
        "versions": versions,
    }


def format_show(result: dict[str, Any]) -> str:
    from ..tracking.compare import format_table

    lines = [f"{result['model']}  aliases: {result['aliases'] or '-'}"]
    if result.get("ui"):
        lines.append(f"  {result['ui']}")
    if result["versions"]:
        table = format_table([v["summary"] for v in result["versions"]], label="label")
        lines += ["", *("  " + t for t in table.splitlines()), ""]
    for v in result["versions"]:
        passed = sum(g["passed"] for g in v["gates"])
        lines.append(
            f"  v{v['version']:<4} {','.join('@' + a for a in v['aliases']) or '':<12} "
            f"gates {passed}/{len(v['gates'])}  run {v['lineage'].get('oscflow.training_run', '-')}"
            + (f"  {v['ordering']} ordering" if v.get("ordering") else "")
            + "".join(f"  pair: v{p} ({o})" for o, p in (v.get("pair") or {}).items())
        )
        for g in v["gates"]:
            mark = "ok " if g["passed"] else "NO "
            value = "n/a" if g["value"] is None else f"{g['value']:.4g}"
            lines.append(f"        {mark}{g['gate']:<22} {value:>10}  {g['bound']}")
        if v["promotion"].get("forced"):
            lines.append(f"        forced: {v['promotion'].get('reason')}")
        if v.get("ui"):
            lines.append(f"        {v['ui']}")
        for r in v["service_runs"]:
            lines.append(f"        {r['service']:<12} {r['status']:<9} {r['run_id']}")
    return "\n".join(lines)

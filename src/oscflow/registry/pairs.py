"""Mass-ordering pairs in the registry: two versions of one registered model, the same surrogate
trained on each ordering's dataset (``data=demo`` and ``data=demo_inverted``), promoted
together (``oscflow registry promote NAME V --alias champion --pair W``).

The pair is recorded on both versions, ``oscflow.pair.<ordering>`` = the partner's version
number, so ``models:/NAME@champion`` names both orderings unambiguously: the alias points at
V, V's tag at W. A version's ordering is its ``oscflow.ordering`` tag (set at registration
from the dataset), else the one its surrogate records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlflow.tracking import MlflowClient

from ..errors import ConfigError
from ..physics.oscillation import ORDERINGS
from ..tracking import tags


def other(ordering: str) -> str:
    return "inverted" if ordering == "normal" else "normal"


def version_ordering(client: MlflowClient, name: str, version: str, tracking_uri: str) -> str:
    """The mass ordering version ``version`` of ``name`` was trained for."""
    mv = client.get_model_version(name, version)
    found = mv.tags.get(tags.ORDERING)
    if found is None:
        from .reactors import SurrogateReactors

        found = SurrogateReactors.load(f"models:/{name}/{version}", tracking_uri).trained_ordering()
    if found not in ORDERINGS:
        raise ConfigError(
            "registry.pair",
            f"{name} v{version} records no mass ordering (tag {tags.ORDERING})",
            "pair versions of an experiment with mass orderings (JUNO), trained by this oscflow",
        )
    return str(found)


def _nested(flat: Mapping[str, str], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.removeprefix(prefix).split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def check_pair(name: str, version: str, partner: str, tracking_uri: str) -> dict[str, str]:
    """{version: ordering, partner: ordering} if the two versions are one surrogate for the two
    orderings: opposite orderings, the same inputs, binning, energy variable and every other
    experiment setting; else ConfigError naming the difference."""
    from .reactors import PREFIX, SurrogateReactors

    client = MlflowClient(tracking_uri)
    orderings = {v: version_ordering(client, name, v, tracking_uri) for v in (version, partner)}
    if orderings[version] == orderings[partner]:
        raise ConfigError(
            "registry.pair",
            f"{name} v{version} and v{partner} were both trained for the {orderings[version]} "
            "ordering",
            f"pair v{version} with a version trained on the {other(orderings[version])} "
            f"ordering's dataset (e.g. oscflow train data=demo_{other(orderings[version])})",
        )
    a = SurrogateReactors.load(f"models:/{name}/{version}", tracking_uri)
    b = SurrogateReactors.load(f"models:/{name}/{partner}", tracking_uri)
    if list(a.inputs) != list(b.inputs):
        raise ConfigError(
            "registry.pair",
            f"v{version} takes {list(a.inputs)}, v{partner} takes {list(b.inputs)}",
            "pair versions trained with the same data.spectra.inputs",
        )
    # everything but the ordering as v{version} was trained: b refuses any other difference
    settings = _nested(a.trained_settings(), PREFIX)
    settings["name"] = a.spec.experiment
    b.check_request(
        settings, None, a.spec.bin_edges, a.spec.energy, ordering=orderings[partner], ranges=False
    )
    return orderings


def partner_uri(uri: str, ordering: str, tracking_uri: str) -> str | None:
    """``models:/NAME/W`` of the version of ``uri``'s pair trained for ``ordering``: its own
    version if that is its ordering, else its partner's; None without a pair."""
    import mlflow

    from .reactors import resolve_version

    mlflow.set_tracking_uri(tracking_uri)
    resolved = resolve_version(uri)
    if resolved.name is None or resolved.version is None:
        return None
    mv = MlflowClient(tracking_uri).get_model_version(resolved.name, resolved.version)
    if not any(k.startswith(tags.PAIR_PREFIX) for k in mv.tags):
        return None
    if mv.tags.get(tags.ORDERING) == ordering:
        return f"models:/{resolved.name}/{resolved.version}"
    partner = mv.tags.get(f"{tags.PAIR_PREFIX}{ordering}")
    return f"models:/{resolved.name}/{partner}" if partner else None


def pair_tags(orderings: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The tags that record the pair on each version: version → {tag: value}."""
    (v, ov), (w, ow) = orderings.items()
    return {v: {f"{tags.PAIR_PREFIX}{ow}": w}, w: {f"{tags.PAIR_PREFIX}{ov}": v}}

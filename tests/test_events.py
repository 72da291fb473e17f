"""Event plumbing without an MLflow server: signatures (against MLflow's own signer), event
parsing, gates, the ledger's replay protection and leases, and a real intake process (signed
deliveries over loopback into a real SQLite-backed Huey queue)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from oscflow.config import load
from oscflow.events import routing, signing
from oscflow.events.ledger import Ledger
from oscflow.events.queue import make_huey
from oscflow.registry.gates import evaluate, gate_config

SECRET = "s3cret-for-tests"


def alias_body(name: str = "juno-spectrum", version: str = "1", alias: str = "champion") -> bytes:
    return json.dumps(
        {
            "entity": "model_version_alias",
            "action": "created",
            "timestamp": "2026-11-22T00:00:00+00:00",
            "data": {"name": name, "alias": alias, "version": version},
        }
    ).encode()


def test_signature_matches_mlflows_own_signer() -> None:
    from mlflow.webhooks.delivery import _generate_hmac_signature

    body = alias_body()
    ours = signing.sign(SECRET, "d-1", "1700000000", body)
    assert ours == _generate_hmac_signature(SECRET, "d-1", "1700000000", body.decode())
    headers = signing.signed_headers(SECRET, body, "d-1", 1700000000)
    assert signing.verify(SECRET, headers, body, 300, now=1700000100) == "d-1"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda h, b: (
                {**h, signing.SIGNATURE: signing.sign("wrong", "d-1", "1700000000", b)},
                b,
            ),
            "does not match",
        ),
        (lambda h, b: (h, b.replace(b'"1"', b'"2"')), "does not match"),
        (
            lambda h, b: ({k: v for k, v in h.items() if k != signing.TIMESTAMP}, b),
            "missing header",
        ),
        (lambda h, b: ({**h, signing.SIGNATURE: "v0,abc"}, b), "unsupported"),
    ],
)
def test_forged_or_altered_deliveries_are_rejected(mutate: Any, message: str) -> None:
    body = alias_body()
    headers, body2 = mutate(signing.signed_headers(SECRET, body, "d-1", 1700000000), body)
    with pytest.raises(signing.SignatureError, match=message):
        signing.verify(SECRET, headers, body2, 300, now=1700000000)


def test_stale_and_future_timestamps_are_rejected() -> None:
    body = alias_body()
    headers = signing.signed_headers(SECRET, body, "d-1", 1700000000)
    for now in (1700000000 + 301, 1700000000 - 301):
        with pytest.raises(signing.SignatureError, match="stale timestamp"):
            signing.verify(SECRET, headers, body, 300, now=now)


def test_event_parsing_and_routing() -> None:
    event = routing.parse(alias_body(version="7"))
    assert event == {
        "event": "model_version_alias.created",
        "model": "juno-spectrum",
        "version": "7",
        "alias": "champion",
        "timestamp": "2026-11-22T00:00:00+00:00",
    }
    cfg = load("platform", [])
    routes = routing.effective(cfg.routing)  # the services' own ROUTES
    assert routes == {
        "on_version_created": ["validate"],
        "on_alias": {"champion": ["fit", "nmo", "sensitivity", "sterile"]},
    }
    jobs = routing.jobs_for({**event, "delivery_id": "d"}, routes)
    assert [(j.service, j.version, j.event_id) for j in jobs] == [
        ("fit", "7", "d"),
        ("nmo", "7", "d"),
        ("sensitivity", "7", "d"),
        ("sterile", "7", "d"),
    ]
    other_alias = {**routing.parse(alias_body(alias="staging")), "delivery_id": "e"}
    assert routing.jobs_for(other_alias, routes) == []
    # conf/platform.yaml adds routes and switches services off
    tuned = load(
        "platform",
        [
            "+routing.on_alias.staging=[fit]",
            "routing.disabled=[nmo, sensitivity, sterile, validate]",
        ],
    )
    assert routing.effective(tuned.routing) == {
        "on_version_created": [],
        "on_alias": {"champion": ["fit"], "staging": ["fit"]},
    }
    with pytest.raises(routing.EventError, match="malformed JSON"):
        routing.parse(b"{not json")
    with pytest.raises(routing.EventError, match=r"unknown event type 'registered_model\.created'"):
        routing.parse(
            json.dumps({"entity": "registered_model", "action": "created", "data": {}}).encode()
        )
    with pytest.raises(routing.EventError, match="without alias"):
        routing.parse(alias_body(alias=""))


def test_gates_pass_fail_and_margins() -> None:
    gates = gate_config({"max_rel_dev_peak1": {"max": 0.05}, "coverage": {"min": 0.9}})
    tags = {"oscflow.metric.max_rel_dev_peak1": "0.08", "oscflow.validation.coverage": "0.95"}
    res = {r.gate: r for r in evaluate(tags, gates)}
    assert not res["max_rel_dev_peak1"].passed
    assert res["max_rel_dev_peak1"].margin == pytest.approx(-0.03)
    assert "FAIL by 0.03" in res["max_rel_dev_peak1"].describe()
    assert res["coverage"].passed
    assert res["coverage"].margin == pytest.approx(0.05)
    # the validation tag wins over the training-time one
    tags["oscflow.validation.max_rel_dev_peak1"] = "0.01"
    assert {r.gate: r for r in evaluate(tags, gates)}["max_rel_dev_peak1"].passed
    assert not evaluate({}, gates)[0].passed  # not measured is not a pass
    from oscflow.errors import ConfigError

    with pytest.raises(ConfigError, match="exactly one of max or min"):
        gate_config({"x": {"max": 1, "min": 0}})


def test_ledger_replays_and_leases(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    event = {"event": "model_version.created", "model": "m", "version": "1"}
    assert ledger.record_event("d-1", event, "webhook")
    assert not ledger.record_event("d-1", event, "webhook")
    fields = {"service": "fit", "model": "m", "version": "1", "config_hash": "h", "event_id": "d-1"}
    assert ledger.claim("k", fields, "w1", lease_s=0.5)
    assert not ledger.claim("k", fields, "w2", lease_s=0.5)  # live lease held by w1
    time.sleep(0.6)
    assert ledger.claim("k", fields, "w2", lease_s=30)  # w1 stopped renewing: taken over
    assert not ledger.renew("k", "w1", 30)
    ledger.finish("k", "w2", "finished", run_id="r")
    job = ledger.job("k")
    assert job["state"] == "finished"
    assert job["attempts"] == 2
    assert job["lease_owner"] is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real `oscflow intake` process on loopback (no worker: enqueued events stay queued)."""
    state = tmp_path_factory.mktemp("intake")
    port = _free_port()
    overrides = [f"state_dir={state}", f"intake.port={port}", "intake.max_body_bytes=4096"]
    env = {**os.environ, "OSCFLOW_WEBHOOK_SECRET": SECRET}
    log = state / "intake.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "oscflow.cli", "intake", *overrides],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1)
            break
        except OSError:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OSCFLOW_WEBHOOK_SECRET", SECRET)
        cfg = load("platform", overrides)
    yield {"url": f"{url}/webhooks/mlflow", "cfg": cfg}
    proc.terminate()
    proc.wait(timeout=20)


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _depth(cfg: Any) -> int:
    return make_huey(cfg).pending_count()


def test_intake_rejects_bad_deliveries_and_enqueues_nothing(intake: dict[str, Any]) -> None:
    url, cfg = intake["url"], intake["cfg"]
    before = _depth(cfg)
    body = alias_body()
    forged = signing.signed_headers("not-the-secret", body)
    stale = signing.signed_headers(SECRET, body, timestamp=int(time.time()) - 600)
    bad_json = b"{oops"
    unknown = json.dumps({"entity": "prompt", "action": "created", "data": {"name": "x"}}).encode()
    big = json.dumps({"pad": "x" * 5000}).encode()
    cases = [
        (body, forged, 401, "does not match"),
        (body, stale, 401, "stale timestamp"),
        (bad_json, signing.signed_headers(SECRET, bad_json), 400, "malformed JSON"),
        (unknown, signing.signed_headers(SECRET, unknown), 400, "unknown event type"),
        (big, signing.signed_headers(SECRET, big), 413, "larger than 4096"),
    ]
    for payload, headers, code, reason in cases:
        status, answer = _post(url, payload, headers)
        assert status == code, answer
        assert reason in answer["error"]
    assert _depth(cfg) == before
    assert Ledger(str(cfg.ledger_url)).recent_events(50) == []


def test_intake_persists_then_answers_and_refuses_replays(intake: dict[str, Any]) -> None:
    url, cfg = intake["url"], intake["cfg"]
    before = _depth(cfg)
    body = alias_body(version="3")
    headers = signing.signed_headers(SECRET, body, "delivery-42")
    status, answer = _post(url, body, headers)
    assert status == 202
    assert answer["accepted"] == "delivery-42"
    assert _depth(cfg) == before + 1  # on the queue before the 2xx
    status, answer = _post(url, body, headers)  # the same delivery again
    assert status == 409
    assert "replay" in answer["error"]
    assert _depth(cfg) == before + 1
    events = Ledger(str(cfg.ledger_url)).recent_events(50)
    assert [(e["delivery_id"], e["version"], e["alias"]) for e in events] == [
        ("delivery-42", "3", "champion")
    ]


@pytest.mark.slow  # a fresh interpreter per service
@pytest.mark.parametrize("service", ["validate", "fit", "sensitivity"])
def test_service_config_hash_is_stable_across_processes_and_time(
    service: str, tmp_path: Path
) -> None:
    """Idempotency keys on the config hash: it must not depend on when it is computed
    (timestamped output directories) or on where results are written."""
    from oscflow.events.jobs import _compose
    from oscflow.events.routing import JobSpec

    registry = f"tracking_uri=sqlite:///{tmp_path}/mlflow.db"  # no such version: no tags
    cfg = load("platform", [registry])
    first = _compose(JobSpec(service, "juno-spectrum", "1"), cfg)[1]
    time.sleep(1.1)
    assert _compose(JobSpec(service, "juno-spectrum", "1"), cfg)[1] == first
    moved = load("platform", [registry, "paths.root_dir=/elsewhere"])
    assert _compose(JobSpec(service, "juno-spectrum", "1"), moved)[1] == first
    assert _compose(JobSpec(service, "juno-spectrum", "2"), cfg)[1] != first

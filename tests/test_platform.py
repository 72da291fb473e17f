"""The platform end to end on loopback: `oscflow up` (a real MLflow server with webhooks, the
intake, a worker), promotion behind gates, downstream runs, and the reliability properties:
the intake down during a promotion, a worker SIGKILLed mid-job, 200 alias events in a burst.
Run with the embedded backends and with the team-scale ones (PostgreSQL + Redis, MLflow's
artifacts and the DVC remote on S3: a local S3 server `oscflow up` starts, with credentials from
the environment)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from helpers import NOMINAL
from oscflow.events import signing

pytestmark = [pytest.mark.slow, pytest.mark.pipeline]
TESTS = Path(__file__).resolve().parent
PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """A stack started with `oscflow up` and the overrides every command of it must share."""

    def __init__(self, root: Path, state: Path, overrides: list[str], env: dict[str, str]):
        self.root, self.state, self.overrides, self.env = root, state, overrides, env
        self.mlflow = next(o.split("=", 1)[1] for o in overrides if o.startswith("mlflow.port="))
        self.uri = f"http://127.0.0.1:{self.mlflow}"
        self.client = MlflowClient(self.uri)
        self.up: dict[str, Any] = {}  # what `oscflow up --json` reported

    def oscflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "oscflow.cli", *args, *self.overrides],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if check:
            assert proc.returncode == 0, f"oscflow {args}: {proc.stdout}\n{proc.stderr}"
        return proc

    def runs(self, service: str, version: str, status: str | None = None) -> list[Any]:
        ids = [e.experiment_id for e in self.client.search_experiments()]
        query = (
            f"tags.`oscflow.service` = '{service}' and tags.`oscflow.model.version` = '{version}'"
        )
        if status:
            query += f" and attributes.status = '{status}'"
        runs = self.client.search_runs(ids, query, max_results=1000)
        # only the platform's runs (other tests record service runs in the same store)
        return [r for r in runs if "oscflow.job_key" in r.data.tags]

    def wait_for(self, service: str, version: str, timeout: float = 240) -> Any:
        deadline = time.time() + timeout
        while time.time() < deadline:
            runs = self.runs(service, version, "FINISHED")
            if runs:
                return runs
            time.sleep(1)
        status = self.oscflow("status", check=False).stdout
        logs = (self.state / "logs" / "worker.log").read_text()[-4000:]
        pytest.fail(f"no FINISHED {service} run for v{version} in {timeout} s\n{status}\n{logs}")

    def wait_for_event(
        self, event: str, version: str, alias: str | None = None, timeout: float = 60
    ) -> dict[str, Any]:
        """The intake's record of a webhook delivery (``status --json``'s recent events)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            status = json.loads(self.oscflow("status", "--json", check=False).stdout)
            for e in status["recent_events"]:
                if (e["event"], e["version"], e["alias"], e["source"]) == (
                    event,
                    version,
                    alias,
                    "webhook",
                ):
                    return e
            time.sleep(1)
        pytest.fail(f"no {event} webhook for v{version} recorded in {timeout} s")

    def post_event(self, body: bytes) -> int:
        secret = (self.state / "webhook_secret").read_text().strip()
        port = next(o.split("=", 1)[1] for o in self.overrides if o.startswith("intake.port="))
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/webhooks/mlflow",
            data=body,
            headers=signing.signed_headers(secret, body),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status


def _pg_database() -> Iterator[str]:
    import psycopg2

    name = f"oscflow_e2e_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield f"{PG}/{name}"
    finally:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.close()


# One xdist worker per stack (`make test` runs the suite with pytest-xdist, --dist loadgroup):
# the tests of one stack share it, the two stacks run side by side.
# Tests of the local stack only name LOCAL (not "local"), so that they keep its xdist group and
# share its stack instead of starting another on another worker.
LOCAL = pytest.param("local", marks=pytest.mark.xdist_group("platform-local"))
TEAM = pytest.param("team", marks=pytest.mark.xdist_group("platform-team"))


@pytest.fixture(
    scope="module",
    params=[LOCAL, TEAM],
)
def stack(
    request: pytest.FixtureRequest,
    registered_surrogate: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    root = Path(registered_surrogate["root"])
    tmp = tmp_path_factory.mktemp(f"stack_{request.param}")
    overrides = [
        f"paths.root_dir={root}",
        "data=ttrain",
        f"state_dir={tmp}/state",
        f"mlflow.port={_free_port()}",
        f"intake.port={_free_port()}",
        "reconcile.interval_s=3",
        "workers.lease_s=6",
        "workers.heartbeat_s=1",
        "workers.retry_delay_s=0.5",
        f"queue.name=oscflow-{uuid.uuid4().hex[:8]}",
        # The 3-epoch test surrogate cannot fit exact Asimov data: fit its own Asimov spectrum
        # (the whole service path still runs; make demo runs the default configuration).
        'service_overrides.fit=["observation.generator=model","referee=false","orderings=false"]',
        # the same for the mass-ordering study, with its oscillation parameters fixed (test_nmo)
        'service_overrides.nmo=["free=[]","nmo.toys=40","nmo.asimov_days=[2191.5]"]',
        # fewer points and no scans: the services' own tests cover their full defaults; here
        # the runs, their links and the gates' reading of them are what is checked
        'service_overrides.validate=["n_points=60","bias_points=10"]',
        'service_overrides.sensitivity=["scans.enabled=false","spectral.enabled=false"]',
        "+routing.on_alias.burst=[standins.fast]",
        "+routing.on_alias.late=[standins.fast]",
        "+routing.on_alias.slow=[standins.slow]",
    ]
    env = {
        **os.environ,
        "OSCFLOW_CONFIG_DIR": str(root / "conf"),
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    databases = None
    if request.param == "local":
        overrides += [
            f"mlflow.backend_store_uri={registered_surrogate['tracking_uri']}",
            f"mlflow.artifacts_destination={registered_surrogate['artifacts']}",
        ]
    else:
        databases = _pg_database()
        db = next(databases)
        overrides += ["stack=team", "s3.serve=true"]  # `up` starts the S3 server (s3server)
        for name in ("OSCFLOW_ARTIFACTS_URI", "OSCFLOW_DVC_REMOTE_URL", "AWS_ENDPOINT_URL"):
            env.pop(name, None)  # the team defaults: buckets mlflow and dvc
        env.update(
            OSCFLOW_MLFLOW_BACKEND_URI=db,
            OSCFLOW_LEDGER_URL=db,
            OSCFLOW_REDIS_URL="redis://127.0.0.1:6379/0",
            MLFLOW_S3_ENDPOINT_URL=f"http://127.0.0.1:{_free_port()}",
            AWS_ACCESS_KEY_ID="oscflow-test",
            AWS_SECRET_ACCESS_KEY=uuid.uuid4().hex,
        )
    s = Stack(root, tmp / "state", overrides, env)
    try:
        if request.param == "team":  # what `up` reports of the S3 store: the test reads it
            s.up = json.loads(s.oscflow("up", "--json").stdout)
            assert s.up["export"] == f"export MLFLOW_TRACKING_URI={s.uri}"
        else:
            assert "MLFLOW_TRACKING_URI=" in s.oscflow("up").stdout
        if request.param == "team":
            _copy_model(registered_surrogate, s.client)
        yield s
    finally:
        s.oscflow("down", check=False)
        if databases is not None:
            next(databases, None)


def _copy_model(registered: dict[str, str], client: MlflowClient) -> None:
    """Register the session's surrogate pair (v1 normal, v2 inverted ordering) in the
    team-scale server (files uploaded to a run there, lineage tags copied, not yet paired):
    what a team member's trainings would have produced."""
    import mlflow

    source = MlflowClient(registered["tracking_uri"])
    mlflow.set_tracking_uri(registered["tracking_uri"])
    exp = client.create_experiment("juno-surrogate")
    client.create_registered_model(registered["name"])
    for version in (registered["version"], registered["io_version"]):
        mv = source.get_model_version(registered["name"], version)
        local = mlflow.artifacts.download_artifacts(f"models:/{registered['name']}/{version}")
        run = client.create_run(exp)
        client.log_artifacts(run.info.run_id, local, "model")
        client.set_terminated(run.info.run_id)
        client.create_model_version(
            registered["name"],
            f"runs:/{run.info.run_id}/model",
            run_id=run.info.run_id,
            tags={k: v for k, v in mv.tags.items() if not k.startswith("oscflow.pair.")},
        )


def test_new_version_is_validated_and_gates_guard_promotion(stack: Stack) -> None:
    # the inverted-ordering partner is validated against its own ordering's exact model; a
    # version without an alias waits for its validation only (what the gates read)
    assert stack.wait_for("validate", "2")
    waited = json.loads(stack.oscflow("registry", "wait", "juno-spectrum", "2", "--json").stdout)
    assert waited["complete"]
    assert set(waited["runs"]) == {"validate"}
    runs = stack.wait_for("validate", "1")
    assert runs[0].data.tags["oscflow.model.name"] == "juno-spectrum"
    tags = stack.client.get_model_version("juno-spectrum", "1").tags
    assert float(tags["oscflow.validation.max_rel_dev_peak1"]) > 0
    # the tiny test surrogate (3 epochs) fails the default gates: refused, no alias
    refused = stack.oscflow("registry", "promote", "juno-spectrum", "1", check=False)
    assert refused.returncode == 1
    assert "not promoted" in refused.stderr
    assert "FAIL by" in refused.stderr
    assert "champion" not in stack.client.get_registered_model("juno-spectrum").aliases
    no_reason = stack.oscflow("registry", "promote", "juno-spectrum", "1", "--force", check=False)
    assert "needs a reason" in no_reason.stderr


def test_forced_promotion_of_a_pair_triggers_fit_sensitivity_and_nmo(stack: Stack) -> None:
    stack.oscflow(
        "registry", "promote", "juno-spectrum", "1", "--pair", "2", "--force", "--reason",
        "plumbing test",
    )  # fmt: skip
    tags = stack.client.get_model_version("juno-spectrum", "1").tags
    assert tags["oscflow.promotion.forced"] == "true"
    assert tags["oscflow.promotion.reason"] == "plumbing test"
    assert tags["oscflow.pair.inverted"] == "2"
    for service in ("fit", "sensitivity", "nmo"):
        runs = stack.wait_for(service, "1")
        assert len(runs) == 1  # the webhook and the reconciler enqueue one job, not two
        assert runs[0].data.tags["oscflow.model.name"] == "juno-spectrum"
    assert not stack.runs("nmo", "2")  # the pair's study is one run, on the champion
    # MLflow delivered the signed alias webhook and the intake accepted it (whichever of the
    # webhook and the reconciler's pass every 3 s enqueued the jobs first)
    assert stack.wait_for_event("model_version_alias.created", "1", alias="champion")
    waited = json.loads(
        stack.oscflow("registry", "wait", "juno-spectrum", "@champion", "--json").stdout
    )
    assert waited["complete"]
    assert set(waited["runs"]) == {"fit", "nmo", "sensitivity"}
    show = json.loads(stack.oscflow("registry", "show", "juno-spectrum", "--json").stdout)
    assert show["aliases"] == {"champion": "1"}
    v1 = next(v for v in show["versions"] if v["version"] == "1")
    assert v1["pair"] == {"inverted": "2"}
    assert {r["service"] for r in v1["service_runs"]} >= {"validate", "fit", "sensitivity", "nmo"}


def _alias_body(version: str, alias: str) -> bytes:
    data = {"name": "juno-spectrum", "alias": alias, "version": version}
    return json.dumps({"entity": "model_version_alias", "action": "created", "data": data}).encode()


@pytest.mark.parametrize("stack", [LOCAL], indirect=True)  # reliability: embedded
def test_intake_down_during_promotion_is_caught_by_the_reconciler(stack: Stack) -> None:
    from oscflow.platform import processes

    processes.stop(stack.state, "intake")
    stack.client.set_registered_model_alias("juno-spectrum", "late", "1")  # webhook lost
    run = stack.wait_for("standins.fast", "1", timeout=120)  # the worker's reconciler
    assert run[0].data.tags["oscflow.event_id"] == "reconciler"
    stack.oscflow("up")  # the intake back: a late MLflow retry may now arrive, and is a no-op
    assert json.loads(stack.oscflow("status", "--json").stdout)["healthy"]
    time.sleep(5)
    assert len(stack.runs("standins.fast", "1", "FINISHED")) == 1


@pytest.mark.parametrize("stack", [LOCAL], indirect=True)  # reliability: embedded
def test_worker_killed_mid_job_completes_after_restart_exactly_once(stack: Stack) -> None:
    stack.client.set_registered_model_alias("juno-spectrum", "slow", "1")
    deadline = time.time() + 120
    while not stack.runs("standins.slow", "1", "RUNNING"):
        assert time.time() < deadline, "the slow job never started"
        time.sleep(0.5)
    pid = json.loads((stack.state / "pids" / "worker.json").read_text())["pid"]
    os.killpg(pid, signal.SIGKILL)
    time.sleep(1)
    stack.oscflow("up")  # restarts the worker only
    finished = stack.wait_for("standins.slow", "1", timeout=180)
    assert len(finished) == 1
    failed = stack.runs("standins.slow", "1", "FAILED")
    assert len(failed) == 1
    assert "abandoned" in failed[0].data.tags["oscflow.failure_reason"]
    time.sleep(4)  # a further reconciler pass must not run it again
    assert len(stack.runs("standins.slow", "1", "FINISHED")) == 1


@pytest.mark.parametrize("stack", [LOCAL], indirect=True)  # reliability: embedded
def test_burst_of_200_alias_events_each_processed_once(stack: Stack) -> None:
    versions = [str(v) for v in range(1000, 1200)]
    codes = [stack.post_event(_alias_body(v, "burst")) for v in versions]
    assert codes == [202] * 200
    deadline = time.time() + 400
    while time.time() < deadline:
        ids = [e.experiment_id for e in stack.client.search_experiments()]
        runs = stack.client.search_runs(
            ids,
            "tags.`oscflow.service` = 'standins.fast' and attributes.status = 'FINISHED'",
            max_results=1000,
        )
        done = [r.data.tags["oscflow.model.version"] for r in runs]
        if set(versions) <= set(done):
            break
        time.sleep(2)
    burst = [v for v in done if v in set(versions)]
    assert sorted(burst) == sorted(versions)  # every one processed, none twice


@pytest.mark.parametrize("stack", [LOCAL], indirect=True)
def test_version_with_missing_artifact_fails_with_the_reason_recorded(stack: Stack) -> None:
    run_id = stack.client.get_model_version("juno-spectrum", "1").run_id
    mv = stack.client.create_model_version(  # webhook -> validate
        "juno-spectrum", f"runs:/{run_id}/no-such-model", run_id=run_id
    )
    version = str(mv.version)
    deadline = time.time() + 180
    while time.time() < deadline:
        status = json.loads(stack.oscflow("status", "--json", check=False).stdout)
        failed = [j for j in status["failures"] if j["version"] == version]
        if failed:
            break
        time.sleep(1)
    assert failed, status
    assert failed[0]["service"] == "validate"
    assert "missing or corrupt" in failed[0]["error"]
    runs = stack.runs("validate", version, "FAILED")
    assert runs
    assert all("missing or corrupt" in r.data.tags["oscflow.failure_reason"] for r in runs)
    assert not stack.runs("validate", version, "FINISHED")


def _s3_objects(stack: Stack, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """Every object under ``prefix`` in ``bucket`` of the team stack's S3 server, read with
    boto3 and the stack's credentials: what is really in the store."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=stack.up["s3"]["endpoint"],
        aws_access_key_id=stack.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=stack.env["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def _dvc(repo: Path, command: str) -> None:
    """A `dvc ...` command line, run in this process (a `dvc` process costs seconds). DVC's
    own dependencies' deprecation warnings (pygtrie's `_NoneStep.value`, which DVC reads) are
    not errors here: DVC would report them as a failed command."""
    import contextlib
    import io
    import shlex
    import warnings

    from dvc.cli import main as dvc_main

    words = shlex.split(command)
    assert words[0] == "dvc", command
    out = io.StringIO()
    cwd = Path.cwd()
    os.chdir(repo)
    try:
        with (
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(out),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore", DeprecationWarning)
            code = dvc_main(words[1:])
    finally:
        os.chdir(cwd)
    assert code == 0, f"{command}: {out.getvalue()}"


@pytest.mark.parametrize("stack", [TEAM], indirect=True)
def test_team_stack_keeps_models_and_dvc_data_in_the_s3_bucket(
    stack: Stack,
    registered_surrogate: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The versions the fixture registered through the team server (`_copy_model`) are objects
    in the `mlflow` bucket, and load back through the server (MLflow 3 clients fetch them from
    S3 with URLs the server presigns); a DVC-tracked file pushes to and pulls from the remote
    `up` printed, as objects in the `dvc` bucket."""
    import mlflow

    from oscflow.platform.stack import format_s3
    from oscflow.registry import load_surrogate

    store = stack.up["s3"]
    assert store["endpoint"] == stack.env["MLFLOW_S3_ENDPOINT_URL"]
    assert store["buckets"] == {"mlflow": "created", "dvc": "created"}
    assert store["dvc_remote"]["url"] == "s3://dvc/oscflow"
    assert " && ".join(store["dvc_remote"]["commands"]) in format_s3(store)  # `up`'s report
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, stack.env[name])
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")  # no analytics daemon from `dvc init`
    # MLflow: the version's files, as the server serves them and as the bucket holds them
    run_id = stack.client.get_model_version("juno-spectrum", "1").run_id
    files = Path(stack.client.download_artifacts(run_id, "model", str(tmp_path / "model")))
    served = {
        p.relative_to(files).as_posix(): p.read_bytes() for p in files.rglob("*") if p.is_file()
    }
    assert "MLmodel" in served
    objects = _s3_objects(stack, "mlflow", "artifacts/")
    in_bucket = {
        k.split(f"/{run_id}/artifacts/model/", 1)[1]: v
        for k, v in objects.items()
        if f"/{run_id}/artifacts/model/" in k
    }
    assert in_bucket == served
    previous = mlflow.get_tracking_uri()
    try:
        mlflow.set_tracking_uri(registered_surrogate["tracking_uri"])
        source = load_surrogate(registered_surrogate["model_uri"])
        mlflow.set_tracking_uri(stack.uri)
        loaded = load_surrogate("models:/juno-spectrum/1")
    finally:
        mlflow.set_tracking_uri(previous)
    point = [[NOMINAL[name] for name in loaded.inputs]]
    np.testing.assert_array_equal(loaded.predict(point), source.predict(point))
    # DVC: a small tracked file through the remote `up` printed the commands for
    repo = tmp_path / "repo"
    repo.mkdir()
    _dvc(repo, "dvc init --no-scm --quiet")
    for command in store["dvc_remote"]["commands"]:
        _dvc(repo, command)
    data = repo / "table.csv"
    content = b"sin2_th12,dm2_21\n0.307,7.53e-5\n"
    data.write_bytes(content)
    _dvc(repo, "dvc add --quiet table.csv")
    _dvc(repo, "dvc push --quiet -r team")
    digest = hashlib.md5(content).hexdigest()
    assert _s3_objects(stack, "dvc", "oscflow/") == {
        f"oscflow/files/md5/{digest[:2]}/{digest[2:]}": content
    }
    data.unlink()
    shutil.rmtree(repo / ".dvc" / "cache")
    _dvc(repo, "dvc pull --quiet -r team")
    assert data.read_bytes() == content

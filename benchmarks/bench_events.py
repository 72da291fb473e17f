"""Event platform figures (no pass/fail): latency from alias set to job start, by the webhook
path and by the reconciler alone, and jobs per minute through the queue.

A private stack (``oscflow up`` on free ports, fresh SQLite stores under a temp folder) runs
the stand-in service ``standins.fast`` (tests/standins: one MLflow run per job, no physics),
so the figures are the platform's own overhead:

* webhook path: ``set_registered_model_alias`` → MLflow's webhook → intake → queue → worker
  → the service's MLflow run starts (its ``start_time``);
* reconciler path: the intake stopped, the same alias change found by the worker's reconciler
  (``reconcile.interval_s`` = 5 s: expect about half of it on average);
* throughput: N signed alias events posted to the intake in a burst, until the N-th run has
  finished; the baseline is the same N service calls made directly in one process (no queue).

Run from the repository root::

    .venv/bin/python benchmarks/bench_events.py          # ~3 min on 2 cores
    .venv/bin/python benchmarks/bench_events.py --quick  # fewer repeats

The last line printed is a single JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from _timing import environment

ROOT = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self, tmp: Path, interval: float) -> None:
        self.state = tmp / f"state-{interval:g}"
        self.mlflow_port, self.intake_port = _port(), _port()
        self.overrides = [
            f"state_dir={self.state}",
            f"mlflow.port={self.mlflow_port}",
            f"intake.port={self.intake_port}",
            f"mlflow.backend_store_uri=sqlite:///{tmp}/mlflow-{interval:g}.db",
            f"mlflow.artifacts_destination={tmp}/artifacts",
            f"reconcile.interval_s={interval}",
            "routing.on_version_created=[]",
            "+routing.on_alias.bench=[standins.fast]",
        ]
        self.env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
        self.env.pop("MLFLOW_TRACKING_URI", None)
        self.uri = f"http://127.0.0.1:{self.mlflow_port}"

    def oscflow(self, *args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "oscflow.cli", *args, *self.overrides],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"oscflow {args}: {proc.stdout}\n{proc.stderr}")
        return proc.stdout


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def _runs(client: Any, version: str | None = None, status: str | None = None) -> list[Any]:
    ids = [e.experiment_id for e in client.search_experiments()]
    query = "tags.`oscflow.service` = 'standins.fast'"
    if version:
        query += f" and tags.`oscflow.model.version` = '{version}'"
    if status:
        query += f" and attributes.status = '{status}'"
    return client.search_runs(ids, query, max_results=5000)


def _alias_latency(stack: Stack, versions: list[str], timeout: float) -> list[float]:
    client = _client(stack.uri)
    out = []
    for version in versions:
        t0 = time.time()
        client.set_registered_model_alias("bench", "bench", version)
        while not (runs := _runs(client, version)):
            if time.time() - t0 > timeout:
                raise TimeoutError(f"no run for v{version} after {timeout} s")
            time.sleep(0.05)
        out.append(runs[0].info.start_time / 1000 - t0)
    return out


def _post(stack: Stack, version: str) -> None:
    from oscflow.events import signing

    secret = (stack.state / "webhook_secret").read_text().strip()
    data = {"name": "bench", "alias": "bench", "version": version}
    body = json.dumps({"entity": "model_version_alias", "action": "created", "data": data})
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.intake_port}/webhooks/mlflow",
        data=body.encode(),
        headers=signing.signed_headers(secret, body.encode()),
        method="POST",
    )
    urllib.request.urlopen(request, timeout=30).read()


def _direct_baseline(stack: Stack, n: int) -> float:
    """The same service calls without queue, intake or worker (one process, in series)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from oscflow.config import load
    from standins import fast

    cfg = load("validate", [f"logger.tracking_uri={stack.uri}"])
    t0 = time.time()
    for i in range(n):
        fast.record(cfg, {"oscflow.service": "direct", "oscflow.model.version": str(i)})
    return time.time() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n_latency = 3 if args.quick else 8
    n_burst = 40 if args.quick else 100
    env = environment()
    print(f"# oscflow event platform benchmark ({env.get('cpu', '')})")
    figures: dict[str, Any] = {"environment": env}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for path, interval in (("webhook", 3600.0), ("reconciler", 5.0)):
            stack = Stack(tmp, interval)
            stack.oscflow("up")
            try:
                client = _client(stack.uri)
                client.create_registered_model("bench")
                exp = client.create_experiment("bench")
                run_id = client.create_run(exp).info.run_id  # versions need a source run
                versions = [
                    str(
                        client.create_model_version(
                            "bench", f"runs:/{run_id}/model", run_id=run_id
                        ).version
                    )
                    for _ in range(n_latency)
                ]
                if path == "reconciler":
                    from oscflow.platform import processes

                    processes.stop(stack.state, "intake")
                lat = _alias_latency(stack, versions, timeout=120)
                figures[f"latency_{path}_s"] = {
                    "median": statistics.median(lat),
                    "min": min(lat),
                    "max": max(lat),
                    "n": len(lat),
                }
                print(
                    f"alias set -> job start, {path:<10}: median {statistics.median(lat):.3f} s "
                    f"(min {min(lat):.3f}, max {max(lat):.3f}, n={len(lat)})"
                )
                if path == "webhook":
                    t0 = time.time()
                    burst = [str(10_000 + i) for i in range(n_burst)]
                    for version in burst:
                        _post(stack, version)
                    posted = time.time() - t0
                    while len(_runs(client, None, "FINISHED")) < n_burst + n_latency:
                        time.sleep(0.5)
                    elapsed = time.time() - t0
                    direct = _direct_baseline(stack, n_burst)
                    figures["throughput"] = {
                        "jobs": n_burst,
                        "post_seconds": posted,
                        "seconds": elapsed,
                        "jobs_per_min": 60 * n_burst / elapsed,
                        "direct_seconds": direct,
                        "overhead_ratio": elapsed / direct,
                    }
                    print(
                        f"throughput: {n_burst} events posted in {posted:.2f} s, all jobs done in "
                        f"{elapsed:.1f} s = {60 * n_burst / elapsed:.0f} jobs/min; the same "
                        f"service calls direct: {direct:.1f} s (queue path x{elapsed / direct:.2f})"
                    )
            finally:
                stack.oscflow("down")
    lat_w = figures["latency_webhook_s"]["median"]
    lat_r = figures["latency_reconciler_s"]["median"]
    print(f"reconciler-only / webhook latency: x{lat_r / lat_w:.1f}")
    print(json.dumps(figures, default=str))


if __name__ == "__main__":
    main()

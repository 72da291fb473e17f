"""The service contract (``oscflow.services``): a service defined in the test folder
(``tests/standins/echo.py`` and its ``echo.yaml``), found through ``$OSCFLOW_SERVICES``, is
routed by the platform, run from the command line and recorded, with no edit anywhere else."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from oscflow.cli import main
from oscflow.config import load

STANDINS = Path(__file__).resolve().parent / "standins"


@pytest.fixture
def echo(
    registered_surrogate: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The session's clone with the stand-in's config added, and the stand-in discoverable."""
    conf = tmp_path / "conf"
    shutil.copytree(Path(registered_surrogate["root"]) / "conf", conf)
    shutil.copy(STANDINS / "echo.yaml", conf / "echo.yaml")
    monkeypatch.setenv("OSCFLOW_CONFIG_DIR", str(conf))
    monkeypatch.setenv("OSCFLOW_SERVICES", "standins.echo")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registered_surrogate["tracking_uri"])
    return {**registered_surrogate, "conf": conf, "state": tmp_path / "state"}


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_a_service_from_the_test_folder_is_a_command(echo: dict[str, Any]) -> None:
    code, out, _ = _cli("--help")
    assert code == 0
    assert "the stand-in service of the contract test" in out
    code, out, err = _cli("echo", "--json", f"paths.root_dir={echo['root']}", "values=[1,2,3.5]")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["total"] == 6.5
    run = MlflowClient(echo["tracking_uri"]).get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["oscflow.service"] == "standins.echo"
    assert run.data.metrics["total"] == 6.5
    assert run.data.params["values"] == "[1, 2, 3.5]"  # the resolved config as params

    code, out, _ = _cli("echo", f"paths.root_dir={echo['root']}", "record=false")
    assert (code, out.strip()) == (0, "total 3")  # the service's own human format


def test_a_failing_service_run_ends_failed_with_the_reason(echo: dict[str, Any]) -> None:
    code, _, err = _cli("echo", f"paths.root_dir={echo['root']}", "fail=true")
    assert code != 0
    assert "asked to fail" in err
    client = MlflowClient(echo["tracking_uri"])
    exp = client.get_experiment_by_name("standin-echo")
    failed = client.search_runs([exp.experiment_id], "attributes.status = 'FAILED'")
    assert failed
    assert "asked to fail" in failed[0].data.tags["oscflow.failure_reason"]


def test_the_platform_routes_and_runs_it_on_its_alias(echo: dict[str, Any]) -> None:
    from oscflow.events import jobs
    from oscflow.events.ledger import Ledger
    from oscflow.events.reconciler import expected_jobs
    from oscflow.events.routing import JobSpec, effective

    name, version = echo["name"], echo["version"]
    platform = load(
        "platform",
        [
            f"paths.root_dir={echo['root']}",
            "data=ttrain",
            f"state_dir={echo['state']}",
            f"registry.name={name}",
        ],
    )
    assert effective(platform.routing)["on_alias"]["echo"] == ["standins.echo"]
    client = MlflowClient(echo["tracking_uri"])
    client.set_registered_model_alias(name, "echo", version)
    spec = JobSpec("standins.echo", name, version, "test")
    assert spec in [
        JobSpec(s.service, s.model, s.version, "test") for s in expected_jobs(client, platform)
    ]
    job = jobs.execute(spec, platform, Ledger(str(platform.ledger_url)), "test-worker", True)
    assert job["state"] == "finished"
    run = client.get_run(job["run_id"])
    assert run.data.tags["oscflow.model.name"] == name
    assert run.data.tags["oscflow.model.version"] == version
    assert run.data.tags["oscflow.job_key"]
    assert run.data.params["model_uri"] == f"models:/{name}/{version}"
    # done means done: the same job again is not run twice
    again = jobs.execute(spec, platform, Ledger(str(platform.ledger_url)), "test-worker", True)
    assert again["run_id"] == job["run_id"]

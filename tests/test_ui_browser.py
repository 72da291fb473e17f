"""The MLflow UI as a physicist opens it: a real ``mlflow server`` (SQLite store in a temporary
directory, a free port) and Debian's Chromium driven by Playwright.

Three architectures' training runs (the names, tags, metrics and artifacts ``oscflow train``
records) are written into the store while the server starts; ``oscflow compare`` runs against
the server. Then the link oscflow prints for ``juno-surrogate`` must open on its training runs
(the runs table with the three names, not the GenAI overview, which MLflow 3.17 shows for a
bare experiment link), and the comparison run's report image must load in its artifact view.

Chromium missing is a failure, not a skip: ``make install`` installs it (the ``chromium``
stamp target) and the ``dev`` extra brings Playwright.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from architecture_runs import NAMES, RUNS, training_run
from helpers import mlflow_store
from oscflow.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]

CHROMIUM = os.environ.get("OSCFLOW_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARCHITECTURES = NAMES[:3]  # seed_mlp, resmlp, pca_mlp
GENAI_OVERVIEW = ("Token Usage", "Tool calls")  # what MLflow 3.17's GenAI overview shows
TIMEOUT_MS = 45_000
# As `oscflow up` starts it: no job runner for GenAI jobs (seven Huey consumers otherwise).
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The server (started first: it takes longest), the runs written meanwhile, then
    ``oscflow compare juno-surrogate --json`` against the server: its result."""
    from mlflow.tracking import MlflowClient

    from oscflow.tracking.runs import ensure_experiment

    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: the browser test needs Debian's chromium "
            "(make install runs apt-get install -y chromium), or OSCFLOW_CHROMIUM=<path>"
        )
    tmp = tmp_path_factory.mktemp("ui")
    uri = mlflow_store(tmp)  # migrated already: the server starts without migrations
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp / "server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            uri,
            "--artifacts-destination",
            str(tmp / "served"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its uvicorn child goes with it at the end
        env={**os.environ, **SERVER_ENV},
    )
    try:
        client = MlflowClient(uri)
        exp = ensure_experiment(client, "juno-surrogate", str(tmp / "artifacts"))
        for name in ARCHITECTURES:
            training_run(client, exp, name, RUNS[name], tmp)
        deadline = time.time() + 120
        while not _healthy(url):
            assert server.poll() is None, (tmp / "server.log").read_text()[-3000:]
            assert time.time() < deadline, "mlflow server did not start in 120 s"
            time.sleep(0.2)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(
                [
                    "compare",
                    "juno-surrogate",
                    "--json",
                    f"logger.tracking_uri={url}",
                    f"logger.artifact_location={tmp}/artifacts",
                    f"paths.root_dir={tmp}",
                ]
            )
        assert code == 0, err.getvalue()
        yield {"url": url, "experiment_id": exp, "result": json.loads(out.getvalue())}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield chromium
        chromium.close()


def test_printed_link_opens_the_training_runs_and_the_report_is_reachable(
    ui: dict[str, Any], browser: Any
) -> None:
    from playwright.sync_api import expect

    result = ui["result"]
    link = result["ui"]
    assert link == f"{ui['url']}/#/experiments/{ui['experiment_id']}?workflowType=machine_learning"
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(link)
    # the runs table lists the three architectures' runs by name
    for name in ARCHITECTURES:
        expect(page.get_by_role("link", name=name, exact=True)).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text("3 matching runs")).to_be_visible(timeout=TIMEOUT_MS)
    for text in GENAI_OVERVIEW:
        expect(page.get_by_text(text, exact=True)).to_have_count(0)

    # the comparison run's report image, in the run's artifact view
    report = result["comparison_run"]["report_ui"]
    assert report.endswith("/artifacts/comparison_report.png?workflowType=machine_learning")
    page.goto(report)
    image = page.get_by_role("img", name="comparison_report.png", exact=True)
    expect(image).to_be_visible(timeout=TIMEOUT_MS)
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )
    assert image.evaluate("img => img.naturalWidth") == 1300  # the report figure: 13 in × 100 dpi
    page.close()

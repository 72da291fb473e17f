"""Screenshots of the MLflow UI and the comparison report for the README (``make screenshots``).

Real runs, small: a tiny JUNO dataset (60 000 MC pairs, 2 400 training spectra, the default
400-bin prompt spectrum) in a temporary directory, three architectures trained on it by
``oscflow train`` (seed 001's MLP with SiLU, a residual MLP, a PCA-head MLP; 60 epochs each),
a real ``mlflow server`` on that store, ``oscflow compare juno-surrogate`` against it, then
Debian's Chromium (Playwright) on the links oscflow printed. Writes ``docs/images/``:

- ``ui_runs.png``: the link ``oscflow compare`` prints for juno-surrogate (its training runs);
- ``ui_charts.png``: the chart view, the summary metrics as bars per run (logged at step 0);
- ``ui_report.png``: the comparison run's artifact view with its report;
- ``comparison_report.png``: the report's figure as ``oscflow compare`` wrote it.

About 2 minutes on 2 cores; nothing outside the temporary directory and docs/images changes.

    .venv/bin/python docs/screenshots.py [--keep DIR] [--epochs 40]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"
CHROMIUM = os.environ.get("OSCFLOW_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
DATA = {
    "name": "screens",
    "simulate": {"n_pairs": 60000, "seed": 31, "chunk": 30000},
    "spectra": {
        "method": "matrix",
        "energy": "prompt",
        "sampler": "sobol",
        "seed": 32,
        "inputs": ["sin2_th12", "sin2_th13", "dm2_21", "dm2_32"],
        "splits": {"train": 2400, "val": 200, "test": 200},
        "chunk": 256,
        "dtype": "float32",
    },
    "loader": {"batch_size": 64, "eval_batch_size": 1024, "num_workers": 0},
}
CHARTS = "p99_rel_dev_peak1|fit_bias_max_sigma$|latency"  # the chart view's search (a regex)
ARCHITECTURES = (
    ["model=mlp_silu", "model.hidden=[128,128]"],
    ["model=resmlp", "model.width=96", "model.depth=2"],
    ["model=pca_mlp", "model.hidden=[64,64]", "model.components=16"],
)


def oscflow(*args: str) -> dict[str, Any]:
    """One ``oscflow`` command in this process (``--json``): its result."""
    from oscflow.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*args, "--json"])
    if code != 0:
        raise SystemExit(f"oscflow {' '.join(args)} failed ({code}):\n{err.getvalue()[-3000:]}")
    return dict(json.loads(out.getvalue().strip().splitlines()[-1]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mlflow_server(store: str, directory: Path) -> Iterator[str]:
    """A real ``mlflow server`` on ``store`` at a free loopback port; its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (directory / "server.log").open("w")
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store]
    cmd += ["--artifacts-destination", str(directory / "served"), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # as oscflow up
    server = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    try:
        deadline = time.time() + 120
        while True:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{url}/health", timeout=1) as resp,
            ):
                if resp.status == 200:
                    break
            if server.poll() is not None or time.time() > deadline:
                raise SystemExit(f"mlflow server did not start; see {directory / 'server.log'}")
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def train_runs(work: Path, store: str, epochs: int) -> None:
    """The tiny dataset and the three trainings (config dir: a copy of conf/ with it)."""
    conf = work / "conf"
    shutil.copytree(REPO / "conf", conf)
    (conf / "data" / "screens.yaml").write_text(yaml.safe_dump(DATA))
    os.environ["OSCFLOW_CONFIG_DIR"] = str(conf)
    common = [f"paths.root_dir={work}", "data=screens"]
    oscflow("simulate", *common)
    oscflow("spectra", *common)
    for arch in ARCHITECTURES:
        t0 = time.time()
        result = oscflow(
            "train",
            *common,
            *arch,
            f"logger.tracking_uri={store}",
            f"logger.artifact_location={work}/artifacts",
            f"paths.output_dir={work}/out/{arch[0].split('=')[1]}",
            f"trainer.max_epochs={epochs}",
            "callbacks.progress_bar=false",
            "logger.register=false",
        )
        print(f"  trained {result['run_id'][:8]} {arch} in {time.time() - t0:.0f} s")


def screenshots(compared: dict[str, Any], out: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1360, "height": 820})
        page.goto(compared["ui"])
        for row in compared["rows"]:
            link = page.get_by_role("link", name=row["run_name"], exact=True)
            expect(link).to_be_visible(timeout=60_000)
        _close_assistant(page)
        page.screenshot(path=str(out / "ui_runs.png"))
        # the chart view: the summary metrics as one bar per run
        page.locator("label:has(input[name='runs-view-mode'][value='CHART'])").click()
        expect(page.get_by_text("Model metrics")).to_be_visible(timeout=60_000)
        page.get_by_placeholder("Search metric charts").fill(CHARTS)
        expect(page.get_by_text("latency_single_s", exact=True)).to_be_visible(timeout=30_000)
        page.wait_for_timeout(2000)  # the bars draw after the data arrive
        page.screenshot(path=str(out / "ui_charts.png"))
        page.goto(compared["comparison_run"]["report_ui"])
        image = page.get_by_role("img", name="comparison_report.png", exact=True)
        expect(image).to_be_visible(timeout=60_000)
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
        )
        page.screenshot(path=str(out / "ui_report.png"))
        browser.close()


def _close_assistant(page: Any) -> None:
    """Close MLflow 3.17's assistant side panel (it opens on a first visit, over a third of
    the page; the browser remembers it closed)."""
    panel = page.get_by_text("MLflow Assistant").first
    with contextlib.suppress(Exception):
        panel.wait_for(timeout=8000)
        page.wait_for_timeout(500)
        page.get_by_role("button", name="Close").first.click(timeout=2000)
        page.wait_for_timeout(300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--keep", type=Path, help="work here (kept; its runs reused) instead of a temp dir"
    )
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    if not Path(CHROMIUM).is_file():
        raise SystemExit(f"no Chromium at {CHROMIUM}: make install (apt-get install chromium)")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    with contextlib.ExitStack() as stack:
        if args.keep:
            work = args.keep.resolve()
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="oscflow-shots-")))
        store = f"sqlite:///{work}/mlflow.db"
        t0 = time.time()
        if (work / "mlflow.db").exists():  # --keep DIR of an earlier call: its runs
            os.environ["OSCFLOW_CONFIG_DIR"] = str(work / "conf")
            print(f"the runs already in {work}")
        else:
            train_runs(work, store, args.epochs)
            print(f"dataset and trainings: {time.time() - t0:.0f} s")
        url = stack.enter_context(mlflow_server(store, work))
        figures = work / "figures"
        compared = oscflow(
            "compare",
            "juno-surrogate",
            f"paths.root_dir={work}",
            f"logger.tracking_uri={url}",
            f"logger.artifact_location={work}/artifacts",
            f"output_dir={figures}",
        )
        IMAGES.mkdir(parents=True, exist_ok=True)
        screenshots(compared, IMAGES)
        shutil.copyfile(figures / "comparison_report.png", IMAGES / "comparison_report.png")
        print(f"written to {IMAGES} in {time.time() - t0:.0f} s:")
        for f in sorted(IMAGES.glob("*.png")):
            print(f"  {f.name} {f.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()

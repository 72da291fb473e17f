"""The sterile-neutrino search (issue 21, parts 5–6): the 2-D FC statistics against the 1-D
FC construction and a bounded optimiser, coverage, the service's bad inputs (nothing written),
its routing, a small exact run, and (slow) the JSNS² chain: DVC stage → train → surrogate
search recorded in MLflow with the exact-model timing."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy.optimize import minimize_scalar

from oscflow.cli import main
from oscflow.stats import amplitude_fc as afc
from oscflow.stats import feldman_cousins as fc1

SMALL = [
    "sterile.toys=60",
    "sterile.pseudo_experiments=60",
    "sterile.grid.sin2_2th.n=6",
    "sterile.grid.dm2.n=3",
    "sterile.coverage.toys=60",
    "sterile.coverage.points=[[0.01,1.2]]",
    "plots=false",
]


def _toys(templates: np.ndarray, background: np.ndarray) -> afc.ToyMeans:
    def means(j: int, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        del rng
        return np.repeat(templates[j][None], n, 0), np.repeat(background[None], n, 0)

    return means


def test_counting_construction_reproduces_feldman_cousins_1998() -> None:
    """One bin, one grid column: the construction is FC's Poisson-with-background interval
    (b = 2.3, the 2022 data's background); upper limits agree within 3 grid steps (0.15): the
    critical values are toy quantiles of a discrete distribution, and where FC's cumulative
    probability sits within toy noise (~0.002) of 90 % an n flips in or out."""
    s, b = np.array([[20.0]]), np.array([2.3])
    amps = np.linspace(0.0, 0.6, 241)  # μ_s = 20a in steps of 0.05
    c = afc.construct(amps, s, b, _toys(s, b), 20000, 0.9, np.random.default_rng(3))
    for n in (1, 2, 4, 6):
        t = afc.statistic_grid(np.array([[float(n)]]), amps, s, b)
        ours = 20 * afc.upper_limits(t, c)[0, 0]
        ref = fc1.interval(n, 2.3, 0.9, monotone=False)[1]
        assert ours == pytest.approx(ref, abs=0.15), (n, ours, ref)


def test_best_amplitude_is_the_bounded_maximum() -> None:
    rng = np.random.default_rng(5)
    sig = rng.uniform(0.5, 30, (40, 12))
    bkg = rng.uniform(0.1, 3, 12)
    counts = rng.poisson(rng.uniform(0, 0.3, (40, 1)) * sig + bkg).astype(float)
    ours = afc.best_amplitude(counts, sig, bkg)
    for k in range(40):
        ref = minimize_scalar(
            lambda a, k=k: -afc.loglike(counts[k], a * sig[k] + bkg),
            bounds=(0.0, 1.0),
            method="bounded",
            options={"xatol": 1e-10},
        ).x
        assert ours[k] == pytest.approx(ref, abs=1e-6)


def test_coverage_of_a_binned_construction() -> None:
    """Three bins, three Δm² columns with different shapes: the fraction of fresh toys whose
    region contains the truth is ≥ 90 % within 2 binomial σ at each tested point."""
    templates = np.array([[30.0, 10.0, 2.0], [5.0, 20.0, 15.0], [10.0, 10.0, 10.0]])
    bkg = np.array([1.0, 0.7, 0.5])
    amps = np.concatenate([[0.0], np.geomspace(1e-3, 1.0, 20)])
    means = _toys(templates, bkg)
    c = afc.construct(amps, templates, bkg, means, 500, 0.9, np.random.default_rng(7))
    for i, j in ((5, 0), (12, 1), (18, 2)):
        res = afc.coverage(
            float(amps[i]),
            j,
            float(c.critical[i, j]),
            templates,
            bkg,
            means,
            800,
            np.random.default_rng(100 + i),
        )
        assert res["fraction"] >= 0.9 - 2 * res["error"], (i, j, res)


def test_amplitude_grid_outside_unit_interval_is_refused() -> None:
    s, b = np.array([[1.0]]), np.array([1.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        afc.construct(np.array([0.0, 1.5]), s, b, _toys(s, b), 10, 0.9, np.random.default_rng())


def _cli(args: list[str]) -> tuple[int, str]:
    """Exit status and output: stdout (whose last line is the JSON with --json), then stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, err.getvalue() + out.getvalue()


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("experiment.detectors.near.distance_m=-24", "experiment.detectors.near.distance_m"),
        ("experiment.oscillation.model=sterile_3p2", "experiment.oscillation.model"),
        ("sterile.grid.sin2_2th.max=1.5", "sterile.grid.sin2_2th.max"),
        ("sterile.grid.sin2_2th.min=-0.1", "sterile.grid.sin2_2th.min"),
    ],
)
def test_bad_input_is_a_config_error_and_writes_nothing(
    tmp_path: Path, override: str, key: str
) -> None:
    db = tmp_path / "mlflow.db"
    code, text = _cli(
        ["sterile", "predictor=exact", f"logger.tracking_uri=sqlite:///{db}", override, *SMALL]
    )
    assert code == 1, text
    assert key in text
    assert not db.exists()


def test_routing_serves_appearance_experiments_only() -> None:
    from oscflow import services
    from oscflow.services import sterile

    assert "sterile" in services.discover()
    assert "sterile" in services.commands()
    assert sterile.serves({"oscflow.experiment": "jsns2"})
    assert not sterile.serves({"oscflow.experiment": "juno"})
    assert not sterile.serves({"oscflow.experiment": "dayabay"})
    assert not sterile.serves({})
    assert "champion" in sterile.ROUTES.on_alias


def test_exact_search_small_grid() -> None:
    """The 2022 counting analysis and JSNS²-II with the exact model on a small grid: the
    observed limit (2 events, 2.3 expected) lies in the expected band; JSNS²-II's median is
    below the 2022 one; LSND's band brackets its best fit."""
    code, text = _cli(
        [
            "sterile",
            "--json",
            "predictor=exact",
            "record=false",
            "sterile.analyses.jsns2_2022.escale=false",
            *SMALL,
        ]
    )
    assert code == 0, text
    r = json.loads(text.strip().splitlines()[-1])
    a22, a2 = r["analyses"]["jsns2_2022"], r["analyses"]["jsns2ii_5yr"]
    assert a22["predictor_by_detector"] == {"near": "exact"}
    assert a22["background_total"] == pytest.approx(2.28, abs=0.01)
    exp = a22["expected"]
    ul = a22["observed"]["upper_limit"]
    for lo, x, hi in zip(exp["minus_1sigma"], ul, exp["plus_1sigma"], strict=True):
        assert lo - 1e-9 <= x <= hi + 1e-9
    assert a2["expected_median_averaging"] < a22["expected_median_averaging"]
    lsnd = r["lsnd"]
    k = int(np.argmin(np.abs(np.log(lsnd["dm2"]) - np.log(1.2))))
    assert lsnd["sin2_2th_low"][k] < 0.003 < lsnd["sin2_2th_high"][k]
    assert all(c["covers"] for c in a22["coverage"])


# ----------------------------------------------------------------------------- the chain

JSNS2_TINY: dict[str, Any] = {
    "name": "jtiny",
    "spectra": {
        "method": "matrix",
        "energy": "prompt",
        "sampler": "sobol",
        "seed": 5,
        "inputs": ["dm2_41", "escale"],
        "ranges": {"dm2_41": [0.1, 100.0]},
        "scales": {"dm2_41": "log"},
        "fixed": {"sin2_2th_mue": 1.0},
        "splits": {"train": 256, "val": 32, "test": 32},
        "chunk": 128,
        "dtype": "float32",
    },
    "loader": {"batch_size": 32, "eval_batch_size": 256, "num_workers": 0},
}


@pytest.mark.slow
def test_jsns2_chain_dvc_train_sterile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """datasets@jsns2 (log Δm² sampling, spectrum per unit sin²2θ) → oscflow train
    experiment=jsns2 → jsns2-spectrum → oscflow sterile with the surrogate, recorded (JSON +
    PNG) with the exact-model timing; a binning the surrogate was not trained for is refused
    before anything is recorded."""
    from mlflow.tracking import MlflowClient

    from helpers import TINY_DATA, make_clone, mlflow_store
    from helpers import run as run_cmd

    root = make_clone(tmp_path / "repo", "ttrain", TINY_DATA, jsns2_data="jtiny")
    (root / "conf/data/jtiny.yaml").write_text(yaml.safe_dump(JSNS2_TINY))
    log = run_cmd(root, "dvc", "repro", "datasets@jsns2")
    assert "Running stage 'datasets@jsns2'" in log
    meta = json.loads((root / "data/jsns2/jtiny/spectra/meta.json").read_text())
    assert meta["fixed"] == {"sin2_2th_mue": 1.0}
    assert meta["scales"] == {"dm2_41": "log", "escale": "linear"}
    train = np.load(root / "data/jsns2/jtiny/spectra/train_params.npy")[:, 0]
    # log sampling: about a third of the points per decade
    per_decade = np.histogram(np.log10(train), bins=[-1, 0, 1, 2])[0] / len(train)
    np.testing.assert_allclose(per_decade, 1 / 3, atol=0.03)

    store = tmp_path / "mlflow"
    uri = mlflow_store(store)
    monkeypatch.setenv("OSCFLOW_CONFIG_DIR", str(root / "conf"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, text = _cli(
        [
            "train",
            "--json",
            "experiment=jsns2",
            "data=jtiny",
            f"paths.root_dir={root}",
            f"logger.tracking_uri={uri}",
            f"logger.artifact_location={store}/artifacts",
            f"paths.output_dir={store}/out",
            "model=phase_kernel",
            "model.hidden=[16]",
            "trainer.max_epochs=3",
            "trainer.log_every_n_steps=1",
            "callbacks.progress_bar=false",
        ]
    )
    assert code == 0, text
    trained = json.loads(text.strip().splitlines()[-1])
    assert trained["registered_model"] == "jsns2-spectrum"
    model_uri = f"models:/jsns2-spectrum/{trained['version']}"
    common = [f"paths.root_dir={root}", f"logger.tracking_uri={uri}", f"model_uri={model_uri}"]
    client = MlflowClient(uri)
    n_runs = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))

    code, text = _cli(["sterile", *common, "binning.nbins=10", *SMALL])
    assert code == 1, text
    assert "binning" in text
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == n_runs  # nothing recorded

    code, text = _cli(
        ["sterile", "--json", *common, "plots=true", *[o for o in SMALL if o != "plots=false"]]
    )
    assert code == 0, text
    r = json.loads(text.strip().splitlines()[-1])
    a22 = r["analyses"]["jsns2_2022"]
    assert a22["predictor_by_detector"] == {"near": "surrogate"}
    assert r["analyses"]["jsns2ii_5yr"]["predictor_by_detector"] == {
        "near": "surrogate",
        "far": "exact",
    }
    timing = a22["timing"]
    assert timing["construction_exact_s"] > 0
    assert timing["construction_surrogate_s"] > 0
    run = client.get_run(r["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["oscflow.service"] == "sterile"
    assert run.data.tags["oscflow.model.name"] == "jsns2-spectrum"
    names = {a.path for a in client.list_artifacts(r["mlflow_run_id"])}
    assert {"sterile_result.json", "sterile_exclusion.png"} <= names

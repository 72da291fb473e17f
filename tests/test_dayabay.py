"""The Daya Bay plug-in on the real data release: the official model as truth, our χ² against
the official one, the parallel resumable dataset stage, and the chain dataset → training →
registry → validation → fit of the real data with the surrogate, refereed by the official model.

Small sample (a few hundred official-model evaluations, a tiny network); the full-size figures
come from `benchmarks/bench_dayabay.py` and the commands in the README.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import TINY_DATA, make_clone, mlflow_store
from helpers import run as run_cmd
from oscflow.cli import main
from oscflow.config import load, to_container
from oscflow.errors import ConfigError
from oscflow.experiments.dayabay import nuisances as nz

DYB_TINY: dict[str, Any] = {
    "name": "dyb_tiny",
    "spectra": {
        "method": "official",
        "energy": "concatenated",
        "sampler": "sobol",
        "seed": 7,
        "inputs": ["sin2_2th13", "dm2_32"],
        "splits": {"train": 256, "val": 32, "test": 32},
        "chunk": 16,
        "workers": 1,  # the process pool: test_dataset_stage_resumes_after_an_interrupt
        "dtype": "float64",
    },
    "loader": {"batch_size": 32, "eval_batch_size": 1024, "num_workers": 0},
}
# Builds the official model (~30 s) and trains: one xdist worker builds it once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dayabay")]
POINTS = [{}, {"sin2_2th13": 0.080, "dm2_32": 2.40e-3}, {"sin2_2th13": 0.090, "dm2_32": 2.55e-3}]


@pytest.fixture(scope="module")
def experiment() -> Any:
    """The plug-in computing its inputs from the official model (no stored file)."""
    from oscflow.experiments import load_experiment

    return load_experiment(
        load("fit", ["experiment=dayabay", "experiment.official_inputs=null"]).experiment
    )


@pytest.fixture(scope="module")
def inputs(experiment: Any) -> Any:
    """What fits need of the official model (store.OfficialInputs), computed from it."""
    return experiment.inputs()


def test_missing_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from oscflow.experiments.dayabay import official

    monkeypatch.setitem(sys.modules, "dayabay_model", None)
    with pytest.raises(ConfigError, match=r"pip install 'oscflow\[dayabay\]'"):
        official.import_model_class()


def test_our_statistic_is_the_official_chi2(experiment: Any) -> None:
    """stats.covariance's CNP + covariance χ² equals statistic.full.covmat.chi2cnp of the
    official model, on the real data, at the nominal and two other points; the fits' fast
    evaluation (stats.woodbury, the plug-in's statistic) equals it within its stated bound."""
    from oscflow.stats.covariance import CNPCovariance

    official = experiment.official()
    fast = experiment.statistics()["cnp_covmat"]
    data, source = experiment.observed_counts()
    assert source.startswith("dayabay-data-official")
    assert data.shape == (546,)
    assert data.sum() > 5.0e6  # 5.55 M IBD candidates (PRL 2023)
    plain = CNPCovariance(official.systematic_covariance())
    predictor = experiment.predictor(np.arange(547.0), "concatenated", "official")
    for point in POINTS:
        # the node first, before any spectrum: the order in which dag-modelling's lazy taint
        # would otherwise freeze the node's CNP variance at its first point (OfficialModel.statistic)
        theirs = official.statistic("full.covmat.chi2cnp", point)
        expected = predictor.predict({k: np.array([v]) for k, v in point.items()})["total"][0]
        ours = float(plain(data, expected).sum())
        assert ours == pytest.approx(theirs, rel=1e-10), point
        quick = float(fast(data, expected).sum())
        assert 0.0 < fast.last_bound <= fast.rtol
        assert fast.last_rank < 546
        # the stated bound plus the Cholesky's own rounding (κ(V)·2⁻⁵² ≈ 1e-10 here)
        assert abs(quick - theirs) <= (fast.last_bound + 1e-10) * theirs, point


# The collaboration's stored fit of the release with the published configuration
# (dagflow-team/dayabay-analysis, results/fits/fit-real-…-free_spectrum_shape-constrained_
# covmat_all.json, dayabay-model 1.4.0): its best fit (sin²2θ13, Δm²32, the 19 spectrum scales
# F_0…F_18) and χ².
STORED_FIT = {
    "sin2_2th13": 0.08542382264817823,
    "dm2_32": 0.002470832129868821,
    **{
        f"spec_scale_{i:02d}": f
        for i, f in enumerate(
            [
                -0.017313049033734845,
                -0.08610380146413808,
                -0.08610917032710642,
                -0.08331823101149002,
                -0.10829005247132777,
                -0.06330752765504381,
                -0.10254175693417893,
                -0.05674113532846812,
                -0.06455244431667569,
                -0.06678785546636602,
                -0.05483791377588346,
                0.011417258710802554,
                0.03325550784221677,
                0.07240929576142553,
                -0.016697581858785043,
                -0.0042417645815193625,
                -0.06536635018126787,
                -0.016366284044210675,
                -0.31598916649756736,
            ]
        )
    },
}
STORED_CHI2 = 557.9767178261209


def test_frozen_variance_statistic_is_the_collaborations_stored_fit(experiment: Any) -> None:
    """cnp_covmat_nominal (the CNP variance held at the nominal prediction) at the stored
    fit's best point gives its χ² (to 1e-5: the model versions 1.4.0 and 1.7.1 differ in
    rounding only, per their diff); the official statistic there (the variance of the current
    prediction) is 16 units higher, which is why the two fits' minima and errors differ."""
    official = experiment.official()
    data, _ = experiment.observed_counts()
    spectrum = official.spectrum(STORED_FIT)
    official.reset()
    stats = experiment.statistics()
    frozen = float(stats["cnp_covmat_nominal"](data, spectrum).sum())
    assert frozen == pytest.approx(STORED_CHI2, rel=1e-5)
    assert float(stats["cnp_covmat"](data, spectrum).sum()) > STORED_CHI2 + 10.0


def test_pull_statistic_is_the_official_node(experiment: Any, inputs: Any) -> None:
    """stats.pull's CNP + pull-term χ² with the stored constraints equals the official
    statistic.full.pull.chi2cnp (stat.chi2cnp + nuisance.all) at random points of all 22
    free parameters and all 1057 constrained ones (±1σ, correlations through each group's
    Cholesky factor), to 1e-10 relative."""
    from oscflow.experiments.dayabay.official import SPECTRUM
    from oscflow.stats.pull import cnp_pull_chi2

    official = experiment.official()
    gc = inputs.constraints
    assert gc.size > 1000
    assert len(official.nominal_free) == 22
    rng = np.random.default_rng(20230401)
    for _ in range(3):
        free = {
            k: v + 0.01 * rng.standard_normal() * (abs(v) if v else 1.0)
            for k, v in official.nominal_free.items()
        }
        z = rng.standard_normal(gc.size)
        x = gc.central.copy()
        for g, f in enumerate(gc.factors):
            a, b = gc.starts[g], gc.starts[g + 1]
            x[a:b] += f * z[a:b] if f.ndim == 1 else f @ z[a:b]
        theirs = official.statistic(
            "full.pull.chi2cnp", {}, free=free, constrained=dict(zip(gc.names, x, strict=True))
        )
        spectrum = np.array(official.model.storage[SPECTRUM].data)
        ours = cnp_pull_chi2(inputs.data, spectrum, gc, x)
        assert ours == pytest.approx(theirs, rel=1e-10)
        assert gc.chi2(x) > 500  # the pulls count: ~1057 unit-normal squares
    official.reset()


def test_stored_inputs_serve_the_fit_without_the_official_model(
    tmp_path: Path, inputs: Any
) -> None:
    """Saved and loaded (DVC stage dayabay_official), the inputs give the plug-in's data and
    statistic without it ever building the official model; bad files are refused."""
    from oscflow.experiments import load_experiment
    from oscflow.experiments.dayabay.store import OfficialInputs

    path = tmp_path / "inputs.npz"
    md5 = inputs.save(path)
    cfg = load("fit", ["experiment=dayabay", f"experiment.official_inputs={path}"])
    fresh = load_experiment(cfg.experiment)
    data, source = fresh.observed_counts()
    np.testing.assert_array_equal(data, inputs.data)
    assert md5[:12] in source
    stat = fresh.statistics()["cnp_covmat"]
    np.testing.assert_array_equal(stat.syst, inputs.syst_covariance)
    assert stat(data, inputs.nominal).sum() > 0
    assert fresh._official is None  # never built
    loaded = OfficialInputs.load(path)
    assert loaded.constraints.names == inputs.constraints.names
    assert loaded.segments == inputs.segments
    assert len(loaded.segments) == 21

    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{**arrays, "data": arrays["data"][:-1]})
    with pytest.raises(
        ConfigError, match=r"data has shape \(545,\), not \(546,\) = 21 blocks × 26"
    ):
        OfficialInputs.load(bad)
    np.savez(bad, **{**arrays, "segments": arrays["segments"][:-1]})
    with pytest.raises(ConfigError, match="20 blocks × 26 bins"):
        OfficialInputs.load(bad)
    bad.write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match=r"not an official-model inputs file.*dvc repro"):
        OfficialInputs.load(bad)
    values = arrays["provenance_values"].copy()
    values[list(arrays["provenance_keys"]).index("dayabay-model")] = "0.0"
    np.savez(bad, **{**arrays, "provenance_values": values})
    stale = OfficialInputs.load(bad)
    with pytest.raises(ConfigError, match=r"computed with dayabay-model 0\.0 .*dvc repro"):
        stale.check_provenance({}, str(bad))


def test_bad_config_is_refused(experiment: Any) -> None:
    with pytest.raises(ConfigError, match="fixed by the data release"):
        experiment.exposure(100.0, 1.0)
    with pytest.raises(ConfigError, match="546 bins"):
        experiment.predictor(np.arange(401.0), "concatenated", "official").official  # noqa: B018
    with pytest.raises(ConfigError, match="normal ordering only"):
        experiment.with_ordering("inverted")
    from oscflow.experiments.dayabay.official import OfficialModel

    with pytest.raises(ConfigError, match=r"no free parameters \['survival_probability.Nope'\]"):
        OfficialModel({"sin2_2th13": "survival_probability.Nope"})
    official = experiment.official()
    with pytest.raises(ConfigError, match=r"no free parameters \['survival_probability.Nope'\]"):
        official.set_free({"survival_probability.Nope": 1.0})
    with pytest.raises(ConfigError, match="no constrained parameters"):
        official.statistic("full.pull.chi2cnp", {}, constrained={"detector.nope": 1.0})
    # the published configuration's nuisances: a path the model lacks, a wrong column layout
    from oscflow.experiments.dayabay.model import DayaBayExperiment

    cfg = to_container(load("fit", ["experiment=dayabay"]).experiment)
    cfg["nuisances"]["spec_scale_18"]["official"] = "neutrino_per_fission_factor.spec_scale_19"
    with pytest.raises(ConfigError, match=r"no free parameters \['neutrino_per_fission_factor"):
        DayaBayExperiment(cfg).official()
    columns = experiment.predictor(np.arange(547.0), "concatenated", "official_nuisances")
    with pytest.raises(ConfigError, match=r"546 numbers = 1 blocks of 546 bins, not 1 \+ 20"):
        columns.official  # noqa: B018


def test_dataset_stage_resumes_after_an_interrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupted spectra stage keeps its finished chunks; the rerun evaluates only the
    rest and gives the same arrays as an uninterrupted run, and a pool of two spawned worker
    processes gives the same arrays as this process (fast JUNO predictor)."""
    from oscflow.data import evaluate

    root = make_clone(tmp_path / "repo", "ttrain", TINY_DATA)
    run_cmd(root, "dvc", "repro", "simulate")
    args = [f"paths.root_dir={root}", "data=ttrain", "data.spectra.chunk=64"]
    calls = {"n": 0}
    task = evaluate._task

    def interrupted(*a: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return task(*a)

    monkeypatch.setenv("OSCFLOW_CONFIG_DIR", str(root / "conf"))
    monkeypatch.setattr(evaluate, "_task", interrupted)
    assert main(["spectra", *args]) == 130  # interrupted (the CLI's exit status for it)
    out = root / "data/juno/ttrain/spectra"
    assert not out.exists()  # nothing half-written where the dataset goes
    partial = out.with_name(".spectra.partial")
    assert json.loads((partial / "train.done.json").read_text()) == [0, 64, 128, 192]
    calls["n"] = -(10**6)
    main(["spectra", *args])
    resumed = calls["n"] + 10**6
    assert resumed == (512 - 256) // 64 + 1 + 1  # the rest of train, val and test
    assert not partial.exists()
    first = np.load(out / "train_spectra.npy")
    monkeypatch.setattr(evaluate, "_task", task)
    # another fingerprint: from scratch, in two worker processes
    main(["spectra", *args, "data.spectra.chunk=128", "+data.spectra.workers=2"])
    np.testing.assert_array_equal(np.load(out / "train_spectra.npy"), first)


def test_chain_on_real_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, experiment: Any, inputs: Any
) -> None:
    """dvc stage → train → register → validate → fit the real data with the surrogate (from
    the stored official-model inputs), with the official model as referee."""
    root = make_clone(tmp_path / "repo", "ttrain", TINY_DATA, dayabay_data="dyb_tiny")
    (root / "conf/data/dyb_tiny.yaml").write_text(json.dumps(DYB_TINY))
    log = run_cmd(root, "dvc", "repro", "datasets@dayabay")
    assert "Running stage 'datasets@dayabay'" in log
    meta = json.loads((root / "data/dayabay/dyb_tiny/spectra/meta.json").read_text())
    assert meta["experiment"] == "dayabay"
    assert meta["inputs"] == ["sin2_2th13", "dm2_32"]
    spectra = np.load(root / "data/dayabay/dyb_tiny/spectra/train_spectra.npy")
    assert spectra.shape == (256, 546)
    assert np.all(spectra > 0)

    store = tmp_path / "mlflow"
    uri = mlflow_store(store)
    common = [f"paths.root_dir={root}", f"logger.tracking_uri={uri}", "experiment=dayabay"]
    monkeypatch.setenv("OSCFLOW_CONFIG_DIR", str(root / "conf"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def cli(*args: str) -> dict[str, Any]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main([*args, "--json"]) == 0
        return json.loads(out.getvalue().strip().splitlines()[-1])

    trained = cli(
        "train",
        *common,
        "data=dyb_tiny",
        f"logger.artifact_location={store}/artifacts",
        f"paths.output_dir={store}/out",
        "model=pca_mlp",
        "model.hidden=[64,64]",
        "model.components=8",
        "optim=adamw",
        "trainer.max_epochs=60",
        "trainer.log_every_n_steps=1",
        "timing=false",
    )
    assert trained["registered_model"] == "dayabay-spectrum"
    model = f"models:/dayabay-spectrum/{trained['version']}"

    from mlflow.tracking import MlflowClient

    from oscflow.services import validate

    cfg = load("validate", [*common, "data=dyb_tiny", f"model_uri={model}", "n_points=20"])
    checked = validate.record(cfg, {})
    assert checked["mc_pairs"] is None
    assert checked["metrics"]["p99_rel_dev_all"] < 0.05
    tags = MlflowClient(uri).get_model_version("dayabay-spectrum", trained["version"]).tags
    assert tags["oscflow.experiment"] == "dayabay"
    assert tags["oscflow.dataset.name"] == "dyb_tiny"
    assert "oscflow.validation.max_rel_dev_peak1" in tags

    md5 = inputs.save(root / "data/dayabay/official/inputs.npz")  # as dayabay_official would
    fit = cli("fit", *common, f"model_uri={model}", "observation=real", "plots=false")
    assert fit["data"]["kind"] == "real"
    assert md5[:12] in fit["data"]["source"]  # the fit read them: no official model built
    assert fit["statistic"] == "cnp_covmat"
    assert fit["fit"]["valid"]
    assert fit["mlflow_run_id"]

    # The platform: gates, promotion, routing, and the promotion's fit job as a worker runs it.
    from oscflow.events import jobs
    from oscflow.events.ledger import Ledger
    from oscflow.events.reconciler import expected_jobs
    from oscflow.events.routing import JobSpec
    from oscflow.registry import promotion

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    version = str(trained["version"])
    platform = load(
        "platform",
        [
            f"paths.root_dir={root}",
            f"state_dir={store}/state",
            "registry.name=dayabay-spectrum",
            f"registry.version={version}",
        ],
    )
    promoted = promotion.promote(platform)
    assert promoted["promoted"], promoted
    assert not promoted["forced"]
    client = MlflowClient(uri)
    # no JUNO solar-antineutrino sensitivity on a Daya Bay model (experiment.services)
    assert {(s.service, s.version) for s in expected_jobs(client, platform)} == {
        ("validate", version),
        ("fit", version),
    }
    spec = JobSpec("fit", "dayabay-spectrum", version, "test")
    assert jobs.plan(spec, platform).cfg.observation.kind == "real"
    job = jobs.execute(spec, platform, Ledger(str(platform.ledger_url)), "test-worker", True)
    assert job["state"] == "finished"
    path = client.download_artifacts(job["run_id"], "fit_result.json", str(tmp_path))
    fit = json.loads(Path(path).read_text())
    assert fit["data"]["kind"] == "real"
    assert fit["fit"]["valid"]
    ref = fit["referee"]
    official = ref["official"]
    assert official["valid"]
    assert official["statistic_node"].endswith("full.covmat.chi2cnp")
    for name in ("sin2_2th13", "dm2_32"):
        # the tiny network is coarse: within 1σ here; the demo-size one is within 0.02σ
        assert abs(ref["parameters"][name]["shift_sigma"]) < 1.0
        # our χ² with the official predictor and the official node's own fit: same function
        assert ref["parameters"][name]["exact"] == pytest.approx(
            official["values"][name], abs=0.1 * official["errors"][name]
        )

    # The published configuration (fit/experiment=dayabay_published: the 19 reactor-spectrum
    # scales free too). A plain surrogate does not take them.
    from oscflow.services.fit.setup import setup

    published = [*common, "fit/experiment=dayabay_published", "observation=real", "plots=false"]
    with pytest.raises(ConfigError, match=r"does not take \['spec_scale_00', 'spec_scale_01'"):
        setup(load("fit", [*published, f"model_uri={model}"]))
    # A nuisance surrogate (the spectrum and its 20 derivative columns): its dataset here from
    # the tiny one, each column scaled bin by bin like N0 from the official model's columns at
    # the nominal point (the real stage, dayabay_nuisances, evaluates them at every point; the
    # benchmark and README measure that surrogate), so no official-model evaluation per point.
    nominal = nz.columns(experiment.official(), {}, tuple(experiment.nuisances.values()))
    relative = nominal / nominal[0]
    src = root / "data/dayabay/dyb_tiny/spectra"
    dst = root / "data/dayabay/dyb_tiny_nuisances/spectra"
    dst.mkdir(parents=True)
    for split in ("train", "val", "test"):
        n0 = np.load(src / f"{split}_spectra.npy")
        cols = (n0[:, None, :] * relative[None]).reshape(len(n0), -1)
        np.save(dst / f"{split}_spectra.npy", cols)
        np.save(dst / f"{split}_params.npy", np.load(src / f"{split}_params.npy"))
    np.save(dst / "backgrounds.npy", np.zeros((0, relative.size)))
    meta["dataset"] = "dyb_tiny_nuisances"
    meta["bin_edges"] = list(range(relative.size + 1))
    (dst / "meta.json").write_text(json.dumps(meta))
    (root / "conf/data/dyb_tiny_nuisances.yaml").write_text(
        json.dumps({**DYB_TINY, "name": "dyb_tiny_nuisances"})
    )
    nuisance_model = cli(
        "train",
        *common,
        "data=dyb_tiny_nuisances",
        "binning.emax=11466",
        "binning.nbins=11466",
        f"logger.artifact_location={store}/artifacts",
        f"paths.output_dir={store}/out_nuisances",
        "model=pca_mlp",
        "model.hidden=[64,64]",
        "model.components=8",
        "optim=adamw",
        "optim.lr=0.003",
        "trainer.max_epochs=30",
        "trainer.log_every_n_steps=1",
        "timing=false",
    )
    uri = f"models:/dayabay-spectrum/{nuisance_model['version']}"
    fit = cli("fit", *published, f"model_uri={uri}")
    assert fit["fit"]["valid"], fit["fit"]
    assert fit["predictor"]["nuisances"][:2] == ["global_norm", "spec_scale_00"]
    values = fit["best_fit"]
    assert len(values) == 21
    # the tiny network is coarse: near the publication (0.0851 ± 0.0024, 2.466e-3 ± 0.060e-3)
    assert abs(values["sin2_2th13"] - 0.0851) < 5 * 0.0024
    assert abs(values["dm2_32"] - 2.466e-3) < 5 * 0.060e-3
    assert abs(values["spec_scale_05"]) < 0.5
    # derivatives=auto: the fit had the exact gradient and Hessian (the combination's analytic
    # nuisance columns, the network's forward-mode Jacobian, the covariance χ²'s derivatives),
    # a few dozen calls; MINUIT's numerical derivatives find the same minimum and errors
    assert fit["fit"]["ngrad"] > 0
    assert fit["fit"]["nhessian"] > 0
    assert fit["fit"]["nfcn"] < 200
    from oscflow.services.fit.minimize import minimize

    fs = setup(load("fit", [*published, f"model_uri={uri}", "derivatives=numerical"]))
    numerical = minimize(fs.model, fs.observation.counts, "cnp_covmat", prescan=False)
    assert numerical.valid
    assert numerical.nfcn > 5 * fit["fit"]["nfcn"]
    for name, value in values.items():
        error = numerical.error(name)
        assert abs(value - numerical.value(name)) < 0.02 * error, name
        assert fit["errors"][name] == pytest.approx(error, rel=0.03), name

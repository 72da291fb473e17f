"""The fit service with exact predictors: Asimov recovery, errors against the Fisher
information, coverage of toy fits, data files and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import CHEAP_FIT as CHEAP
from oscflow.config import load
from oscflow.errors import ConfigError
from oscflow.services.fit import observation as obs
from oscflow.services.fit.minimize import FitNotConverged, minimize
from oscflow.services.fit.model import FitModel, FitParameter
from oscflow.services.fit.run import compute
from oscflow.services.fit.setup import setup
from oscflow.services.fit.toys import pull_summary

# Starting 1σ (PDG) away from the truth in the solar parameters.
OFF_START = ["start.sin2_th12=0.320", "start.dm2_21=7.71e-5"]


@pytest.fixture(scope="module")
def asimov_fit():
    cfg = load("fit", [*CHEAP, *OFF_START])
    fs = setup(cfg)
    result, fs, main = compute(cfg, fs)
    return cfg, fs, result, main


def test_asimov_fit_with_the_exact_predictor_recovers_the_truth(asimov_fit) -> None:
    _, fs, result, main = asimov_fit
    assert main.valid
    assert result["fit"]["statistic"]["value"] < 1e-3  # Asimov: the minimum is 0
    for name, truth in fs.truth.items():
        assert abs(result["best_fit"][name] - truth) < 0.02 * result["errors"][name], name
    # nuisances return to their nominal values
    for name in ("flux_norm", "bkg_li9_he8", "bkg_geoneutrinos"):
        assert abs(result["best_fit"][name] - 1.0) < 0.02 * result["errors"][name]
    # bins + priors (flux, 7 backgrounds, sin²θ13) − free parameters
    assert result["fit"]["statistic"]["ndf"] == 70 + 9 - 12
    corr = np.asarray(result["fit"]["correlation"]["matrix"])
    np.testing.assert_allclose(np.diag(corr), 1.0, atol=1e-9)
    np.testing.assert_allclose(corr, corr.T, atol=1e-12)


def test_true_inverted_ordering_uses_its_own_nominal_dm2_32() -> None:
    """PDG 2022 (PTEP 2022, 083C01): Δm²32 = +2.453e-3 (NO), −2.536e-3 eV² (IO). An IO
    experiment's nominal point is IO's, its Asimov fit recovers it, and the other ordering of a
    fit (Experiment.with_ordering) takes the other nominal value and σ."""
    from oscflow.experiments import load_experiment

    cfg = load("fit", [*CHEAP, "experiment.oscillation.ordering=inverted", "orderings=true"])
    assert cfg.params.dm2_32 == pytest.approx(2.536e-3)
    experiment = load_experiment(cfg.experiment)
    assert experiment.parameters["dm2_32"].sigma == pytest.approx(0.034e-3)
    normal = experiment.with_ordering("normal").parameters["dm2_32"]
    assert (normal.nominal, normal.sigma) == pytest.approx((2.453e-3, 0.033e-3))
    assert (
        experiment.parameters["sin2_th12"]
        == experiment.with_ordering("normal").parameters["sin2_th12"]
    )
    result, fs, _ = compute(cfg)
    assert fs.truth["dm2_32"] == pytest.approx(2.536e-3)
    assert abs(result["best_fit"]["dm2_32"] - 2.536e-3) < 0.02 * result["errors"]["dm2_32"]
    assert result["mass_ordering"]["delta_chi2_io_minus_no"] < 0  # the true ordering wins


def test_hesse_errors_equal_the_inverse_fisher_information(asimov_fit) -> None:
    # Poisson: F_ij = Σ_k ∂_i μ_k ∂_j μ_k / μ_k, plus 1/σ² for parameters with priors; the χ²
    # (−2 ln L) curvature is 2F/2 = F, so cov = F⁻¹. Derivatives by central differences.
    _, fs, result, main = asimov_fit
    model = fs.model
    free = [model.index[n] for n in main.free]
    x0 = main.values.copy()
    mu = model.expected(x0)
    grads = []
    for i in free:
        h = 1e-3 * model.parameters[i].step
        up, down = x0.copy(), x0.copy()
        up[i] += h
        down[i] -= h
        grads.append((model.expected(up) - model.expected(down)) / (2 * h))
    g = np.asarray(grads)
    fisher = (g / mu) @ g.T
    for j, i in enumerate(free):
        p = model.parameters[i]
        if p.prior is not None:
            fisher[j, j] += 1.0 / p.prior[1] ** 2
    expected_errors = np.sqrt(np.diag(np.linalg.inv(fisher)))
    for j, name in enumerate(main.free):
        assert result["errors"][name] == pytest.approx(expected_errors[j], rel=0.03), name


class VacuumSolar:
    """A cheap predictor: two-flavour solar oscillation of a fixed falling spectrum at 52.5 km."""

    kind = "exact"
    inputs = ("sin2_th12", "dm2_21")
    energy = "neutrino"
    edges = np.linspace(1.8, 8.8, 41)

    def ranges(self):
        return {"sin2_th12": (0.2, 0.4), "dm2_21": (6.0e-5, 9.0e-5)}

    def reactors(self, points):
        e = 0.5 * (self.edges[1:] + self.edges[:-1])
        s12 = np.asarray(points["sin2_th12"])[:, None]
        d21 = np.asarray(points["dm2_21"])[:, None]
        p = 1 - 4 * s12 * (1 - s12) * np.sin(1.267 * d21 * 52500.0 / e) ** 2
        return 3000.0 * np.exp(-((e - 3.5) ** 2) / 2.0) * p

    def info(self):
        return {"kind": "test"}


def test_toy_fits_cover_the_truth() -> None:
    model = FitModel(
        VacuumSolar(),
        [
            FitParameter("sin2_th12", 0.307, 0.013, (0.2, 0.4)),
            FitParameter("dm2_21", 7.53e-5, 0.18e-5, (6.0e-5, 9.0e-5)),
            FitParameter("flux_norm", 1.0, 0.03, (0.5, 1.5), prior=(1.0, 0.03), kind="flux"),
        ],
        {},
    )
    truth = model.starts()
    toys = obs.toys(model.expected(truth), model.edges, {}, 300, seed=11).counts
    # the auxiliary measurement constraining the flux is drawn per toy as well
    centres = 1.0 + 0.03 * np.random.default_rng(12).standard_normal(len(toys))
    pulls = {n: [] for n in model.names}
    for row, centre in zip(toys, centres, strict=True):
        out = minimize(model.with_prior_centres([centre]), row, "poisson", start=truth)
        assert out.valid
        for i, n in enumerate(model.names):
            pulls[n].append((out.values[i] - truth[i]) / out.errors[i])
    for n, values in pulls.items():
        s = pull_summary(np.asarray(values))
        # 300 toys: mean ± 0.058, width ± 0.041 (statistical); 3.5σ bands
        assert abs(s["mean"]) < 0.2, (n, s)
        assert abs(s["width"] - 1) < 0.15, (n, s)


def test_toy_ensemble_through_the_service_reports_pulls() -> None:
    overrides = [
        *CHEAP,
        "observation=toy",
        "observation.n_toys=4",
        "fit/nuisances=stat_only",
        "free=[sin2_th12,dm2_21]",
    ]
    result, _, main = compute(load("fit", overrides))
    assert main is None
    t = result["toys"]
    assert t["n_toys"] == 4
    assert t["priors_fluctuated"]
    assert set(t["pulls"]) == {"sin2_th12", "dm2_21"}
    assert t["pulls"]["sin2_th12"]["n"] == 4 - t["n_failed"]
    assert t["fitter"] == "batched"  # the default for ensembles
    assert t["convergence"]["n_fits"] == 4
    assert t["convergence"]["n_valid"] == 4 - t["n_failed"] == 4 - len(t["failed_toys"])
    # the same toys one at a time by iminuit: the same pulls (both at EDM < 2e-4: ≲ 0.015σ)
    ref = compute(load("fit", [*overrides, "fitter=iminuit"]))[0]["toys"]
    assert ref["fitter"] == "iminuit"
    assert ref["n_failed"] == t["n_failed"] == 0
    assert {"not_converged", "hesse_failed", "at_training_range_edge"} <= set(ref["convergence"])
    for name, values in t["pull_values"].items():
        np.testing.assert_allclose(values, ref["pull_values"][name], atol=0.03)


def test_both_orderings_per_toy_agree_between_the_fitters() -> None:
    """Δχ²(IO−NO) per toy: the inverted ordering refitted with the exact predictor's batched
    central-difference Jacobian gives iminuit's minima (to the EDM criterion's ~1e-4)."""
    overrides = [
        *[o for o in CHEAP if o != "orderings=false"],
        "observation=toy",
        "observation.n_toys=3",
        "fit/nuisances=stat_only",
        "orderings=true",
    ]
    got = compute(load("fit", overrides))[0]["toys"]
    ref = compute(load("fit", [*overrides, "fitter=iminuit"]))[0]["toys"]
    assert got["fitter"] == "batched"
    assert len(got["delta_chi2_io_minus_no"]["values"]) == 3
    np.testing.assert_allclose(
        got["delta_chi2_io_minus_no"]["values"], ref["delta_chi2_io_minus_no"]["values"], atol=1e-3
    )


def test_batched_fitter_refuses_what_it_cannot_honour() -> None:
    from oscflow.services.fit.batched import check_statistic

    with pytest.raises(ConfigError, match="fitter=batched fits toy ensembles"):
        compute(load("fit", [*CHEAP, "fitter=batched"]))
    with pytest.raises(ConfigError, match="use one of auto, batched, iminuit"):
        compute(load("fit", [*CHEAP, "fitter=scipy"]))
    model = FitModel(
        VacuumSolar(),
        [FitParameter("sin2_th12", 0.307, 0.013, (0.2, 0.4))],
        {},
        statistics={"mine": lambda n, mu: (n - mu) ** 2},
    )
    with pytest.raises(ConfigError, match="use fitter=iminuit"):
        check_statistic(model, "mine")


def _write(path, fmt, counts, edges):
    if fmt == "csv":
        rows = ["e_low,e_high,counts"] + [
            f"{float(lo)!r},{float(hi)!r},{float(c)!r}"
            for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)
        ]
        path.write_text("\n".join(rows) + "\n")
    elif fmt == "npz":
        np.savez(path, counts=counts, bin_edges=edges)
    else:
        import uproot

        with uproot.recreate(path) as f:
            f["spectrum"] = (np.asarray(counts, dtype=np.float64), np.asarray(edges))


@pytest.mark.parametrize("fmt", ["csv", "npz", "root"])
def test_data_files_are_read_with_their_binning(tmp_path, fmt) -> None:
    edges = np.round(np.linspace(1.8, 8.8, 71), 12)
    counts = np.random.default_rng(1).poisson(100, 70).astype(float)
    path = tmp_path / f"data.{fmt}"
    _write(path, fmt, counts, edges)
    got, got_edges = obs.read_file(str(path))
    np.testing.assert_array_equal(got, counts)
    np.testing.assert_allclose(got_edges, edges, atol=1e-12)


def test_a_fit_to_a_file_equals_the_fit_to_the_same_counts(tmp_path, asimov_fit) -> None:
    _, fs, _, _ = asimov_fit
    counts = np.round(fs.observation.counts)  # integer Asimov-like data
    path = tmp_path / "data.csv"
    _write(path, "csv", counts, fs.edges)
    cfg = load("fit", [*CHEAP, "observation=file", f"observation.path={path}"])
    result, _, _ = compute(cfg)
    direct = minimize(fs.model, counts, "poisson")
    for name in ("sin2_th12", "dm2_21"):  # same minimum (different starts: ≪ σ apart)
        assert abs(result["best_fit"][name] - direct.value(name)) < 0.02 * direct.error(name)
    assert result["truth"] is None
    assert result["data"]["kind"] == "file"


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda c, e: (c[:-1], e[:-1]), "the model 70 bins"),
        (lambda c, e: (np.where(np.arange(c.size) == 3, np.nan, c), e), "NaN"),
        (lambda c, e: (np.where(np.arange(c.size) == 5, -2.0, c), e), "negative"),
        (lambda c, e: (c + 0.5, e), "not integers"),
    ],
)
def test_bad_data_files_are_refused(tmp_path, mutate, needle) -> None:
    edges = np.round(np.linspace(1.8, 8.8, 71), 12)
    counts, e = mutate(np.full(70, 50.0), edges)
    path = tmp_path / "bad.npz"
    _write(path, "npz", counts, e)
    cfg = load("fit", [*CHEAP, "observation=file", f"observation.path={path}"])
    with pytest.raises(ConfigError, match=needle):
        setup(cfg)


def test_non_integer_counts_are_accepted_by_gaussian_statistics(tmp_path) -> None:
    edges = np.round(np.linspace(1.8, 8.8, 71), 12)
    path = tmp_path / "frac.npz"
    _write(path, "npz", np.full(70, 50.5), edges)
    cfg = load("fit", [*CHEAP, "observation=file", f"observation.path={path}", "statistic=cnp"])
    assert setup(cfg).observation.counts[0] == 50.5


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("statistic=chi2", "statistic"),
        ("free=[sin2_th12,escale]", "does not take"),
        ("free=[sin2_th12,theta23]", "not parameters"),
        ("start.sin2_th12=1.5", "outside"),
        ("+priors.sin2_th12={centre:0.3}", "is not {centre, sigma}"),
        ("detector_inputs=[escale,light_guide]", r"\['light_guide'\] are not parameters"),
    ],
)
def test_bad_configuration_is_refused(override, needle) -> None:
    with pytest.raises(ConfigError, match=needle):
        setup(load("fit", [*CHEAP, override]))


def test_a_fit_that_does_not_converge_is_reported_not_returned() -> None:
    cfg = load("fit", [*CHEAP, *OFF_START, "max_calls=10"])
    with pytest.raises(FitNotConverged, match="did not converge") as info:
        compute(cfg)
    flags = info.value.diagnostics["flags"]
    assert flags["has_reached_call_limit"] or not flags["is_valid"]


def test_cli_reports_non_convergence_and_exits_nonzero(capsys) -> None:
    from oscflow.cli import main

    code = main(["fit", *CHEAP, *OFF_START, "max_calls=10"])
    assert code == 1
    assert "did not converge" in capsys.readouterr().err


def test_the_fit_command_takes_its_config_keys_and_names_the_old_spellings(capsys) -> None:
    """No argv rewriting: observation is a config group, the model a plain key; the training
    groups' names (model=, data=) get an error that says what to write instead."""
    from oscflow.cli import main

    cfg = load("fit", ["observation=toy", "observation.n_toys=7", "observation.seed=3"])
    assert (cfg.observation.kind, cfg.observation.n_toys, cfg.observation.seed) == ("toy", 7, 3)
    assert main(["fit", "model=models:/juno-spectrum@champion"]) == 1
    assert "model_uri=<uri>" in capsys.readouterr().err
    assert main(["fit", "data=toy"]) == 1
    assert "observation=asimov|toy|real|file" in capsys.readouterr().err


def test_goodness_of_fit_p_value_from_toys() -> None:
    # Asimov data sit at the best fit: every toy's statistic is larger, p = 1; data pulled
    # 20 % away in one region give a statistic no toy reaches, p = 0.
    small = [*CHEAP, "fit/nuisances=stat_only", "free=[sin2_th12,dm2_21]", "gof_toys=20"]
    result, fs, _ = compute(load("fit", small))
    assert result["goodness_of_fit"]["p_value"] == 1.0
    assert result["goodness_of_fit"]["n_toys"] == 20
    from oscflow.services.fit.toys import goodness_of_fit

    bad = fs.observation.counts.copy()
    bad[10:20] *= 1.2
    fit = minimize(fs.model, bad, "poisson")
    gof = goodness_of_fit(fs, fit, 20, seed=5)
    assert gof["p_value"] == 0.0
    assert gof["toy_statistic_mean"] < gof["statistic"]


def test_profile_and_contour_have_the_widths_of_the_errors(tmp_path) -> None:
    # Near a parabolic minimum: the profile reaches Δχ² = 1 at best ± error, and the 68.27 %
    # two-parameter contour (Δχ² = 2.30) spans best ± √2.30 · error in each parameter.
    from oscflow.services.fit import plots

    cfg = load(
        "fit",
        [
            *CHEAP,
            "fit/nuisances=stat_only",
            "free=[sin2_th12,dm2_21]",
            "scan.profiles=[sin2_th12]",
            "scan.contours=[[sin2_th12,dm2_21]]",
            "scan.points=21",
        ],
    )
    result, _, main = compute(cfg)
    prof = result["scans"]["profiles"]["sin2_th12"]
    x, y = np.asarray(prof["x"]), np.asarray(prof["delta_chi2"])
    best, err = main.value("sin2_th12"), main.error("sin2_th12")
    for side in (-1, 1):
        assert np.interp(best + side * err, x, y) == pytest.approx(1.0, abs=0.1)
    contour = result["scans"]["contours"][0]
    pts = np.asarray(contour["points"]["0.6827"])
    half_width = 0.5 * (pts[:, 0].max() - pts[:, 0].min())
    assert half_width == pytest.approx(np.sqrt(2.30) * err, rel=0.1)
    for name, fn, arg in (
        ("profiles.png", plots.profiles, result["scans"]["profiles"]),
        ("contours.png", plots.contours, result["scans"]["contours"]),
    ):
        path = fn(tmp_path / name, arg)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_sin2_th13_prior_can_be_dropped_and_others_added(juno) -> None:
    from oscflow.services.fit.model import build_parameters
    from oscflow.services.fit.setup import setup

    model = setup(load("fit", CHEAP)).model
    spec = juno.parameters["sin2_th13"]
    assert model.parameters[model.index["sin2_th13"]].prior == (spec.nominal, spec.sigma)
    dropped = load("fit", [*CHEAP, "priors.sin2_th13=null"])
    pred = model.predictor
    params = {p.name: p for p in build_parameters(dropped, juno, pred, {})}
    assert params["sin2_th13"].prior is None
    added = load("fit", [*CHEAP, "+priors.dm2_21={centre:7.5e-5,sigma:2e-6}"])
    params = {p.name: p for p in build_parameters(added, juno, pred, {})}
    assert params["dm2_21"].prior == (7.5e-5, 2e-6)


def test_pull_summary_is_robust_to_outliers() -> None:
    pulls = np.random.default_rng(4).standard_normal(2000)
    pulls[:5] = 60.0  # fits stuck with a collapsed HESSE error
    s = pull_summary(pulls)
    assert s["width"] > 1.5
    assert s["half_width_68"] == pytest.approx(1.0, abs=0.06)
    assert abs(s["median"]) < 0.06
    assert s["n_beyond_5"] == 5


def test_detector_inputs_of_a_model_become_constrained_nuisances(juno) -> None:
    from oscflow.services.fit.model import build_parameters

    class WithEscale:
        kind = "surrogate"
        inputs = ("sin2_th12", "sin2_th13", "dm2_21", "dm2_32", "escale")

        def ranges(self):
            return {k: juno.parameters[k].sampling_range for k in self.inputs}

    spec = juno.parameters["escale"]
    params = {p.name: p for p in build_parameters(load("fit", CHEAP), juno, WithEscale(), {})}
    escale = params["escale"]
    assert escale.kind == "detector"
    assert not escale.fixed
    assert escale.prior == (spec.nominal, spec.sigma)
    assert escale.limits == spec.sampling_range
    stat_only = load("fit", [*CHEAP, "fit/nuisances=stat_only"])
    assert {p.name: p for p in build_parameters(stat_only, juno, WithEscale(), {})}["escale"].fixed


def test_asimov_truth_takes_detector_parameters_where_given(juno) -> None:
    """``+params.escale=…`` moves the Asimov truth's detector parameter (the referee at
    detector points away from nominal); without it the truth is nominal."""
    from oscflow.services.fit.model import FitModel, build_parameters
    from oscflow.services.fit.setup import _truth

    class WithEscale:
        kind = "surrogate"
        inputs = ("sin2_th12", "sin2_th13", "dm2_21", "dm2_32", "escale")
        edges = np.linspace(0.8, 8.8, 11)

        def ranges(self):
            return {k: juno.parameters[k].sampling_range for k in self.inputs}

    model = FitModel(WithEscale(), build_parameters(load("fit", CHEAP), juno, WithEscale(), {}), {})
    i = model.index["escale"]
    assert _truth(juno, model, {"sin2_th12": 0.30})[i] == juno.parameters["escale"].nominal
    x = _truth(juno, model, {"sin2_th12": 0.30, "escale": 1.007})
    assert x[i] == 1.007
    assert x[model.index["sin2_th12"]] == 0.30
    assert x[model.index["flux_norm"]] == 1.0


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("derivatives=exactly", r"'exactly' is unknown"),
        ("derivatives=analytic", "needs the model's own Jacobian; the exact predictor has none"),
    ],
)
def test_bad_derivatives_are_refused(override, needle) -> None:
    """derivatives=analytic needs a predictor with a Jacobian (the exact one has none: auto
    falls back to MINUIT's numerical derivatives for it)."""
    with pytest.raises(ConfigError, match=needle):
        compute(load("fit", [*CHEAP, override, "prescan=false"]))

"""Daya Bay on the real data: one χ² evaluation and one full fit (MIGRAD + HESSE of sin²2θ13 and
Δm²32) with the surrogate vs with the collaboration's model, measured in the same run.

* χ² evaluation: the fit's cost function at a point one σ from the previous one (so that the
  official graph recomputes), surrogate prediction + ``stats.covariance`` vs the official
  model's spectrum + the same statistic (both on one BLAS thread, as ``minimize`` runs them),
  and the official statistic node itself (on its own threads);
* full fit: the fit service's ``minimize`` from the published result as the start, with the
  surrogate and with the official model as predictor, and the official model's own fit of its
  statistic node (``OfficialModel.fit``);
* the statistic alone at the surrogate's spectra: the plain Cholesky (``stats.covariance``) vs
  Woodbury on V_syst's low rank (``stats.woodbury``, the fits' statistic), with their largest
  relative difference; and loading the stored official-model inputs
  (``experiment.official_inputs``, DVC stage ``dayabay_official``) vs computing them.

With ``--published-model`` (a nuisance surrogate: data=dayabay_nuisances_demo), the same for
the published configuration (``fit/experiment=dayabay_published``: sin²2θ13, Δm²32, the global
normalisation and 19 reactor-spectrum scales free): the χ² at 22-parameter points, surrogate
vs the official node, and the full fit, the surrogate's vs the official model's own staged fit
(one repeat: minutes), with the best fits next to the publication. ``--model ''`` skips the
2-parameter part.

Figures are RATIOS "× surrogate" of median wall times (``_timing.measure``), next to the best
fits. Needs a registered ``dayabay-spectrum`` (``--model``) in ``--tracking-uri``::

    .venv/bin/python benchmarks/bench_dayabay.py --model models:/dayabay-spectrum/latest
    .venv/bin/python benchmarks/bench_dayabay.py --model '' --published-model models:/dayabay-spectrum/<v>

The last line printed is a single JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from _timing import Job, environment, measure, warn_if_loaded
from oscflow.stats.blas_threads import one_blas_thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models:/dayabay-spectrum/latest")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--published-model", default="")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    if args.model:
        figures.update(two_parameters(args))
    if args.published_model:
        figures["published"] = published(args)
    print(json.dumps(figures, default=str))


PUBLISHED = {"sin2_2th13": (0.0851, 0.0024), "dm2_32": (2.466e-3, 0.060e-3)}  # PRL 130, 161802


def published(args: argparse.Namespace) -> dict[str, Any]:
    """The published configuration (22 free parameters): χ² evaluation and full fit, the
    nuisance surrogate vs the official model, and the best fits next to the publication."""
    from oscflow.config import load
    from oscflow.services.fit.minimize import cost_function, minimize
    from oscflow.services.fit.setup import fit_options, setup

    env = environment()
    print(f"bench_dayabay (published configuration): revision {env['revision']}")
    cfg = load(
        "fit",
        [
            "experiment=dayabay",
            "fit/experiment=dayabay_published",
            "observation=real",
            f"model_uri={args.published_model}",
            f"logger.tracking_uri={args.tracking_uri}",
            "record=false",
            "plots=false",
        ],
    )
    fs = setup(cfg)
    data = fs.observation.counts
    model = fs.model
    names = list(model.names)
    free = [names.index(n) for n in model.free]
    x = model.starts()
    step = np.array([p.step for p in model.parameters])
    official = fs.experiment.official()
    state = {"sign": 1.0}
    cost = cost_function(model, data, str(cfg.statistic))

    def surrogate_chi2() -> None:
        state["sign"] *= -1
        cost(x + state["sign"] * step)

    def node_chi2() -> None:
        state["sign"] *= -1
        point = x + state["sign"] * step
        official.statistic("full.covmat.chi2cnp", {names[i]: point[i] for i in free})

    with one_blas_thread():  # as inside a fit (minimize holds it), not switched per call
        chi2 = measure({"surrogate": Job(surrogate_chi2, items=1, repeats=50 * args.repeats)})
    chi2.update(measure({"official_node": Job(node_chi2, items=1, repeats=10 * args.repeats)}))
    last: dict[str, Any] = {}

    def surrogate_fit() -> None:
        last["surrogate"] = minimize(model, data, str(cfg.statistic), **fit_options(cfg))

    def official_fit() -> None:
        start = {names[i]: x[i] for i in free}
        last["official_node"] = fs.experiment.own_fit(
            "real", start, {names[i]: step[i] for i in free}
        )

    fits = measure({"surrogate": Job(surrogate_fit, items=1, repeats=args.repeats)})
    fits.update(measure({"official_node": Job(official_fit, items=1, repeats=1, warmup=False)}))
    out: dict[str, Any] = {"environment": env, "chi2": {}, "fit": {}}
    out["chi2"] = chi2_table("χ² (published)", chi2)
    base = fits["surrogate"].median
    sur, off = last["surrogate"], last["official_node"]
    rows = {
        "surrogate": ({n: sur.value(n) for n in sur.free}, {n: sur.error(n) for n in sur.free}),
        "official_node": (off["values"], off["errors"]),
    }
    print(f"{'full fit':<16} {'median [s]':>12} {'× surrogate':>12}  calls      sin2_2th13  dm2_32")
    for name, t in fits.items():
        values, errors = rows[name]
        calls = calls_of(sur) if name == "surrogate" else str(off["nfcn"])
        out["fit"][name] = fit_row(name, t, base, values, errors, f"  {calls:>9}")
        out["fit"][name].update(
            calls=calls, valid=bool(sur.valid if name == "surrogate" else off["valid"])
        )
    print(
        f"{'published':<16} {'':>12} {'':>12}  {'':>5}  "
        f"{'':>4}{PUBLISHED['sin2_2th13'][0]:.5f}±{PUBLISHED['sin2_2th13'][1]:.5f}  "
        f"{PUBLISHED['dm2_32'][0]:.5e}±{PUBLISHED['dm2_32'][1]:.2e}"
    )
    out["shift_sigma"] = {
        n: (rows["surrogate"][0][n] - off["values"][n]) / off["errors"][n] for n in PUBLISHED
    }
    out["official_stages"] = off.get("stages")
    print("surrogate − official [σ of the official fit]:", out["shift_sigma"])
    out["linearity"] = linearity(fs, official, off["values"], sur)
    return out


def linearity(fs: Any, official: Any, best: dict[str, float], sur: Any) -> list[dict[str, Any]]:
    """The nuisance combination against the official model: at the official best fit and at
    three draws from the surrogate fit's covariance, the official spectrum vs the combination
    of the official model's own columns at the same θ (max relative deviation, Δχ²)."""
    from oscflow.experiments.dayabay import nuisances as nz

    order = tuple(fs.experiment.nuisances.values())
    comb = nz.Combination(order)
    stat = fs.model.terms(str(fs.cfg.statistic))
    data = fs.observation.counts
    names = list(sur.free)
    idx = [fs.model.index[n] for n in names]
    cov = np.asarray(sur.minuit.covariance)[np.ix_(idx, idx)]
    rng = np.random.default_rng(7)
    points = [("official best fit", dict(best))]
    for _ in range(3):
        draw = rng.multivariate_normal([best[n] for n in names], cov)
        points.append(("1σ draw", dict(zip(names, draw, strict=True))))
    rows = []
    for label, p in points:
        theta = {k: p[k] for k in ("sin2_2th13", "dm2_32")}
        eta = np.array([p.get(n.name, n.nominal) for n in order])
        combined = comb(nz.columns(official, theta, order)[None], eta[None])[0]
        exact = official.spectrum({**theta, **{n.name: v for n, v in zip(order, eta, strict=True)}})
        row = {
            "point": label,
            "max_rel": nz.relative_error(exact, combined),
            "dchi2": float(stat(data, combined).sum() - stat(data, exact).sum()),
        }
        print(f"linearity at {label}: max |ΔN/N| {row['max_rel']:.2%}, Δχ² {row['dchi2']:+.2f}")
        rows.append(row)
    return rows


def calls_of(fit: Any) -> str:
    """MINUIT's calls of a fit: function, or function+gradient+Hessian with exact derivatives."""
    if fit.ngrad or fit.nhessian:
        return f"{fit.nfcn}+{fit.ngrad}+{fit.nhessian}"
    return str(fit.nfcn)


def chi2_table(title: str, chi2: dict[str, Any]) -> dict[str, Any]:
    """Print the χ² timings as ms and × surrogate; return them."""
    base = chi2["surrogate"].median
    print(f"{title:<16} {'median [ms]':>12} {'× surrogate':>12}")
    out = {}
    for name, t in chi2.items():
        print(f"{name:<16} {1e3 * t.median:>12.2f} {t.median / base:>12.1f}")
        out[name] = {"s": t.median, "ratio_to_surrogate": t.median / base}
    return out


def fit_row(
    name: str, t: Any, base: float, values: dict[str, float], errors: dict[str, float], extra=""
) -> dict[str, Any]:
    """Print one row of a fit table (time, ratio, the oscillation parameters) and return it."""
    print(
        f"{name:<16} {t.median:>12.3f} {t.median / base:>12.1f}{extra}  "
        f"{values['sin2_2th13']:.5f}±{errors['sin2_2th13']:.5f}  "
        f"{values['dm2_32']:.5e}±{errors['dm2_32']:.2e}"
    )
    return {
        "s": t.median,
        "ratio_to_surrogate": t.median / base,
        "best_fit": values,
        "errors": errors,
    }


def two_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """sin²2θ13 and Δm²32 free (conf/fit/experiment/dayabay.yaml)."""

    from oscflow.config import load
    from oscflow.experiments.dayabay.store import OfficialInputs
    from oscflow.services.fit.minimize import cost_function, minimize
    from oscflow.services.fit.setup import fit_options, setup
    from oscflow.stats.covariance import CNPCovariance

    env = environment()
    print(f"bench_dayabay: revision {env['revision']}, {env['cpus_usable']} CPUs usable")
    warn_if_loaded(env)
    cfg = load(
        "fit",
        [
            "experiment=dayabay",
            "observation=real",
            f"model_uri={args.model}",
            f"logger.tracking_uri={args.tracking_uri}",
            "record=false",
            "plots=false",
        ],
    )
    fs = setup(cfg)
    data = fs.observation.counts
    statistic = str(cfg.statistic)
    models = {"surrogate": fs.model, "official": fs.model.with_predictor(fs.exact())}
    official = fs.experiment.official()
    x = fs.model.starts()
    step = np.array([p.step for p in fs.model.parameters])
    names = list(fs.model.names)
    free = [names.index(n) for n in fs.model.free]  # the official model's parameters
    state = {"sign": 1.0}

    def chi2_job(name: str) -> Any:
        cost = cost_function(models[name], data, statistic)

        def fn() -> None:
            state["sign"] *= -1
            cost(x + state["sign"] * step)

        return fn

    def node_job() -> None:
        state["sign"] *= -1
        point = x + state["sign"] * step
        official.statistic("full.covmat.chi2cnp", {names[i]: point[i] for i in free})

    last: dict[str, Any] = {}

    def fit_job(name: str) -> Any:
        def fn() -> None:
            last[name] = minimize(models[name], data, statistic, **fit_options(cfg))

        return fn

    def own_fit() -> None:
        start = {names[i]: x[i] for i in free}
        last["official_node"] = official.fit(start, {names[i]: step[i] for i in free})

    with one_blas_thread():  # as inside a fit (minimize holds it), not switched per call
        chi2 = measure(
            {
                "surrogate": Job(chi2_job("surrogate"), items=1, repeats=50 * args.repeats),
                "official": Job(chi2_job("official"), items=1, repeats=10 * args.repeats),
            }
        )
    # on its own: interleaved with the fast statistic's one-BLAS-thread blocks, the node's
    # first multi-threaded Cholesky after each block waits for OpenBLAS's threads (~1 s on a
    # loaded machine), which would charge the official node for our thread switching
    chi2.update(measure({"official_node": Job(node_job, items=1, repeats=10 * args.repeats)}))
    fits = measure(
        {
            "surrogate": Job(fit_job("surrogate"), items=1, repeats=args.repeats),
            "official": Job(fit_job("official"), items=1, repeats=args.repeats),
            "official_node": Job(own_fit, items=1, repeats=args.repeats),
        }
    )
    # the statistic alone, at surrogate spectra one σ apart: plain Cholesky vs Woodbury
    fast = fs.model.statistics[statistic]
    plain = CNPCovariance(fast.syst)
    spectra = [fs.model.expected(x + s * step) for s in (-1.0, 1.0, 2.0)]
    worst = max(abs(fast(data, m).sum() / plain(data, m).sum() - 1.0) for m in spectra)
    k = {"i": 0}

    def stat_job(fn: Any) -> Any:
        def run() -> None:
            k["i"] = (k["i"] + 1) % len(spectra)
            fn(data, spectra[k["i"]])

        return run

    alone = measure(
        {
            "woodbury": Job(stat_job(fast), items=1, repeats=100 * args.repeats),
            "cholesky": Job(stat_job(plain), items=1, repeats=30 * args.repeats),
        }
    )
    path = fs.experiment.inputs_path
    loads = {}
    if path is not None and path.is_file():
        loads = measure({"load": Job(lambda: OfficialInputs.load(path), items=1, repeats=5)})
    figures: dict[str, Any] = {"environment": env, "chi2": {}, "fit": {}}
    figures["statistic"] = {
        "woodbury_s": alone["woodbury"].median,
        "cholesky_s": alone["cholesky"].median,
        "cholesky_over_woodbury": alone["cholesky"].median / alone["woodbury"].median,
        "max_rel_diff": worst,
        "woodbury_rank": fast.last_rank,
        "woodbury_bound": fast.last_bound,
        "inputs_load_s": loads["load"].median if loads else None,
    }
    print(
        f"statistic alone: Woodbury {1e3 * alone['woodbury'].median:.2f} ms (rank "
        f"{fast.last_rank}, bound {fast.last_bound:.1e}), Cholesky "
        f"{1e3 * alone['cholesky'].median:.2f} ms, max rel. diff {worst:.1e}"
    )
    if loads:
        print(f"stored official-model inputs: loaded in {1e3 * loads['load'].median:.1f} ms")
    figures["chi2"] = chi2_table("χ² evaluation", chi2)
    base = fits["surrogate"].median
    print(f"{'full fit':<16} {'median [s]':>12} {'× surrogate':>12}  calls      sin2_2th13  dm2_32")
    for name, t in fits.items():
        out = last[name]
        if name == "official_node":
            values, errors, calls = out["values"], out["errors"], str(out["nfcn"])
        else:
            values = {n: out.value(n) for n in out.free}
            errors = {n: out.error(n) for n in out.free}
            calls = calls_of(out)
        figures["fit"][name] = fit_row(name, t, base, values, errors, f"  {calls:>9}")
        figures["fit"][name]["calls"] = calls
    return figures


if __name__ == "__main__":
    main()

"""`oscflow predict --json` and the error messages users get for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from oscflow.cli import main


def _predict(capsys: pytest.CaptureFixture[str], *overrides: str) -> dict:
    assert main(["predict", "--json", *overrides]) == 0
    return json.loads(capsys.readouterr().out)


def test_predict_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    out = _predict(
        capsys, "energy=neutrino", "binning.emin=1.8", "binning.emax=16.8", "binning.nbins=30"
    )
    assert len(out["bin_edges"]) == 31
    assert len(out["counts"]) == 30
    assert out["bin_edges"][0] == pytest.approx(1.8)
    assert out["bin_edges"][-1] == pytest.approx(16.8)
    assert out["total"] == pytest.approx(sum(out["counts"]), rel=1e-12)
    expected_sources = {
        "near_reactors",
        "far_reactors",
        "geoneutrinos",
        "world_reactors",
        "accidentals",
        "li9_he8",
        "fast_neutrons",
        "atmospheric_nc",
        "c13_alpha_n",
    }
    assert set(out["by_source"]) == expected_sources
    summed = np.sum([out["by_source"][k] for k in expected_sources], axis=0)
    np.testing.assert_allclose(summed, out["counts"], rtol=1e-12)
    assert out["params"] == {
        "sin2_th12": 0.307,
        "sin2_th13": 0.022,
        "dm2_21": 7.53e-05,
        "dm2_32": 0.002453,
    }
    assert out["totals_by_source"]["near_reactors"] > out["totals_by_source"]["far_reactors"]


def test_overrides_change_the_prediction_as_physics_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Twice the days: twice every source. No θ₁₃, no θ₁₂: the unoscillated spectrum, which is
    larger. Efficiency scales reactors only (background rates are post-selection)."""
    base = [
        "energy=neutrino",
        "binning.emin=1.8",
        "binning.emax=10",
        "binning.nbins=41",
        "backgrounds=false",
    ]
    ref = _predict(capsys, *base, "exposure.days=1000", "exposure.efficiency=1")
    double = _predict(capsys, *base, "exposure.days=2000", "exposure.efficiency=1")
    np.testing.assert_allclose(double["counts"], 2 * np.array(ref["counts"]), rtol=1e-12)
    half_eff = _predict(capsys, *base, "exposure.days=1000", "exposure.efficiency=0.5")
    np.testing.assert_allclose(half_eff["counts"], 0.5 * np.array(ref["counts"]), rtol=1e-12)
    unosc = _predict(
        capsys,
        *base,
        "exposure.days=1000",
        "exposure.efficiency=1",
        "params.sin2_th12=0",
        "params.sin2_th13=0",
    )
    assert unosc["total"] / ref["total"] > 1.5
    io = _predict(
        capsys,
        *base,
        "exposure.days=1000",
        "exposure.efficiency=1",
        "experiment.oscillation.ordering=inverted",
    )
    assert io["counts"] != ref["counts"]


def test_prompt_prediction_from_simulated_pairs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Prompt energy with MC pairs simulated on the fly (no dataset in paths.root_dir)."""
    out = _predict(capsys, f"paths.root_dir={tmp_path}", "mc.n_pairs=50000", "binning.nbins=80")
    assert out["predictor"]["mc_pairs"] == "simulated"
    assert len(out["counts"]) == 80
    peak = out["bin_edges"][int(np.argmax(out["by_source"]["near_reactors"]))]
    assert 2.0 < peak < 4.5  # reactor IBD prompt spectrum peaks near 3 MeV
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("override", "key", "hint"),
    [
        ("params.sin2_th12=1.3", "params.sin2_th12", "[0, 1]"),
        ("params.sin2_th13=-0.1", "params.sin2_th13", "[0, 1]"),
        ("experiment.cores.0.power_gw=-2.9", "experiment.cores[0].power_gw", ">= 0"),
        ("experiment.cores.3.baseline_km=0", "experiment.cores[3].baseline_km", "> 0"),
        ("binning.emin=9", "binning.emin", "emin < binning.emax"),
        ("exposure.days=-5", "exposure.days", "> 0"),
        ("exposure.efficiency=1.5", "exposure.efficiency", "(0, 1]"),
        (
            "params.theta23=0.7",
            "params.theta23",
            "use one of: sin2_th12, sin2_th13, dm2_21, dm2_32",
        ),
        ("experimentt.name=juno", "experimentt", "unknown key"),
        ("energy=visible", "energy", "prompt"),
        ("experiment.detector.res_a=-1", "experiment.detector.res_a", "must be >= 0"),
    ],
)
def test_bad_input_names_the_key_and_the_allowed_range(
    capsys: pytest.CaptureFixture[str], override: str, key: str, hint: str
) -> None:
    assert main(["predict", "--json", "energy=neutrino", override]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert key in captured.err
    assert hint in captured.err


def test_stage_with_bad_input_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["simulate", f"paths.root_dir={tmp_path}", "data.simulate.n_pairs=0"])
    assert code == 1
    assert "data.simulate.n_pairs" in capsys.readouterr().err
    code = main(
        [
            "spectra",
            f"paths.root_dir={tmp_path}",
            "params.dm2_21=-1",
            "data.spectra.inputs=[sin2_th12]",
        ]
    )
    assert code == 1
    assert "params.dm2_21" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_usage_and_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_predict_plot_is_a_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "figs" / "spectrum.png"
    out = _predict(
        capsys, "energy=neutrino", "binning.emin=1.8", "binning.emax=10", f"plot={target}"
    )
    assert out["plot"] == str(target)
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
    assert [p.name for p in target.parent.iterdir()] == ["spectrum.png"]

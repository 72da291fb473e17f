"""Issue 20, defects 5, 6 and 10 (help): the command line's error boundary, nonsense values,
per-command help — and a property test of every numeric key of predict, fit and spectra.

The property tests run a bounded number of generated cases (hypothesis profile
``oscflow-cli``, deterministic). A longer, randomised run is one command:

    OSCFLOW_FUZZ_PROFILE=oscflow-cli-long .venv/bin/python -m pytest tests/test_reliability_cli.py -q -k property

(``OSCFLOW_FUZZ_EXAMPLES=<n>`` sets the number of cases per entry point of that profile.)
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, ListConfig

from oscflow import cli
from oscflow.cli import main
from oscflow.config import MAX_BINS, load
from oscflow.errors import ConfigError, ExitCode, OverrideError, UsageError, classify
from oscflow.services import Command

settings.register_profile(
    "oscflow-cli",
    max_examples=25,
    deadline=None,
    derandomize=True,  # `make test` sees the same cases every run
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "oscflow-cli-long",
    max_examples=int(os.environ.get("OSCFLOW_FUZZ_EXAMPLES", "1000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FUZZ = settings.get_profile(os.environ.get("OSCFLOW_FUZZ_PROFILE", "oscflow-cli"))

# predict: cheap settings (E_ν binning needs no MC pairs; a small response matrix, so even the
# largest allowed binning.nbins stays ~0.1 s) with the backgrounds on.
PREDICT = ["energy=neutrino", "binning.nbins=20", "experiment.response_fine_bins=200"]


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        msg = f"{constant} in the JSON output"
        raise AssertionError(msg)

    return json.loads(text, parse_constant=refuse)


def _assert_clean_error(command: str, code: int, out: str, err: str, *names: str) -> None:
    """Exit 1 or 2, nothing on stdout, one paragraph on stderr with the fix, no traceback."""
    assert code in (ExitCode.INPUT, ExitCode.USAGE), err
    assert out == ""
    assert err.startswith(f"oscflow {command}: error: "), err
    assert err.count("\n") == 1, err  # one paragraph
    assert "Traceback" not in err
    assert "Fix:" in err
    for name in names:
        assert name in err


# --------------------------------------------------------- defect 6: nonsense values refused


@pytest.mark.parametrize(
    ("override", "key", "hint"),
    [
        ("exposure.days=inf", "exposure.days", "(0, 100000]"),
        ("exposure.days=-inf", "exposure.days", "(0, 100000]"),
        ("exposure.days=nan", "exposure.days", "(0, 100000]"),
        ("exposure.days=1e300", "exposure.days", "(0, 100000]"),
        ("exposure.days=abc", "exposure.days", "'abc' is not a number"),
        ("exposure.efficiency=nan", "exposure.efficiency", "(0, 1]"),
        ("exposure.efficiency=inf", "exposure.efficiency", "(0, 1]"),
        ("binning.emax=inf", "binning.emax", "finite"),
        ("binning.emin=nan", "binning.emin", "finite"),
        ("binning.nbins=10.5", "binning.nbins", "would be truncated"),
        ("binning.nbins=0", "binning.nbins", "[1, 100000]"),
        ("binning.nbins=abc", "binning.nbins", "not an integer"),
        ("binning.emax=100", "binning.emax", "experiment.neutrino_energy_max = 16.8"),
        ("params.dm2_21=inf", "params.dm2_21", "[0.0, 1.0]"),
        ("params.sin2_th12=nan", "params.sin2_th12", "[0.0, 1.0]"),
        ("experiment.cores.0.power_gw=inf", "experiment.cores.0.power_gw", "finite"),
        ("experiment.cores.0.power_gw=1e300", "experiment.cores[0].power_gw", "[0, 1000]"),
        ("experiment.cores.2.baseline_km=1e-300", "experiment.cores[2].baseline_km", "[0.001"),
        ("experiment.free_protons=1e300", "experiment.free_protons", "1e+36"),
        ("experiment.detector.res_a=1e300", "experiment.detector.res_a", "[0, 1]"),
        ("experiment.detector.res_c=abc", "experiment.detector.res_c", "not a number"),
        ("experiment.fission_fractions.U235=nan", "experiment.fission_fractions.U235", "finite"),
        ("experiment.response_fine_bins=inf", "experiment.response_fine_bins", "finite"),
        ("experiment.oscillation.density=1e300", "experiment.oscillation.density", "[0, 20]"),
        ("experiment.backgrounds.accidentals.shape_params.slope=abc", "slope", "not a number"),
        (
            "experiment.backgrounds.geoneutrinos.shape_params.th_u_mass_ratio=-1",
            "ratio",
            "[0, 1000]",
        ),
        (
            "experiment.backgrounds.geoneutrinos.shape_params.th_u_mass_ratio=[1,2]",
            "shape_params",
            "do not fit the shape",
        ),
        ("experiment.parameters.dm2_21.bounds.1=abc", "bounds", "not a number"),
        ("mc.seed=-1", "mc.seed", "[0, 4294967295]"),
        ("mc.n_pairs=1.5", "mc.n_pairs", "would be truncated"),
        ("backgrounds=maybe", "backgrounds", "true or false"),
    ],
)
def test_nonsense_values_are_refused_naming_key_range_and_fix(
    override: str, key: str, hint: str
) -> None:
    """Before: rc 0 with NaN/Infinity in the JSON (non-finite exposures, powers, rates),
    silently truncated counts (nbins=10.5), tracebacks (emax=inf, slope=abc), or messages
    without the key (days=abc)."""
    code, out, err = _run("predict", "--json", *PREDICT, override)
    assert code == ExitCode.INPUT, err
    _assert_clean_error("predict", code, out, err, key, hint)


def test_huge_bin_count_fails_at_once_with_the_reason() -> None:
    """Before: a MemoryError traceback after ~10 s; now refused by the config layer."""
    code, out, err = _run("predict", "--json", "binning.nbins=100000000")
    _assert_clean_error("predict", code, out, err, "binning.nbins", str(MAX_BINS), "GB")


def test_integral_floats_are_accepted_as_integers() -> None:
    """nbins=20.0 is 20 bins (not an error); the config holds an int afterwards."""
    cfg = load("predict", ["binning.nbins=20.0", "mc.seed=7.0"])
    assert cfg.binning.nbins == 20
    assert isinstance(cfg.binning.nbins, int)
    assert isinstance(cfg.mc.seed, int)


def test_experiment_plugins_refuse_non_finite_exposures_and_parameters() -> None:
    """The plug-ins' own checks (services call them without the CLI)."""
    from oscflow.experiments import load_experiment
    from oscflow.experiments.base import ParameterSpec

    juno = load_experiment(load("predict").experiment)
    for days, efficiency in [(math.inf, 0.8), (math.nan, 0.8), (100.0, math.nan), (1e6, 1.0)]:
        with pytest.raises(ConfigError, match=r"exposure\.(days|efficiency)"):
            juno.exposure(days, efficiency)
    with pytest.raises(ConfigError, match=r"params\.x: inf is outside"):
        ParameterSpec("x", 0.0, 1.0, 3.0).check(math.inf)  # unbounded, yet not infinite
    dayabay = load_experiment(load("predict", ["experiment=dayabay"]).experiment)
    with pytest.raises(ConfigError, match=r"exposure\.days"):
        dayabay.exposure(math.nan, 1.0)  # NaN compared unequal to the release's days


def test_json_printer_never_emits_nan(monkeypatch: pytest.MonkeyPatch) -> None:
    """A result with NaN is a bug: exit 3 and a message saying where, nothing on stdout."""
    monkeypatch.setitem(
        cli.CORE,
        "predict",
        ("predict", Command("nan", lambda _cfg: {"total": math.nan, "counts": [1.0]})),
    )
    code, out, err = _run("predict", "--json", *PREDICT)
    assert code == ExitCode.INTERNAL
    assert out == ""
    assert "result.total = nan" in err
    assert "bug" in err
    assert "--debug" in err
    assert "Traceback" not in err


# ------------------------------------------------------------- defect 5: the error boundary


def test_usage_errors_exit_2() -> None:
    cases = [
        ("predict", "--frobnicate"),
        ("predict", "params.sin2_th12"),  # no `=`
        ("predict", "params.sin2_th12=[1,"),  # Hydra cannot parse it
        ("frobnicate",),
        ("sensitivity", "--json"),  # no analysis
    ]
    for argv in cases:
        code, out, err = _run(*argv)
        assert code == ExitCode.USAGE, (argv, err)
        assert out == ""
        assert "Traceback" not in err
        assert err.count("\n") == 1, err
    _, _, err = _run("predict", "params.sin2_th12=[1,")
    assert "params.sin2_th12=[1," in err  # names the override


def test_unexpected_exceptions_are_internal_errors_with_a_debug_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(_cfg: DictConfig) -> dict[str, Any]:
        msg = "unpacking went wrong"
        raise ValueError(msg)

    monkeypatch.setitem(cli.CORE, "predict", ("predict", Command("broken", broken)))
    code, out, err = _run("predict", *PREDICT)
    assert code == ExitCode.INTERNAL
    assert out == ""
    assert "internal error (ValueError: unpacking went wrong)" in err
    assert "bug in oscflow" in err
    assert "--debug" in err
    assert "Traceback" not in err
    for argv in (["--debug", "predict", *PREDICT], ["predict", *PREDICT, "--debug"]):
        code, _, err = _run(*argv)
        assert code == ExitCode.INTERNAL
        assert "Traceback (most recent call last)" in err
        assert err.rstrip().splitlines()[-1].startswith("oscflow predict: error: internal error")


def test_debug_shows_the_traceback_of_input_errors_too() -> None:
    code, _, err = _run("predict", "--debug", "binning.emax=inf")
    assert code == ExitCode.INPUT
    assert "Traceback" in err
    assert "ConfigError" in err
    assert err.rstrip().splitlines()[-1].startswith("oscflow predict: error: binning.emax")


@pytest.mark.parametrize(
    ("exc", "code", "words"),
    [
        (MemoryError(), ExitCode.INPUT, ["out of memory", "binning.nbins"]),
        (FileNotFoundError(2, "No such file or directory", "/no/such.npz"), 1, ["/no/such.npz"]),
        (PermissionError(13, "Permission denied", "/root/x"), 1, ["/root/x", "readable"]),
        (OSError(28, "No space left on device", "/full/disk"), 1, ["/full/disk", "free space"]),
        (ConnectionRefusedError(111, "Connection refused"), 1, ["oscflow status"]),
        (json.JSONDecodeError("Expecting value", "x", 0), 1, ["JSON", "Expecting value"]),
        (EOFError("Ran out of input"), 1, ["truncated"]),
        (ValueError("Object arrays cannot be loaded when allow_pickle=False"), 1, ["numeric"]),
        (UsageError("bad option. Fix: x"), ExitCode.USAGE, ["bad option"]),
        (OverrideError("a", "b", "c"), ExitCode.USAGE, ["a: b"]),
        (ConfigError("k", "p", "f"), ExitCode.INPUT, ["k: p. Fix: f."]),
        (RuntimeError("boom"), ExitCode.INTERNAL, ["RuntimeError: boom", "--debug"]),
        (OverflowError("big"), ExitCode.INTERNAL, ["bug"]),
    ],
)
def test_classify_maps_library_failures(exc: BaseException, code: int, words: list[str]) -> None:
    failure = classify(exc)
    assert failure.code == code
    for word in words:
        assert word in failure.message
    if code == ExitCode.INPUT:
        assert "Fix:" in failure.message or "Fix" in failure.message


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (MemoryError(), ExitCode.INPUT),
        (FileNotFoundError(2, "No such file or directory", "/no/such/file"), ExitCode.INPUT),
        (KeyError("x"), ExitCode.INTERNAL),
    ],
)
def test_boundary_covers_platform_commands(
    monkeypatch: pytest.MonkeyPatch, exc: BaseException, code: int
) -> None:
    """`oscflow status` etc. go to platform.cli.main, which catches only OscflowError."""
    import oscflow.platform.cli as platform_cli

    def boom(_command: str, _args: list[str]) -> int:
        raise exc

    monkeypatch.setattr(platform_cli, "main", boom)
    got, out, err = _run("status")
    assert got == code
    assert out == ""
    assert err.startswith("oscflow status: error: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_boundary_covers_train_multirun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`oscflow train -m …`: Hydra's own errors become messages, not Hydra's traceback print;
    sys.argv and HYDRA_FULL_ERROR are restored."""
    monkeypatch.chdir(tmp_path)  # nothing may be written here
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    argv = list(sys.argv)
    code, _, err = _run("train", "-m", "hparams_search=no_such_search")
    assert code == ExitCode.INPUT, err
    assert "no_such_search" in err
    assert "Traceback" not in err
    assert err.count("\n") == 1
    code, _, err = _run("train", "-m", "seed=[1,")
    assert code == ExitCode.USAGE, err
    assert sys.argv == argv
    assert "HYDRA_FULL_ERROR" not in os.environ
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- defect 10: --help per command


@pytest.mark.parametrize("command", [*cli.commands(), *cli._platform_commands()])
def test_every_command_has_help_generated_from_its_config(command: str) -> None:
    code, out, err = _run(command, "--help")
    assert code == 0, err
    platform = command in cli._platform_commands()
    job = "platform" if platform else cli.commands()[command][0]
    assert out.startswith(f"oscflow {command}: ")
    assert cli._summaries()[command] in out  # the summary of USAGE
    assert f"conf/{job}.yaml" in out
    # A group and its options (every conf/experiment/*.yaml but the job's default).
    default = str(load(job).experiment.name)
    others = sorted(
        f.stem for f in (Path(__file__).resolve().parents[1] / "conf" / "experiment").glob("*.yaml")
    )
    others.remove(default)
    assert f"experiment                   {default}  (also: {', '.join(others)})" in out
    keys = [line.split()[0] for line in out.split("main keys", 1)[1].splitlines()[1:] if line]
    assert set(load(job)) <= set(keys)  # every top-level key, one line each


def test_short_help_flag() -> None:
    code, out, _ = _run("fit", "-h")
    assert code == 0
    assert out.splitlines()[:3] == _run("fit", "--help")[1].splitlines()[:3]


def test_help_follows_the_config_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new group option and a new top-level key show up without touching the CLI."""
    conf = tmp_path / "conf"
    shutil.copytree(Path(__file__).resolve().parents[1] / "conf", conf)
    shutil.copy(conf / "experiment" / "juno.yaml", conf / "experiment" / "juno_copy.yaml")
    text = (conf / "predict.yaml").read_text()
    (conf / "predict.yaml").write_text(text + "answer_key: 42\n")
    monkeypatch.setenv("OSCFLOW_CONFIG_DIR", str(conf))
    code, out, _ = _run("predict", "--help")
    assert code == 0
    assert "juno_copy" in out
    assert "answer_key    42" in out


def test_help_word_and_top_level_usage() -> None:
    assert _run("help", "fit")[1] == _run("fit", "--help")[1]
    code, out, _ = _run("--help")
    assert code == 0
    for status in ("0  success", "1  input", "2  usage", "3  internal"):
        assert status in out


# -------------------------------------------- property test: every numeric key, any value


def _numeric_keys(job: str, overrides: list[str]) -> list[str]:
    """Dotted keys of every int/float leaf of the composed config."""

    def walk(node: Any, path: tuple[str, ...]) -> Iterator[str]:
        keys = list(node) if isinstance(node, DictConfig) else range(len(node))
        for k in keys:
            value = node[k]
            if isinstance(value, DictConfig | ListConfig):
                yield from walk(value, (*path, str(k)))
            elif isinstance(value, int | float) and not isinstance(value, bool):
                yield ".".join((*path, str(k)))

    return sorted(walk(load(job, overrides), ()))


_SPECIAL = [
    "inf", "-inf", "nan", "NaN", "1e308", "-1e308", "1e-308", "5e-324", "0", "-0.0", "-1",
    "1e5", "99999", "100001", "10.5", "0.5", "2**10", "abc", "''", "null", "true", "[1,2]",
    "${oc.env:NO_SUCH_VARIABLE_HERE}", "1_000", "0x10",
]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(_SPECIAL),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.text(alphabet=st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=12),
)


def _property_case(job: str, flags: list[str], key: str, value: str) -> None:
    code, out, err = _run(job, "--json", *flags, f"{key}={value}")
    assert code != ExitCode.INTERNAL, f"{key}={value}: {err}"
    if code == 0:
        document = _strict_json(out)
        assert isinstance(document, dict)
        assert err == "" or "Traceback" not in err
        return
    _assert_clean_error(job, code, out, err)
    parts = [p for p in key.split(".") if not p.isdigit()]
    assert code == ExitCode.USAGE or any(p in err for p in parts), f"{key}={value}: {err}"


PREDICT_KEYS = _numeric_keys("predict", PREDICT)
FIT_KEYS = _numeric_keys("fit", [])
SPECTRA_KEYS = _numeric_keys("spectra", [])


@settings(FUZZ)
@given(key=st.sampled_from(PREDICT_KEYS), value=VALUES)
def test_property_predict_any_numeric_override(key: str, value: str) -> None:
    """`oscflow predict --json key=value`, run to the end: a valid strict-JSON result or a clean
    one-paragraph error (exit 1/2), never an internal error, a traceback or NaN."""
    _property_case("predict", PREDICT, key, value)


@settings(FUZZ)
@given(key=st.sampled_from(FIT_KEYS), value=VALUES)
def test_property_fit_config_validation(key: str, value: str) -> None:
    """`oscflow fit --check --json key=value`: the whole validation stage a fit runs first."""
    _property_case("fit", ["--check"], key, value)


@settings(FUZZ)
@given(key=st.sampled_from(SPECTRA_KEYS), value=VALUES)
def test_property_spectra_config_validation(key: str, value: str) -> None:
    """`oscflow spectra --check --json key=value` (the stage itself takes minutes)."""
    _property_case("spectra", ["--check"], key, value)


def test_check_reports_what_it_validated() -> None:
    code, out, err = _run("fit", "--check", "--json", "exposure.days=365")
    assert code == 0, err
    document = _strict_json(out)
    assert document["valid"] is True
    assert document["checked"]["exposure"]["days"] == 365
    assert document["checked"]["experiment"] == "juno"
    assert document["config"]["exposure"]["days"] == 365
    code, out, err = _run("fit", "--check", "experiment.cores.1.baseline_km=0")
    _assert_clean_error("fit", code, out, err, "experiment.cores[1].baseline_km")

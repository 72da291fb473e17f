"""Reliability of the data layer (issue 20): dataset builds, the exact model, observation files.

- Concurrent and killed builds: real ``oscflow spectra`` / ``oscflow simulate`` processes on a
  tiny dataset; the published dataset must be byte-for-byte one single-run build.
- The exact oscillation model at degenerate and near-degenerate Δm² in matter, against an
  independent reference (``scipy.linalg.expm`` of the 3×3 Hamiltonian).
- Observation files for fits: each kind of bad file gives a ConfigError naming the file, the
  problem and the fix; hypothesis property tests over random bytes and random truncations or
  corruptions of valid NPZ/CSV files (the loader returns a valid finite observation or raises
  that error, never anything else).

The property tests run 100 examples each here (seconds). A longer run, e.g. before a release:

    HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/test_reliability_data.py -q -k property

(profile ``long``: 5000 examples per test, registered below; ``HYPOTHESIS_PROFILE`` names any
registered hypothesis profile, unknown names fall back to the bounded one).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from omegaconf import OmegaConf

from oscflow.cli import main
from oscflow.errors import OscflowError
from oscflow.physics.constants import MATTER_POTENTIAL_COEFF, OSC_PHASE_COEFF
from oscflow.physics.oscillation import OscillationParameters, survival_probability
from oscflow.services.fit import observation as obs

settings.register_profile("oscflow-bounded", max_examples=100, deadline=None)
settings.register_profile("long", max_examples=5000, deadline=None)
try:
    PROPERTY = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "oscflow-bounded"))
except InvalidArgument:
    PROPERTY = settings.get_profile("oscflow-bounded")
# Generated files go to a module-scoped directory (hypothesis reruns a body many times).
PROPERTY = settings(PROPERTY, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------------------------------------
# Dataset builds: real processes
# ----------------------------------------------------------------------------------------------

SIMULATE = ["data.simulate.n_pairs=20000", "data.simulate.chunk=10000"]
# Chunks of 5 spectra (20 for train; a progress line per 10 %, i.e. every 2 chunks): ~1–2 s
# after start-up, long enough to kill a build mid-way.
SPECTRA = [
    "data.spectra.splits.train=100",
    "data.spectra.splits.val=10",
    "data.spectra.splits.test=10",
    "data.spectra.chunk=5",
]
DATASET = Path("data/juno/demo")  # relative: the processes run with the root as cwd
WAITING = "waiting for another build of"
TIMEOUT = 180.0
# One xdist worker for all build tests (`make test` runs --dist loadgroup): the reference
# builds of the module fixture are made once.
BUILDS_GROUP = pytest.mark.xdist_group("reliability-dataset-builds")


class Build:
    """One ``oscflow`` process; reader threads collect its stdout and stderr line by line."""

    def __init__(self, root: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "OSCFLOW_CONFIG_DIR"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "oscflow.cli", *args],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []  # stderr
        self.out: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: io.TextIOBase | None, into: list[str]) -> None:
        assert stream is not None
        with stream:
            for line in stream:
                into.append(line)  # noqa: PERF402 - line by line: seen while the process runs

    @property
    def waiting(self) -> int:
        return sum(WAITING in line for line in self.lines)

    def finish(self) -> int:
        """Wait for the exit and for both streams to be read to the end; the exit status."""
        self.proc.wait(timeout=TIMEOUT)
        for reader in self._readers:
            reader.join(timeout=TIMEOUT)
        return self.proc.returncode

    def log(self) -> str:
        return "".join(self.lines)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Poll ``condition`` (every 10 ms) until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def run_ok(root: Path, *args: str) -> str:
    build = Build(root, *args)
    rc = build.finish()
    assert rc == 0, f"oscflow {' '.join(args)} failed:\n{build.log()}"
    return build.log()


@contextlib.contextmanager
def holding_lock(path: Path) -> Iterator[None]:
    """Hold a dataset's build lock as a build would (flock; unlink before release)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"pid {os.getpid()} (the test)\n".encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def tree_bytes(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in (root / DATASET).iterdir() if p.name.startswith("."))


def assert_consistent(spectra: Path) -> None:
    """meta.json describes the arrays beside it: shapes, totals and the sampled seeds."""
    meta = json.loads((spectra / "meta.json").read_text())
    for split, n in meta["splits"].items():
        params = np.load(spectra / f"{split}_params.npy")
        counts = np.load(spectra / f"{split}_spectra.npy")
        assert params.shape == (n, len(meta["inputs"]))
        assert counts.shape == (n, len(meta["bin_edges"]) - 1)
        total = float(np.sum(counts, dtype=np.float64))
        assert total == pytest.approx(meta["sum_counts"][split], rel=1e-12)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """MC pairs, and the spectra of seeds 1 and 2 each built alone (the references)."""
    root = tmp_path_factory.mktemp("single")
    run_ok(root, "simulate", *SIMULATE)
    refs = tmp_path_factory.mktemp("refs")
    out: dict[str, Path] = {"pairs": refs / "pairs"}
    shutil.copytree(root / DATASET / "pairs", out["pairs"])
    for seed in ("1", "2"):
        run_ok(root, "spectra", *SPECTRA, f"data.spectra.seed={seed}")
        out[seed] = refs / f"spectra-{seed}"
        (root / DATASET / "spectra").rename(out[seed])
    assert tree_bytes(out["1"]) != tree_bytes(out["2"])
    return out


def fresh_root(tmp_path: Path, builds: dict[str, Path]) -> Path:
    shutil.copytree(builds["pairs"], tmp_path / DATASET / "pairs")
    return tmp_path


def assert_one_of(published: Path, builds: dict[str, Path]) -> str:
    """The published dataset is byte-for-byte one single-run build; returns its seed."""
    got = tree_bytes(published)
    matches = [seed for seed in ("1", "2") if got == tree_bytes(builds[seed])]
    assert matches, (
        f"published dataset equals neither single-run build: meta seed "
        f"{json.loads((published / 'meta.json').read_text())['generator']['seed']}, files "
        f"differing from seed 1: "
        f"{sorted(k for k in got if got[k] != tree_bytes(builds['1']).get(k))}"
    )
    assert_consistent(published)
    return matches[0]


@pytest.mark.slow
@BUILDS_GROUP
def test_simultaneous_spectra_builds_publish_exactly_one_run(
    tmp_path: Path, builds: dict[str, Path]
) -> None:
    """Two `oscflow spectra` of one dataset started together (seeds 1 and 2): both succeed,
    one after the other, and the published dataset is exactly one of them."""
    root = fresh_root(tmp_path, builds)
    first = Build(root, "spectra", *SPECTRA, "data.spectra.seed=1")
    second = Build(root, "spectra", *SPECTRA, "data.spectra.seed=2")
    rcs = first.finish(), second.finish()
    assert rcs == (0, 0), f"seed 1:\n{first.log()}\nseed 2:\n{second.log()}"
    assert first.waiting + second.waiting <= 1
    assert_one_of(root / DATASET / "spectra", builds)
    assert leftovers(root) == []


@pytest.mark.slow
@BUILDS_GROUP
def test_a_training_margin_widens_the_train_split_only(
    tmp_path: Path, builds: dict[str, Path]
) -> None:
    """data.spectra.margin=0.2: the train split is the margin-free build's sample mapped onto
    the box 20 % wider at both ends (same unit-cube points), val and test are that build's
    byte for byte, and the served ranges are unchanged."""
    root = fresh_root(tmp_path, builds)
    run_ok(root, "spectra", *SPECTRA, "data.spectra.seed=1", "data.spectra.margin=0.2")
    got, ref = root / DATASET / "spectra", builds["1"]
    meta, ref_meta = (json.loads((d / "meta.json").read_text()) for d in (got, ref))
    assert meta["ranges"] == ref_meta["ranges"]
    lo, hi = np.array([meta["ranges"][k] for k in meta["inputs"]]).T  # meta.json sorts keys
    wide_lo, wide_hi = np.array([meta["training_ranges"][k] for k in meta["inputs"]]).T
    np.testing.assert_allclose([wide_lo, wide_hi], [lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo)])
    unit = (np.load(ref / "train_params.npy") - lo) / (hi - lo)
    train = np.load(got / "train_params.npy")
    np.testing.assert_allclose(train, wide_lo + unit * (wide_hi - wide_lo), rtol=1e-12)
    assert ((train < lo) | (train > hi)).any()
    for name in ("val_params", "val_spectra", "test_params", "test_spectra"):
        assert (got / f"{name}.npy").read_bytes() == (ref / f"{name}.npy").read_bytes()


def test_a_margin_beyond_a_parameters_bounds_is_refused() -> None:
    from oscflow.config import load
    from oscflow.data.spectra import training_box
    from oscflow.experiments import load_experiment

    experiment = load_experiment(load("spectra", []).experiment)
    box = training_box(experiment, 0.1, ["sin2_th13"], [(0.01, 0.03)], ["linear"])
    assert box == [pytest.approx((0.008, 0.032))]
    log_box = training_box(experiment, 0.5, ["dm2_21"], [(1e-5, 1e-4)], ["log"])
    assert log_box == [pytest.approx((10**-5.5, 10**-3.5))]  # half a decade beyond each end
    with pytest.raises(OscflowError, match=r"beyond its bounds.*lower the margin"):
        training_box(experiment, 0.1, ["sin2_th13"], [(0.001, 0.03)], ["linear"])
    with pytest.raises(OscflowError, match=r"data.spectra.margin.*\[0, 0.5\]"):
        training_box(experiment, 0.7, ["sin2_th13"], [(0.01, 0.03)], ["linear"])


@pytest.mark.slow
@BUILDS_GROUP
def test_concurrent_spectra_builds_wait_for_each_other(
    tmp_path: Path, builds: dict[str, Path]
) -> None:
    """Both builds reach the lock while it is held (deterministic contention): each says once
    that it waits, then they run one at a time; the result is exactly one run's."""
    root = fresh_root(tmp_path, builds)
    with holding_lock(root / DATASET / ".spectra.lock"):
        first = Build(root, "spectra", *SPECTRA, "data.spectra.seed=1")
        second = Build(root, "spectra", *SPECTRA, "data.spectra.seed=2")
        wait_until(
            lambda: (
                (first.waiting and second.waiting)
                or first.proc.poll() is not None
                or second.proc.poll() is not None
            ),
            "both builds to wait for the lock",
        )
        assert not (root / DATASET / "spectra").exists()
    rcs = first.finish(), second.finish()
    assert rcs == (0, 0), f"seed 1:\n{first.log()}\nseed 2:\n{second.log()}"
    assert (first.waiting, second.waiting) == (1, 1), first.log() + second.log()
    assert "pid" in next(line for line in first.lines if WAITING in line)
    assert_one_of(root / DATASET / "spectra", builds)
    assert leftovers(root) == []


def _kill_mid_build(root: Path, *args: str) -> int:
    """Start a spectra build, SIGKILL it once ≥ 3 train chunks are recorded; chunks done."""
    done = root / DATASET / ".spectra.partial" / "train.done.json"

    def chunks() -> int:
        try:
            return len(json.loads(done.read_text()))
        except (OSError, ValueError):
            return 0

    build = Build(root, "spectra", *SPECTRA, *args)
    wait_until(lambda: chunks() >= 3 or build.proc.poll() is not None, "3 chunks")
    build.proc.send_signal(signal.SIGKILL)
    build.finish()
    assert build.proc.returncode == -signal.SIGKILL, "the build finished before it was killed"
    return chunks()


@pytest.mark.slow
@BUILDS_GROUP
def test_killed_build_publishes_nothing_and_resumes(
    tmp_path: Path, builds: dict[str, Path]
) -> None:
    """SIGKILL mid-build: the dataset published before is untouched; a rerun with the same
    inputs resumes the recorded chunks and publishes exactly the single-run build."""
    root = fresh_root(tmp_path, builds)
    shutil.copytree(builds["2"], root / DATASET / "spectra")
    n_done = _kill_mid_build(root, "data.spectra.seed=1")
    assert tree_bytes(root / DATASET / "spectra") == tree_bytes(builds["2"])
    log = run_ok(root, "spectra", *SPECTRA, "data.spectra.seed=1")
    first = next(line for line in log.splitlines() if line.startswith("spectra train:"))
    assert int(first.split(":")[1].split("/")[0]) >= n_done * 5, log  # resumed, not redone
    assert assert_one_of(root / DATASET / "spectra", builds) == "1"
    assert leftovers(root) == []


@pytest.mark.slow
@BUILDS_GROUP
def test_killed_build_is_not_resumed_with_other_inputs(
    tmp_path: Path, builds: dict[str, Path]
) -> None:
    """A partial build at the default exposure must not be resumed by a build at another
    exposure (the fingerprint covers every input of the arrays): the spectra, linear in the
    live time, must all scale by 1000 / 2191.5 from the single-run build."""
    root = fresh_root(tmp_path, builds)
    _kill_mid_build(root, "data.spectra.seed=1")
    log = run_ok(root, "spectra", *SPECTRA, "data.spectra.seed=1", "exposure.days=1000")
    assert "spectra train: 10/100" in log  # started afresh
    published = root / DATASET / "spectra"
    assert_consistent(published)
    meta = json.loads((published / "meta.json").read_text())
    assert meta["exposure"]["days"] == 1000
    got = np.load(published / "train_spectra.npy").astype(np.float64)
    ref = np.load(builds["1"] / "train_spectra.npy").astype(np.float64)
    np.testing.assert_allclose(got, ref * 1000 / 2191.5, rtol=1e-5)
    assert leftovers(root) == []


@pytest.mark.slow
@BUILDS_GROUP
def test_concurrent_simulate_builds_and_a_spectra_build_reading_the_pairs(
    tmp_path: Path, builds: dict[str, Path]
) -> None:
    """`oscflow simulate` under the pairs' lock: two simulate runs (seeds 21, 22) held at the
    lock wait once each and publish exactly one run's pairs; a spectra build waits while the
    pairs are locked (it must not read pairs being replaced)."""
    root = fresh_root(tmp_path, builds)
    lock = root / DATASET / ".pairs.lock"
    with holding_lock(lock):
        sims = [Build(root, "simulate", *SIMULATE, f"data.simulate.seed={s}") for s in (21, 22)]
        wait_until(
            lambda: all(b.waiting for b in sims) or any(b.proc.poll() is not None for b in sims),
            "both simulate runs to wait for the lock",
        )
        assert tree_bytes(root / DATASET / "pairs") == tree_bytes(builds["pairs"])
    assert [b.finish() for b in sims] == [0, 0], sims[0].log() + sims[1].log()
    assert [b.waiting for b in sims] == [1, 1]
    pairs = tree_bytes(root / DATASET / "pairs")
    seed = json.loads(pairs["meta.json"])["seed"]
    alone = tmp_path / "alone"
    alone.mkdir()
    run_ok(alone, "simulate", *SIMULATE, f"data.simulate.seed={seed}")
    assert pairs == tree_bytes(alone / DATASET / "pairs")
    assert leftovers(root) == []

    with holding_lock(lock):
        spectra = Build(root, "spectra", *SPECTRA, "data.spectra.seed=1")
        wait_until(lambda: spectra.waiting or spectra.proc.poll() is not None, "spectra waits")
        assert ".pairs.lock" in spectra.log()
    assert spectra.finish() == 0, spectra.log()
    assert json.loads((root / DATASET / "spectra/meta.json").read_text())["pairs"]["seed"] == seed
    assert leftovers(root) == []


def test_stale_work_directories_of_killed_builds_are_removed(tmp_path: Path) -> None:
    """A simulate killed while writing leaves `.pairs.<id>.tmp`; the next build removes it."""
    from oscflow.data.io import atomic_directory

    target = tmp_path / "pairs"
    stale = tmp_path / ".pairs.123.abcd.tmp"
    stale.mkdir()
    (stale / "enu.npy").write_bytes(b"half")
    with atomic_directory(target) as work:
        (work / "x.npy").write_bytes(b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs"]
    plain = tmp_path / "plain"
    plain.mkdir()  # the published directory has a plain mkdir's mode, not mkdtemp's 0700
    assert target.stat().st_mode == plain.stat().st_mode


# ----------------------------------------------------------------------------------------------
# Exact model: degenerate Δm² in matter
# ----------------------------------------------------------------------------------------------


def _expm_reference(
    energy: np.ndarray, baseline: float, p: OscillationParameters, density: float
) -> np.ndarray:
    """|[exp(−i·2E·H·L/2E)]ₑₑ|² by scipy.linalg.expm of the 3×3 flavour Hamiltonian
    (U diag(0, Δm²₂₁, Δm²₃₁) Uᵀ − diag(A, 0, 0), θ₂₃ = δ = 0): no eigen-decomposition."""
    s12, s13 = float(p.sin2_th12), float(p.sin2_th13)
    c12, c13 = np.sqrt(1 - s12), np.sqrt(1 - s13)
    u = np.array(
        [
            [c12 * c13, np.sqrt(s12) * c13, np.sqrt(s13)],
            [-np.sqrt(s12), c12, 0.0],
            [-c12 * np.sqrt(s13), -np.sqrt(s12 * s13), c13],
        ]
    )
    d21, d31 = (float(x) for x in p.splittings())
    out = []
    for e in energy:
        h = u @ np.diag([0.0, d21, d31]) @ u.T
        h[0, 0] -= MATTER_POTENTIAL_COEFF * density * 0.5 * e
        amp = scipy.linalg.expm(-2j * OSC_PHASE_COEFF * baseline / e * h)[0, 0]
        out.append(abs(amp) ** 2)
    return np.array(out)


@pytest.mark.parametrize("ordering", ["normal", "inverted"])
def test_matter_with_vanishing_mass_splittings_is_exact(ordering: str) -> None:
    """Δm²₂₁ = Δm²₃₂ = 0 (inside the parameter bounds), matter on: the vacuum Hamiltonian is
    zero, 2E·H = −diag(A, 0, 0), ν̄ₑ is an eigenstate, so P_ee = 1 exactly at every energy
    (the issue saw 256 of 3001 energies NaN)."""
    energies = np.linspace(1.8, 12.0, 3001)
    p = OscillationParameters(0.307, 0.022, 0.0, 0.0, ordering)  # type: ignore[arg-type]
    prob = survival_probability(energies, 52.5, p, matter=True)
    assert np.all(np.isfinite(prob))
    np.testing.assert_allclose(prob, 1.0, atol=1e-14)


DEGENERATE = [
    # (sin²θ12, sin²θ13, Δm²21, |Δm²32|, ordering, density)
    (0.307, 0.022, 0.0, 0.0, "normal", 2.45),
    (0.307, 0.022, 0.0, 0.0, "inverted", 30.0),
    (0.307, 0.022, 1e-15, 1e-15, "normal", 2.45),
    (0.307, 0.022, 1e-10, 0.0, "normal", 2.45),
    (0.307, 0.022, 0.0, 1e-10, "inverted", 2.45),
    (0.307, 0.022, 7.53e-5, 0.0, "normal", 2.45),
    (0.307, 0.022, 0.0, 2.453e-3, "normal", 2.45),
    (0.0, 0.022, 1e-10, 2.453e-3, "inverted", 0.0),  # eigenvalues 0 and 1e-10: ~√ε trouble
    (0.307, 0.0, 7.53e-5, 1e-15, "normal", 0.0),
    (0.5, 1.0, 1e-15, 2.453e-3, "normal", 2.45),
    (1.0, 0.0, 7.53e-5, 7.53e-5, "inverted", 2.45),  # Δm²31 = 0
    (0.307, 0.022, 7.53e-5, 2.453e-3, "normal", 2.45),  # PDG, for scale
]


@pytest.mark.parametrize(("s12", "s13", "d21", "d32", "ordering", "density"), DEGENERATE)
def test_degenerate_and_near_degenerate_points_match_the_matrix_exponential(
    s12: float, s13: float, d21: float, d32: float, ordering: str, density: float
) -> None:
    """Closed form = expm of the Hamiltonian to 1e-12 at JUNO's near and far baselines."""
    p = OscillationParameters(s12, s13, d21, d32, ordering)  # type: ignore[arg-type]
    energies = np.linspace(1.8, 12.0, 103)
    for baseline in (52.5, 265.0):
        prob = survival_probability(energies, baseline, p, matter=True, density=density)
        assert np.all(np.isfinite(prob))
        assert np.all((prob >= 0.0) & (prob <= 1.0))
        ref = _expm_reference(energies, baseline, p, density)
        np.testing.assert_allclose(prob, ref, rtol=0, atol=1e-12)


def test_probability_is_continuous_as_the_splittings_vanish() -> None:
    """Δm²₂₁ = Δm²₃₂ = δ → 0 in matter: P_ee → 1 smoothly (max |P − 1| falls like δ², no
    jump at δ = 0), and each point agrees with expm."""
    energies = np.linspace(1.8, 12.0, 61)
    deficits = []
    for delta in [1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 0.0]:
        p = OscillationParameters(0.307, 0.022, delta, delta)
        prob = survival_probability(energies, 52.5, p, matter=True)
        ref = _expm_reference(energies, 52.5, p, 2.45)
        np.testing.assert_allclose(prob, ref, rtol=0, atol=1e-12)
        deficits.append(float(np.max(1.0 - prob)))
    assert all(b <= a + 1e-15 for a, b in itertools.pairwise(deficits))
    assert deficits[-2] < 1e-10
    assert deficits[-1] < 1e-14


@PROPERTY
@given(
    s12=st.floats(0.0, 1.0),
    s13=st.floats(0.0, 1.0),
    d21=st.one_of(st.just(0.0), st.floats(0.0, 1e-2), st.floats(0.0, 1e-9)),
    d32=st.one_of(st.just(0.0), st.floats(0.0, 1e-2), st.floats(0.0, 1e-9)),
    ordering=st.sampled_from(["normal", "inverted"]),
    density=st.one_of(st.just(0.0), st.floats(0.0, 50.0)),
)
def test_property_matter_probability_is_finite_bounded_and_exact(
    s12: float, s13: float, d21: float, d32: float, ordering: str, density: float
) -> None:
    """Anywhere in the parameter bounds (Δm² up to 1e-2 eV², densities to 50 g/cm³):
    P_ee finite, in [0, 1], equal to the matrix exponential."""
    p = OscillationParameters(s12, s13, d21, d32, ordering)  # type: ignore[arg-type]
    energies = np.array([1.8, 2.9, 4.4, 7.0, 11.5])
    prob = survival_probability(energies, 52.5, p, matter=True, density=density)
    assert np.all(np.isfinite(prob))
    assert np.all((prob >= 0.0) & (prob <= 1.0))
    np.testing.assert_allclose(prob, _expm_reference(energies, 52.5, p, density), atol=1e-9)


# ----------------------------------------------------------------------------------------------
# Observation files
# ----------------------------------------------------------------------------------------------

EDGES = np.round(np.linspace(1.8, 8.8, 71), 12)
COUNTS = np.random.default_rng(3).poisson(100, 70).astype(np.float64)
# The fit command's cheapest configuration (exact E_ν predictor, vacuum, 70 bins).
CHEAP_FIT = [
    "predictor=exact",
    "energy=neutrino",
    "binning.emin=1.8",
    "binning.emax=8.8",
    "binning.nbins=70",
    "experiment.oscillation.matter=false",
    "orderings=false",
    "record=false",
    "plots=false",
]


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _csv_text(counts: np.ndarray = COUNTS, edges: np.ndarray = EDGES) -> str:
    rows = ["e_low,e_high,counts"] + [
        f"{lo!r},{hi!r},{c!r}"
        for lo, hi, c in zip(edges[:-1].tolist(), edges[1:].tolist(), counts.tolist(), strict=True)
    ]
    return "\n".join(rows) + "\n"


VALID_NPZ = _npz_bytes(counts=COUNTS, bin_edges=EDGES)
VALID_CSV = _csv_text().encode()


def _root_without_histogram(path: Path) -> None:
    import uproot

    with uproot.recreate(path) as f:
        f["note"] = "no histogram here"


def _object_npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, counts=np.array([{"a": 1}], dtype=object), bin_edges=EDGES)
    return buf.getvalue()


BAD_FILES: list[tuple[str, str, Callable[[], bytes] | None, str]] = [
    # (id, suffix, content, what the message must say)
    ("truncated-npz", "npz", lambda: VALID_NPZ[: len(VALID_NPZ) // 2], "not a readable NPZ"),
    ("random-bytes-npz", "npz", lambda: os.urandom(3000), "not an NPZ (zip) archive"),
    ("npy-as-npz", "npz", lambda: _npy_bytes(COUNTS), "a single .npy array"),
    ("empty-npz", "npz", lambda: b"", "not an NPZ (zip) archive"),
    ("pickled-objects", "npz", _object_npz, "not a readable NPZ"),
    ("missing-arrays", "npz", lambda: _npz_bytes(counts=COUNTS), "bin_edges"),
    ("wrong-names", "npz", lambda: _npz_bytes(a=COUNTS, b=EDGES), "counts"),
    ("2d-counts", "npz", lambda: _npz_bytes(counts=COUNTS.reshape(7, 10), bin_edges=EDGES), "1-D"),
    ("text-counts", "npz", lambda: _npz_bytes(counts=COUNTS.astype(str), bin_edges=EDGES), "dtype"),
    ("empty-edges", "npz", lambda: _npz_bytes(counts=COUNTS, bin_edges=np.array([])), "1-D"),
    ("edges-mismatch", "npz", lambda: _npz_bytes(counts=COUNTS, bin_edges=EDGES[:-3]), "need 71"),
    (
        "decreasing-edges",
        "npz",
        lambda: _npz_bytes(counts=COUNTS, bin_edges=EDGES[::-1]),
        "increasing",
    ),
    (
        "wrong-binning",
        "npz",
        lambda: _npz_bytes(counts=COUNTS[:-1], bin_edges=EDGES[:-1]),
        "the model 70",
    ),
    (
        "nan-counts",
        "npz",
        lambda: _npz_bytes(counts=np.where(COUNTS > 105, np.nan, COUNTS), bin_edges=EDGES),
        "NaN",
    ),
    ("negative-counts", "npz", lambda: _npz_bytes(counts=-COUNTS, bin_edges=EDGES), "negative"),
    ("csv-bad-row", "csv", lambda: VALID_CSV.replace(b"\n2.", b"\nabc,", 1), "line"),
    ("csv-short-row", "csv", lambda: VALID_CSV + b"8.8,9.0\n", "not a number"),
    ("csv-binary", "csv", lambda: b"\xff\xfe\x00\x01" * 100, "not a readable CSV"),
    ("csv-nul", "csv", lambda: b"e_low,e_high,counts\n1.8,\x00,3\n", "not a number"),
    ("csv-no-header", "csv", lambda: b"1,2,3\n", "header"),
    (
        "csv-nan-edge",
        "csv",
        lambda: _csv_text(edges=np.r_[np.nan, EDGES[1:]]).encode(),
        "increasing",
    ),
    ("root-no-histogram", "root", None, "TH1"),
    ("root-random-bytes", "root", lambda: os.urandom(2000), "not a readable ROOT file"),
]


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _observation_cfg(path: Path) -> object:
    return OmegaConf.create({"kind": "file", "path": str(path), "format": None, "key": None})


@pytest.mark.parametrize(
    ("suffix", "content", "needle"),
    [pytest.param(s, c, n, id=i) for i, s, c, n in BAD_FILES],
)
def test_bad_observation_files_get_a_clear_error(
    tmp_path: Path, suffix: str, content: Callable[[], bytes] | None, needle: str
) -> None:
    path = tmp_path / f"data.{suffix}"
    if content is None:
        _root_without_histogram(path)
    else:
        path.write_bytes(content())
    with pytest.raises(OscflowError) as info:
        obs.from_file(_observation_cfg(path), EDGES, integer=True)
    message = str(info.value)
    assert str(path) in message
    assert needle in message
    assert "Fix:" in message
    assert "allow_pickle" not in message  # numpy's hint is not a fix for a data file


@pytest.mark.parametrize("kind", ["truncated-npz", "random-bytes-npz", "csv-binary"])
def test_fit_command_reports_bad_files_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """`oscflow fit ... observation=file observation.path=<file>`: exit code 1 and one message
    naming the file and the fix."""
    suffix, content = next((s, c) for i, s, c, _ in BAD_FILES if i == kind)
    path = tmp_path / f"data.{suffix}"
    assert content is not None
    path.write_bytes(content())
    assert main(["fit", *CHEAP_FIT, "observation=file", f"observation.path={path}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("oscflow fit: error: observation.path:")
    assert str(path) in err
    assert "Fix:" in err
    assert "Traceback" not in err
    assert "allow_pickle" not in err


def test_valid_files_still_load() -> None:
    with tempfile.TemporaryDirectory() as d:
        for suffix, data in (("npz", VALID_NPZ), ("csv", VALID_CSV)):
            path = Path(d) / f"ok.{suffix}"
            path.write_bytes(data)
            got = obs.from_file(_observation_cfg(path), EDGES, integer=True)
            np.testing.assert_array_equal(got.counts, COUNTS)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for all generated files (hypothesis re-runs a test body many times)."""
    return tmp_path_factory.mktemp("fuzz")


def _load_or_clear_error(directory: Path, data: bytes, suffix: str) -> None:
    """The property: a valid finite observation, or an OscflowError naming the file and fix."""
    path = directory / f"obs.{suffix}"
    path.write_bytes(data)
    try:
        got = obs.from_file(_observation_cfg(path), EDGES, integer=True)
    except OscflowError as exc:
        message = str(exc)
    else:
        message = None
    if message is not None:
        assert str(path) in message, message
        assert "Fix:" in message, message
        return
    assert got.counts.shape == (70,)
    assert np.all(np.isfinite(got.counts))
    assert np.all(got.counts >= 0)
    np.testing.assert_array_equal(got.counts, np.round(got.counts))


@PROPERTY
@given(data=st.binary(max_size=4096), suffix=st.sampled_from(["npz", "csv", "root"]))
def test_property_random_bytes_never_escape_as_another_exception(
    fuzz_dir: Path, data: bytes, suffix: str
) -> None:
    _load_or_clear_error(fuzz_dir, data, suffix)


@PROPERTY
@given(data=st.binary(max_size=512))
def test_property_random_zip_like_bytes(fuzz_dir: Path, data: bytes) -> None:
    """Random bytes behind a zip signature (past the format sniffing, into the zip parser)."""
    _load_or_clear_error(fuzz_dir, b"PK\x03\x04" + data, "npz")


@PROPERTY
@given(
    fmt=st.sampled_from(["npz", "csv"]),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=4),
)
def test_property_truncated_or_corrupted_valid_files(
    fuzz_dir: Path, fmt: str, cut: float, flips: list[tuple[float, int]]
) -> None:
    """A valid NPZ/CSV truncated anywhere and with up to 4 bytes overwritten anywhere."""
    valid = VALID_NPZ if fmt == "npz" else VALID_CSV
    data = bytearray(valid[: int(cut * len(valid))] if cut < 1.0 else valid)
    for where, value in flips:
        if data:
            data[min(int(where * len(data)), len(data) - 1)] = value
    _load_or_clear_error(fuzz_dir, bytes(data), fmt)


def test_zip_members_are_not_pickles(tmp_path: Path) -> None:
    """A valid zip whose member is a pickle (what np.load with allow_pickle=True would run):
    refused as not an array, never unpickled."""
    import pickle

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("counts.npy", pickle.dumps(COUNTS))
        z.writestr("bin_edges.npy", _npy_bytes(EDGES))
    path = tmp_path / "pickle.npz"
    path.write_bytes(buf.getvalue())
    with pytest.raises(OscflowError, match=r"member counts.npy is not a NumPy array\. Fix:"):
        obs.from_file(_observation_cfg(path), EDGES, integer=True)


def test_the_resume_fingerprint_changes_with_the_code_that_computes_the_arrays(
    tmp_path: Path,
) -> None:
    """A build killed under one version of the exact model is not resumed by the next: the
    spectra fingerprint carries a hash of the physics, experiments and data sources."""
    from oscflow.data import io

    src = Path(io.__file__).resolve().parents[1]
    for package in io.COMPUTING_PACKAGES:
        shutil.copytree(
            src / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    before = io.code_fingerprint(root=tmp_path)
    assert before == io.code_fingerprint()
    fold = tmp_path / "physics" / "response_fold.py"
    fold.write_text(fold.read_text().replace("GRID_STEP = 0.01", "GRID_STEP = 0.02"))
    assert io.code_fingerprint(root=tmp_path) != before

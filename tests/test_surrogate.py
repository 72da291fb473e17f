"""Surrogate building blocks: seed 001's size, scalers, the fast path, save/load."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from oscflow.errors import ConfigError
from oscflow.surrogate import losses
from oscflow.surrogate.accuracy import accuracy_metrics
from oscflow.surrogate.model import FastSurrogate, SpectrumSurrogate, SurrogateSpec
from oscflow.surrogate.scaling import InputScaler, OutputScaler

RANGES = ((0.268, 0.346), (0.0185, 0.0255), (7.0e-5, 8.07e-5), (2.354e-3, 2.552e-3))
OPTIONS = {
    "seed_mlp": {"hidden": [400, 400], "activation": "relu"},
    "resmlp": {"width": 64, "depth": 2, "activation": "silu", "expansion": 2},
    "pca_mlp": {"hidden": [64, 64], "activation": "silu", "components": 8},
}


def _spec(arch: str, transform: str = "standard", n_bins: int = 400) -> SurrogateSpec:
    return SurrogateSpec(
        experiment="juno",
        inputs=("sin2_th12", "sin2_th13", "dm2_21", "dm2_32"),
        ranges=RANGES,
        bin_edges=tuple(np.linspace(0.8, 8.8, n_bins + 1)),
        energy="prompt",
        exposure={"days": 2191.5, "efficiency": 0.822, "free_protons": 1.44e33},
        architecture=arch,
        options=OPTIONS[arch],
        output_transform=transform,
    )


def _fake_spectra(n: int, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, k)
    return (
        1000 * np.exp(-((x - 0.4) ** 2) / 0.05) * (1 + 0.1 * rng.standard_normal((n, 1)))
    ).astype(np.float32)


def test_seed_mlp_has_seed_001s_322800_parameters() -> None:
    """Seed 001: 4 inputs → 400 → 400 → 400 outputs: 4·400+400 + 2·(400·400+400) = 322,800."""
    assert SpectrumSurrogate(_spec("seed_mlp")).n_parameters() == 322_800


def test_output_scaler_streams_the_same_moments_as_numpy() -> None:
    data = _fake_spectra(1000, 50)
    scaler = OutputScaler(50)
    scaler.fit(data, chunk=97)
    np.testing.assert_allclose(scaler.mean.numpy(), data.astype(np.float64).mean(0), rtol=1e-5)
    np.testing.assert_allclose(scaler.std.numpy(), data.astype(np.float64).std(0), rtol=1e-4)
    y = torch.as_tensor(data[:5])
    np.testing.assert_allclose(scaler.inverse(scaler(y)).numpy(), data[:5], rtol=1e-5)
    log = OutputScaler(50, "log")
    log.fit(data)
    np.testing.assert_allclose(log.inverse(log(y)).numpy(), data[:5], rtol=1e-4)


@pytest.mark.parametrize("transform", ["standard", "log"])
def test_losses_are_the_scaled_mse_and_the_pearson_chi2_of_the_counts(transform: str) -> None:
    """``mse``: seed 001's loss in the output scaler's space; ``pearson``: Σ (ŷ − y)²/y per
    spectrum in counts, batch mean, bins with y = 0 unweighted (the accuracy metrics report
    the same χ² per spectrum); an unknown name is refused."""
    data = _fake_spectra(300, 50)
    surrogate = SpectrumSurrogate(_spec("pca_mlp", transform, n_bins=50), train_spectra=data)
    rng = np.random.default_rng(4)
    lo, hi = np.array(RANGES).T
    params = torch.as_tensor(rng.uniform(lo, hi, size=(7, 4)), dtype=torch.float32)
    truth = torch.as_tensor(data[:7].copy())
    truth[:, :3] = 0.0
    with torch.no_grad():
        pred = surrogate(params).double().numpy()
        scaled = surrogate.scaled(params).double().numpy()
        got_mse = float(losses.get("mse")(surrogate, params, truth))
        got_chi2 = float(losses.get("pearson")(surrogate, params, truth))
        target = surrogate.output_scaler(truth).double().numpy()
    t = truth.double().numpy()
    np.testing.assert_allclose(got_mse, np.mean((scaled - target) ** 2), rtol=1e-5)
    chi2 = np.sum(np.where(t > 0, (pred - t) ** 2 / np.where(t > 0, t, 1.0), 0.0), axis=1)
    np.testing.assert_allclose(got_chi2, chi2.mean(), rtol=1e-4)
    metrics = accuracy_metrics(pred, t)  # the test split's bound on the fit bias, same χ²
    np.testing.assert_allclose(metrics["pearson_chi2_max"], chi2.max(), rtol=1e-10)
    np.testing.assert_allclose(metrics["pearson_chi2_median"], np.median(chi2), rtol=1e-10)
    with pytest.raises(ConfigError, match=r"loss: unknown loss 'l1'.*mse.*pearson"):
        losses.get("l1")


def test_input_scaler_maps_the_box_to_minus_one_one() -> None:
    scaler = InputScaler([r[0] for r in RANGES], [r[1] for r in RANGES])
    lo = torch.tensor([[r[0] for r in RANGES]], dtype=torch.float64).float()
    hi = torch.tensor([[r[1] for r in RANGES]], dtype=torch.float64).float()
    np.testing.assert_allclose(scaler(lo).numpy(), -1.0, atol=1e-5)
    np.testing.assert_allclose(scaler(hi).numpy(), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="hi > lo"):
        InputScaler([1.0], [0.0])


@pytest.mark.parametrize("arch", sorted(OPTIONS))
def test_fast_path_equals_the_module_and_survives_save_load(arch: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SpectrumSurrogate(_spec(arch), train_spectra=_fake_spectra(300, 400))
    params = np.array(
        [[np.random.default_rng(i).uniform(lo, hi) for lo, hi in RANGES] for i in range(7)]
    )
    with torch.no_grad():
        ref = model(torch.as_tensor(params, dtype=torch.float32)).double().numpy()
    fast = FastSurrogate(model)
    np.testing.assert_allclose(fast.predict(params), ref, rtol=2e-4, atol=1e-3)
    np.testing.assert_allclose(fast.predict(params[0]), ref[:1], rtol=2e-4, atol=1e-3)
    named = fast.predict_named({k: params[:, j] for j, k in enumerate(fast.inputs)})
    np.testing.assert_allclose(named, ref, rtol=2e-4, atol=1e-3)
    path = model.save(tmp_path / "m.pt")
    again = FastSurrogate(SpectrumSurrogate.load(path))
    np.testing.assert_allclose(again.predict(params), fast.predict(params), rtol=1e-6)
    with pytest.raises(ValueError, match="missing surrogate inputs"):
        fast.predict_named({"sin2_th12": 0.3})


def test_pca_head_explains_the_training_variance() -> None:
    from oscflow.surrogate.architectures.pca_mlp import PCAHead

    head = PCAHead(4, 400, [8], "silu", k=3)
    rng = np.random.default_rng(1)
    basis = rng.standard_normal((3, 400))
    data = torch.as_tensor(rng.standard_normal((500, 3)) @ basis, dtype=torch.float32)
    assert head.fit(data) == pytest.approx(1.0, abs=1e-6)


def test_unknown_architecture_names_the_choices() -> None:
    spec = _spec("seed_mlp")
    bad = SurrogateSpec(**{**spec.__dict__, "architecture": "transformer"})
    with pytest.raises(ValueError, match="unknown architecture 'transformer'; choose one of"):
        SpectrumSurrogate(bad)


def test_batch_sampler_is_seeded_and_shards_by_rank() -> None:
    from oscflow.surrogate.datamodule import _BatchSampler

    a = [b.tolist() for b in _BatchSampler(100, 16, True, seed=3)]
    b = [b.tolist() for b in _BatchSampler(100, 16, True, seed=3)]
    assert a == b
    assert sorted(i for batch in a for i in batch) == list(range(100))
    ranks = [list(_BatchSampler(100, 16, True, seed=3, rank=r, world=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 3
    seen = [i for r in ranks for batch in r for i in batch.tolist()]
    assert len(seen) == len(set(seen)) == 96


def _tiny_dataset(directory: Path, sizes: dict[str, int], n_bins: int = 7) -> Path:
    """A spectra dataset directory as the ``spectra`` stage writes it (meta.json + .npy)."""
    from oscflow.data.io import write_json
    from oscflow.data.spectra import FORMAT

    directory.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for split, n in sizes.items():
        np.save(directory / f"{split}_params.npy", rng.random((n, 4), dtype=np.float32))
        np.save(directory / f"{split}_spectra.npy", rng.random((n, n_bins), dtype=np.float32))
    write_json(
        directory / "meta.json",
        {
            "format": FORMAT,
            "inputs": ["a", "b", "c", "d"],
            "energy": "prompt",
            "bin_edges": list(np.linspace(0.8, 8.8, n_bins + 1)),
        },
    )
    return directory


def test_in_memory_batches_are_the_memory_mapped_ones(tmp_path: Path) -> None:
    """Small splits are held as tensors by default and give, epoch after epoch, exactly the
    batches that the memory-mapped DataLoader path reads (same seeded order); large ones, or
    ``in_memory=False``, keep the DataLoader."""
    from torch.utils.data import DataLoader

    from oscflow.surrogate import datamodule as dmod

    data = _tiny_dataset(tmp_path / "d", {"train": 103, "val": 20, "test": 20})
    mapped = dmod.SpectraDataModule(data, batch_size=16, seed=4, in_memory=False)
    held = dmod.SpectraDataModule(data, batch_size=16, seed=4)
    assert isinstance(mapped.train_dataloader(), DataLoader)
    fast, slow = held.train_dataloader(), mapped.train_dataloader()
    assert isinstance(fast, dmod.TensorBatches)
    assert len(fast) == len(slow) == 7
    for _epoch in range(2):
        pairs = list(zip(fast, slow, strict=True))
        for (p1, s1), (p2, s2) in pairs:
            assert p1.dtype == s1.dtype == torch.float32
            assert torch.equal(p1, p2)
            assert torch.equal(s1, s2)
    loader = held.train_dataloader()
    first, second = list(loader), list(loader)
    assert not torch.equal(first[0][0], second[0][0])  # a new permutation per epoch
    val = held.val_dataloader()
    assert isinstance(val, dmod.TensorBatches)
    ((params, _spectra),) = list(val)
    assert torch.equal(params, torch.from_numpy(np.load(data / "val_params.npy")))
    small = dmod.IN_MEMORY_BYTES
    try:
        dmod.IN_MEMORY_BYTES = 100  # a split larger than this stays memory-mapped
        assert isinstance(held.train_dataloader(), DataLoader)
    finally:
        dmod.IN_MEMORY_BYTES = small


@pytest.mark.parametrize("activation", ["relu", "silu"])
def test_float64_path_equals_the_float32_module_and_returns_fresh_arrays(activation) -> None:
    """Fits evaluate the same folded network in double precision (FastSurrogate.float64);
    every activation is supported, and one call's result survives the next call. The numpy
    form of the chain (``float64_rows``, a fit's one-row calls) is the same function."""
    spec = dataclasses.replace(
        _spec("seed_mlp"), options={"hidden": [64, 64], "activation": activation}
    )
    model = SpectrumSurrogate(spec, _fake_spectra(64, 400)).eval()
    fast = FastSurrogate(model)
    f64 = fast.float64()
    lo, hi = np.array(RANGES).T
    x = lo + (hi - lo) * np.random.default_rng(3).random((5, 4))
    with torch.no_grad():
        ref = model(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    first = f64(torch.from_numpy(x))
    kept = first.clone()
    f64(torch.from_numpy(x[::-1].copy()))
    assert first.dtype == torch.float64
    assert torch.equal(first, kept)
    np.testing.assert_allclose(first.numpy(), ref, rtol=1e-4, atol=1e-3)
    rows = fast.float64_rows()
    np.testing.assert_allclose(rows(x), first.numpy(), rtol=1e-13, atol=1e-9)


@pytest.mark.parametrize(
    ("arch", "options", "n_params", "name"),
    [
        (
            "seed_mlp",
            {"hidden": [400, 400], "activation": "silu"},
            322_800,
            "seed_mlp-400x400-silu-323k",
        ),
        (
            "seed_mlp",
            {"hidden": [400, 400], "activation": "relu"},
            322_800,
            "seed_mlp-400x400-323k",
        ),
        ("seed_mlp", {"hidden": [32, 32], "activation": "silu"}, 14_480, "seed_mlp-32x32-silu-14k"),
        ("resmlp", {"width": 256, "depth": 3, "expansion": 2}, 1_234_567, "resmlp-w256d3-1235k"),
        ("pca_mlp", {"hidden": [256, 256], "components": 32}, 75_000, "pca_mlp-256x256-k32-75k"),
        ("pca_mlp", {"hidden": [64], "components": 8}, 499, "pca_mlp-64-k8-0k"),
    ],
)
def test_each_architecture_names_its_runs(arch, options, n_params, name) -> None:
    """`<architecture>-<shape>-<parameters>`: the names oscflow train has always given."""
    from oscflow.surrogate import architectures

    assert architectures.run_name(arch, options, n_params) == name


def test_an_architecture_without_a_shape_is_named_custom() -> None:
    from oscflow.surrogate import architectures

    architectures.register("test_noshape")(lambda n_in, n_out, *_: torch.nn.Linear(n_in, n_out))
    try:
        assert architectures.run_name("test_noshape", {}, 2005) == "test_noshape-custom-2k"
        # registering first does not hide the built-in architectures
        assert {"seed_mlp", "resmlp", "pca_mlp"} <= set(architectures.ARCHITECTURES)
    finally:
        del architectures.ARCHITECTURES["test_noshape"]
    with pytest.raises(ValueError, match="unknown architecture 'test_noshape'"):
        architectures.run_name("test_noshape", {}, 1)


def test_small_batches_run_on_one_torch_thread_and_restore_the_count() -> None:
    from oscflow.surrogate.threads import SMALL_BATCH, threads_for

    n = torch.get_num_threads()
    with threads_for(SMALL_BATCH):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == n
    with threads_for(SMALL_BATCH + 1):
        assert torch.get_num_threads() == n


def test_training_runs_on_the_configured_intra_op_threads_and_restores_them() -> None:
    """``threads`` (default 1) holds inside the fit only; 0 keeps torch's default; a
    negative count is refused with its fix."""
    from oscflow import config, train
    from oscflow.errors import ConfigError
    from oscflow.surrogate.threads import intra_op_threads

    before = torch.get_num_threads()
    assert train.training_threads(config.load("train", [])) == 1
    assert train.training_threads(config.load("train", ["threads=0"])) is None
    with pytest.raises(ConfigError, match="threads"):
        train.training_threads(config.load("train", ["threads=-2"]))
    target = 2 if before == 1 else 1
    with intra_op_threads(target):
        assert torch.get_num_threads() == target
    assert torch.get_num_threads() == before
    with intra_op_threads(None):
        assert torch.get_num_threads() == before

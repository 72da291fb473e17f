"""``SpectrumSurrogate``: scalers + architecture + the metadata that says what it predicts.

Saved as one ``.pt`` file holding only tensors and plain Python values (``torch.load`` with
``weights_only=True`` reads it): the architecture is rebuilt from its plug-in name and options.
``FastSurrogate`` is the inference path for fits: scalings folded into the first and last
layers where the architecture allows, no autograd, float32, no pandas.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit
from torch import nn

from ..errors import ConfigError
from .architectures import Axis, build, build_physical, get
from .scaling import InputScaler, OutputScaler

FORMAT = "oscflow.surrogate/1"


@dataclass(frozen=True)
class SurrogateSpec:
    """What a surrogate maps: named inputs (with their training ranges) to binned counts.

    ``fixed``: values of the parameters that are not inputs; ``trained_with``: the experiment
    settings its training data assumed, flat (``{"experiment.oscillation.ordering": "normal",
    …}``, ``registry.reactors.trained_settings``), against which every request is checked
    (``registry.reactors.SurrogateReactors.check_request``). Empty for models saved before
    oscflow recorded it (their training run's params stand in).
    """

    experiment: str
    inputs: tuple[str, ...]
    ranges: tuple[tuple[float, float], ...]
    bin_edges: tuple[float, ...]
    energy: str
    exposure: Mapping[str, float]
    architecture: str
    options: Mapping[str, Any] = field(default_factory=dict)
    output_transform: str = "standard"
    fixed: Mapping[str, float] = field(default_factory=dict)
    trained_with: Mapping[str, str] = field(default_factory=dict)
    # Inputs the dataset sampled on a log scale (``meta["scales"]``): the network sees log x.
    log_inputs: tuple[str, ...] = ()

    @property
    def n_out(self) -> int:
        return len(self.bin_edges) - 1

    @classmethod
    def from_meta(
        cls,
        meta: Mapping[str, Any],
        architecture: str,
        options: Mapping[str, Any],
        output_transform: str,
        trained_with: Mapping[str, str] | None = None,
    ) -> SurrogateSpec:
        """From a spectra dataset's ``meta.json`` (and the settings it was built with)."""
        inputs = tuple(meta["inputs"])
        return cls(
            experiment=str(meta["experiment"]),
            inputs=inputs,
            # meta.json's ranges are [lo, hi] pairs (mypy sees tuples of any length)
            ranges=tuple(tuple(float(x) for x in meta["ranges"][k]) for k in inputs),  # type: ignore[misc]
            bin_edges=tuple(float(x) for x in meta["bin_edges"]),
            energy=str(meta["energy"]),
            exposure={k: float(v) for k, v in meta["exposure"].items()},
            architecture=architecture,
            options=dict(options),
            output_transform=output_transform,
            fixed={k: float(v) for k, v in meta.get("fixed", {}).items()},
            trained_with={str(k): str(v) for k, v in (trained_with or {}).items()},
            log_inputs=tuple(k for k in inputs if (meta.get("scales") or {}).get(k) == "log"),
        )


class SpectrumSurrogate(nn.Module):
    """Physical parameters (B, n_in) → expected counts (B, n_bins) at ``spec.exposure``."""

    def __init__(
        self,
        spec: SurrogateSpec,
        train_spectra: NDArray[np.floating] | None = None,
        sample: int = 100_000,
    ) -> None:
        """With ``train_spectra`` (N, K; may be a memmap) the output scaler is fitted on them and
        data-dependent architectures (PCA head) see up to ``sample`` scaled rows."""
        super().__init__()
        self.spec = spec
        lo, hi = zip(*spec.ranges, strict=True)
        self.input_scaler = InputScaler(lo, hi, [k in spec.log_inputs for k in spec.inputs])
        self.output_scaler = OutputScaler(spec.n_out, spec.output_transform)
        # A physical architecture maps inputs in their units to counts (architectures/).
        self.physical = get(spec.architecture).physical
        if self.physical and spec.output_transform != "standard":
            raise ConfigError(
                "model.output_transform",
                f"{spec.output_transform!r}: architecture {spec.architecture!r} predicts counts, "
                "which may dip below zero while it trains",
                "set model.output_transform=standard",
            )
        fit_outputs = fit_counts = None
        if train_spectra is not None:
            if train_spectra.shape[1] != spec.n_out:
                msg = f"training spectra have {train_spectra.shape[1]} bins, the model {spec.n_out}"
                raise ValueError(msg)
            self.output_scaler.fit(train_spectra)
            rows = np.unique(
                np.linspace(0, len(train_spectra) - 1, min(sample, len(train_spectra))).astype(int)
            )

            def fit_counts() -> torch.Tensor:
                return torch.as_tensor(np.asarray(train_spectra[rows], dtype=np.float32))

            def fit_outputs() -> torch.Tensor:
                with torch.no_grad():
                    return self.output_scaler(fit_counts())

        if self.physical:
            axes = [
                Axis(k, lo_k, hi_k, k in spec.log_inputs)
                for k, (lo_k, hi_k) in zip(spec.inputs, spec.ranges, strict=True)
            ]
            self.net = build_physical(
                spec.architecture, axes, spec.bin_edges, spec.options, fit_counts
            )
        else:
            self.net = build(
                spec.architecture, len(spec.inputs), spec.n_out, spec.options, fit_outputs
            )

    def scaled(self, params: torch.Tensor) -> torch.Tensor:
        """Network output in the output scaler's space (what the loss compares)."""
        if self.physical:
            return self.output_scaler(self.net(params))
        return self.net(self.input_scaler(params))

    def forward(self, params: torch.Tensor) -> torch.Tensor:
        if self.physical:
            return self.net(params)
        return self.output_scaler.inverse(self.scaled(params))

    def n_parameters(self) -> int:
        """Trainable parameters of the network (seed 001 counts 322,800 for seed_mlp)."""
        return sum(p.numel() for p in self.net.parameters() if p.requires_grad)

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        spec = _plain(asdict(self.spec))
        torch.save({"format": FORMAT, "spec": spec, "state_dict": self.state_dict()}, tmp)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SpectrumSurrogate:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob.get("format") != FORMAT:
            msg = f"{path}: not an oscflow surrogate (format {blob.get('format')!r})"
            raise ValueError(msg)
        raw = blob["spec"]
        spec = SurrogateSpec(
            **{
                **raw,
                "inputs": tuple(raw["inputs"]),
                "ranges": tuple(tuple(r) for r in raw["ranges"]),
                "bin_edges": tuple(raw["bin_edges"]),
                "log_inputs": tuple(raw.get("log_inputs", ())),
            }
        )
        model = cls(spec)
        model.load_state_dict(blob["state_dict"])
        model.eval()
        return model


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class FastSurrogate:
    """Inference-only wrapper: ``predict(params)`` with params (B, n_in) or (n_in,) array-like in
    the order of ``spec.inputs``; returns float64 counts (B, n_bins). For plain MLPs (Sequential
    of Linear and activations, or an architecture's ``sequential()`` equivalent: pca_mlp) with
    ``standard`` outputs the scalers are folded into the first and last Linear layers, so a
    call is just the layers."""

    def __init__(self, model: SpectrumSurrogate, device: str | torch.device = "cpu") -> None:
        self.spec = model.spec
        self.device = torch.device(device)
        model = model.to(self.device).eval()
        net = model.net
        if hasattr(net, "sequential"):  # an architecture that is a plain chain in disguise
            net = net.sequential()
        if isinstance(net, nn.Sequential) and self.spec.output_transform == "standard":
            layers = list(net)
            first, last = layers[0], layers[-1]
            assert isinstance(first, nn.Linear)
            assert isinstance(last, nn.Linear)
            sc_in, sc_out = model.input_scaler, model.output_scaler
            with torch.no_grad():
                # Input folding: W(x − c)/h + b = (W/h) x + (b − W c/h).
                w0 = first.weight / sc_in.halfwidth[None, :]
                b0 = first.bias - (first.weight * (sc_in.centre / sc_in.halfwidth)[None, :]).sum(1)
                if len(layers) == 1:
                    w_last, b_last, middle = w0, b0, []
                else:
                    w_last, b_last, middle = (
                        last.weight,
                        last.bias,
                        [_linear(w0, b0), *layers[1:-1]],
                    )
                # Output folding: y = z·std + mean.
                w1 = w_last * sc_out.std[:, None]
                b1 = b_last * sc_out.std + sc_out.mean
            folded: list[nn.Module] = [*middle, _linear(w1, b1)]
            if sc_in.log is not None:  # log x first, then the folded affine map
                folded.insert(0, sc_in.log)
            self._fn: Any = _AddmmChain(folded)
        else:
            for p in model.parameters():
                p.requires_grad_(False)
            self._fn = model

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.spec.inputs

    def float64(self) -> Any:
        """The same network (scalings folded alike) in double precision: a callable tensor
        (B, n_in) float64 → counts (B, K) float64 on ``self.device``, no autograd. Fits use it:
        float32 rounding makes a χ² of ~400 jitter by ~1e-4, above MIGRAD's EDM goal."""
        if isinstance(self._fn, _AddmmChain):
            return self._fn.double()
        module = copy.deepcopy(self._fn).double().eval()

        def evaluate(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return module(x)

        return evaluate

    def float64_rows(self) -> Any:
        """``float64`` as a numpy function of (B, n_in) arrays for a plain chain on the CPU
        (``_AddmmChain.numpy_float64``: less per-call overhead on a fit's few rows), else None."""
        if isinstance(self._fn, _AddmmChain) and self.device.type == "cpu":
            return self._fn.numpy_float64()
        return None

    def float64_jacobian(self) -> Any:
        """The float64 network with its Jacobian: a callable tensor x (B, n_in) float64 →
        (counts (B, K), ∂counts/∂x (B, K, n_in)), both float64 on ``self.device``.

        A plain MLP (``_AddmmChain``) carries its input tangents through its layers
        (``_AddmmChain.value_and_jacobian``: a 2-input Daya Bay pca_mlp, one row, 0.2 ms
        instead of 7 ms). Other networks: forward-mode autograd,
        ``torch.func.vmap(torch.func.jacfwd(f, has_aux=True))`` over the rows (each row's Jacobian is n_in forward tangents through the network; the
        counts come out of the same pass as the auxiliary output). Chosen by
        ``benchmarks/bench_surrogate_jacobian.py`` (seed 001's 4 → 400 → 400 → 400, float64,
        2 loaded cores, µs per row at B = 64 / 2048 rows): vmap(jacfwd) 3750 / 390;
        vmap(jacrev) 26800 / – (one backward pass per output bin); autograd.functional.
        jacobian of the batch-summed outputs 98400 (reverse) and 30200 (forward-mode, one
        tangent per input element: 50 GB at B = 2048) / –.
        Exact for the network (no finite differences): a ReLU network's Jacobian is its
        one-sided derivative at a kink."""
        import warnings

        from torch.func import jacfwd, vmap

        with warnings.catch_warnings():
            # torch 2.13 scripts its forward-mode decompositions on first use and warns that
            # torch.jit.script is deprecated: torch's own internals, nothing to act on here.
            warnings.filterwarnings(
                "ignore", "`torch.jit.script` is deprecated", DeprecationWarning
            )
            import torch._decomp.decompositions_for_jvp  # noqa: F401

        if isinstance(self._fn, _AddmmChain):
            return self._fn.double().value_and_jacobian
        module = copy.deepcopy(self._fn).double().eval()
        for p in module.parameters():
            p.requires_grad_(False)

        def f(x: torch.Tensor) -> torch.Tensor:
            return module(x)

        def single(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            y = f(x[None, :])[0]
            return y, y

        # Rows in chunks: a physical architecture's intermediates scale with rows × tangents.
        jac_fn = vmap(jacfwd(single, has_aux=True), chunk_size=256)

        def evaluate(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            jac, y = jac_fn(x)
            return y, jac

        return evaluate

    @property
    def bin_edges(self) -> NDArray[np.float64]:
        return np.asarray(self.spec.bin_edges)

    def predict(self, params: ArrayLike) -> NDArray[np.float64]:
        # No grad context needed: nothing here requires grad, so autograd records nothing.
        a = np.asarray(params, dtype=np.float32)
        x = torch.from_numpy(np.ascontiguousarray(a[None, :] if a.ndim == 1 else a))
        if self.device.type != "cpu":
            x = x.to(self.device)
        return self._fn(x).cpu().numpy().astype(np.float64)

    def predict_named(self, params: Mapping[str, ArrayLike]) -> NDArray[np.float64]:
        """Same, with a mapping name → value(s); every input of ``spec.inputs`` is required."""
        missing = [k for k in self.inputs if k not in params]
        if missing:
            msg = f"missing surrogate inputs {missing}; this model takes {list(self.inputs)}"
            raise ValueError(msg)
        cols = [np.atleast_1d(np.asarray(params[k], dtype=np.float64)) for k in self.inputs]
        return self.predict(np.stack(np.broadcast_arrays(*cols), axis=1))

    def timing(self, batch: int = 4096, repeats: int = 5) -> dict[str, float]:
        """Median single-spectrum latency (s) and batched throughput (spectra/s) here."""
        centre = np.array([(lo + hi) / 2 for lo, hi in self.spec.ranges], dtype=np.float32)
        single = centre[None, :]
        for _ in range(50):
            self.predict(single)
        laps = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(200):
                self.predict(single)
            laps.append((time.perf_counter() - t0) / 200)
        many = np.repeat(single, batch, axis=0)
        self.predict(many)
        rates = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.predict(many)
            rates.append(batch / (time.perf_counter() - t0))
        return {
            "latency_single_s": float(np.median(laps)),
            "throughput_per_s": float(np.median(rates)),
        }


def _value_and_derivative(act: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """An elementwise activation and its derivative at x: closed forms for SiLU (σ(x)(1 + x(1 −
    σ(x)))) and tanh (1 − tanh²), ``torch.func.jvp`` with unit tangents for any other (its
    per-call overhead is ~10× the closed forms' on a fit's small batches)."""
    if isinstance(act, nn.SiLU):  # the value as the module computes it: the same bits
        sig = torch.sigmoid(x)
        return torch.nn.functional.silu(x), sig * (1.0 + x * (1.0 - sig))
    if isinstance(act, nn.Tanh):
        y = torch.tanh(x)
        return y, 1.0 - y * y
    return torch.func.jvp(act, (x,), (torch.ones_like(x),))


class _AddmmChain:
    """Linear layers as ``torch.addmm`` on pre-transposed weights, activations as functions:
    the per-call overhead of module dispatch is ~5 µs per layer, comparable to the maths.
    Output buffers are kept per batch size (up to ``MAX_BUFFERED_BATCH`` rows, the last few
    sizes), so repeated calls do not fault in fresh pages; the returned tensor may be such a
    buffer, valid until the next call with the same batch size."""

    MAX_BUFFERED_BATCH = 16384
    MAX_SIZES = 4

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        self.ops: list[tuple[str, Any, Any]] = []
        for layer in layers:
            if isinstance(layer, nn.Linear):
                w = layer.weight.detach().t().contiguous()
                self.ops.append(("linear", w, layer.bias.detach().clone()))
            elif isinstance(layer, nn.ReLU):
                self.ops.append(("relu", None, None))
            else:
                self.ops.append(("act", layer.eval().requires_grad_(False), None))
        self._buffers: dict[tuple[int, torch.device], list[torch.Tensor]] = {}
        self.max_buffered = self.MAX_BUFFERED_BATCH

    def double(self) -> _AddmmChain:
        """A float64 copy (activation modules are stateless here, copied and cast) that
        returns fresh tensors: callers keep its results (a fit's previous prediction)."""
        twin = copy.copy(self)
        twin.ops = [
            (kind, a.double(), b.double())
            if kind == "linear"
            else (kind, copy.deepcopy(a).double() if a is not None else None, None)
            for kind, a, b in self.ops
        ]
        twin._buffers, twin.max_buffered = {}, 0
        return twin

    def numpy_float64(self) -> Any:
        """The chain as a numpy float64 function of (B, n_in) arrays, or None where a layer has
        no numpy form here (only Linear, ReLU, SiLU, Tanh). For a fit's one-row calls: numpy's
        per-op overhead is ~1 µs against torch's ~3–5 µs (the Daya Bay nuisance network,
        6 ops: 44 µs instead of 56 µs)."""
        layers: list[Any] = []
        for kind, a, b in self.ops:
            if kind == "linear":
                layers.append(
                    (a.detach().double().cpu().numpy(), b.detach().double().cpu().numpy())
                )
            elif kind == "relu":
                layers.append(_numpy_relu)
            elif isinstance(a, nn.SiLU):
                layers.append(_numpy_silu)
            elif isinstance(a, nn.Tanh):
                layers.append(np.tanh)
            else:
                return None

        def f(x: NDArray[np.float64]) -> NDArray[np.float64]:
            for layer in layers:
                x = x @ layer[0] + layer[1] if isinstance(layer, tuple) else layer(x)
            return x

        return f

    def functional(self) -> Any:
        """The same layers as a pure function (no in-place activations, no output buffers):
        what ``torch.func`` transforms (``FastSurrogate.float64_jacobian``) need."""
        ops = list(self.ops)

        def f(x: torch.Tensor) -> torch.Tensor:
            for kind, a, b in ops:
                if kind == "linear":
                    x = torch.addmm(b, x, a)
                elif kind == "relu":
                    x = torch.relu(x)
                else:
                    x = a(x)
            return x

        return f

    def value_and_jacobian(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(y (B, K), ∂y/∂x (B, K, n_in)) in one forward-mode pass: the n_in tangents ride
        along each layer (a linear layer maps them by its weight, an activation scales them by
        its elementwise derivative, ``_value_and_derivative``: every op of the chain is
        elementwise or linear). ~30× cheaper than ``vmap(jacfwd)`` per call on
        the small batches of a fit, whose cost is functorch's per-call overhead."""
        n = x.shape[1]
        t = torch.eye(n, dtype=x.dtype, device=x.device).expand(x.shape[0], n, n)
        for kind, a, b in self.ops:
            if kind == "linear":
                x = torch.addmm(b, x, a)
                t = t @ a
            elif kind == "relu":
                t = t * (x > 0).to(x.dtype)[:, None, :]
                x = torch.relu(x)
            else:
                x, d = _value_and_derivative(a, x)
                t = t * d[:, None, :]
        return x, t.transpose(1, 2)

    def _outputs(self, n: int, device: torch.device) -> list[torch.Tensor] | None:
        if n > self.max_buffered:
            return None
        key = (n, device)
        if key not in self._buffers:
            if len(self._buffers) >= self.MAX_SIZES:
                self._buffers.pop(next(iter(self._buffers)))
            self._buffers[key] = [
                torch.empty((n, w.shape[1]), dtype=w.dtype, device=device)
                for kind, w, _ in self.ops
                if kind == "linear"
            ]
        return self._buffers[key]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        outs = self._outputs(x.shape[0], x.device)
        i = 0
        for kind, a, b in self.ops:
            if kind == "linear":
                x = torch.addmm(b, x, a) if outs is None else torch.addmm(b, x, a, out=outs[i])
                i += 1
            elif kind == "relu":
                x = x.relu_()
            else:
                x = a(x)
        return x


def _numpy_silu(x: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = x * expit(x)
    return out


def _numpy_relu(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.maximum(x, 0.0)


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device)
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer

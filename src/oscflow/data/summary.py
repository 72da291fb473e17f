"""``oscflow summary``: what the dataset pipeline produced, and where it went."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from omegaconf import DictConfig

from .io import load_array, read_meta
from .simulate import pairs_dir
from .spectra import SPLITS, spectra_dir


def _dvc_outs(root: Path) -> dict[str, dict[str, Any]]:
    lock = root / "dvc.lock"
    if not lock.is_file():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    return {
        out["path"]: {
            "stage": name,
            "md5": out.get("md5"),
            "size": out.get("size"),
            "nfiles": out.get("nfiles"),
        }
        for name, stage in stages.items()
        for out in stage.get("outs", [])
    }


def _dvc_remote(root: Path) -> dict[str, str] | None:
    cfg_path = root / ".dvc" / "config"
    if not cfg_path.is_file():
        return None
    parser = configparser.ConfigParser()
    parser.read(cfg_path)
    default = parser.get("core", "remote", fallback=None)
    if default is None:
        return None
    url = parser.get(f"'remote \"{default}\"'", "url", fallback=None)
    if url is None:
        return None
    resolved = (cfg_path.parent / url).resolve() if "://" not in url else url
    return {"name": default, "url": url, "path": str(resolved)}


def run(cfg: DictConfig) -> dict[str, Any]:
    root = Path(cfg.paths.root_dir).resolve()
    pdir, sdir = pairs_dir(cfg), spectra_dir(cfg)
    pmeta, smeta = read_meta(pdir), read_meta(sdir)
    enu = load_array(pdir, "enu")
    splits = {}
    for split in SPLITS:
        spectra = load_array(sdir, f"{split}_spectra")
        totals = np.sum(spectra, axis=1, dtype=np.float64)
        splits[split] = {
            "n_spectra": int(spectra.shape[0]),
            "events_per_spectrum_mean": float(totals.mean()),
            "events_per_spectrum_min": float(totals.min()),
            "events_per_spectrum_max": float(totals.max()),
        }
    outs = _dvc_outs(root)
    return {
        "experiment": smeta["experiment"],
        "dataset": smeta["dataset"],
        "pairs": {
            "path": str(pdir),
            "n_pairs": pmeta["n_pairs"],
            "enu_mean_mev": float(np.mean(enu)),
            "dvc": outs.get(str(pdir.relative_to(root)) if pdir.is_absolute() else str(pdir)),
        },
        "spectra": {
            "path": str(sdir),
            "energy": smeta["energy"],
            "bins": len(smeta["bin_edges"]) - 1,
            "window_mev": [smeta["bin_edges"][0], smeta["bin_edges"][-1]],
            "inputs": smeta["inputs"],
            "ranges": smeta["ranges"],
            "exposure": smeta["exposure"],
            "splits": splits,
            "dvc": outs.get(str(sdir.relative_to(root)) if sdir.is_absolute() else str(sdir)),
        },
        "dvc_remote": _dvc_remote(root),
    }


def format_summary(s: dict[str, Any]) -> str:
    sp = s["spectra"]
    lines = [
        f"Dataset {s['experiment']}/{s['dataset']}",
        f"  MC pairs : {s['pairs']['n_pairs']:,} events (mean E_nu {s['pairs']['enu_mean_mev']:.3f} MeV) -> {s['pairs']['path']}",
        (
            f"  spectra  : {sp['energy']} energy {sp['window_mev'][0]:g}-"
            f"{sp['window_mev'][1]:g} MeV in {sp['bins']} bins, "
            f"inputs {', '.join(sp['inputs'])} -> {sp['path']}"
        ),
        f"  exposure : {sp['exposure']['days']:g} days, efficiency {sp['exposure']['efficiency']:g}",
    ]
    for split, info in sp["splits"].items():
        lines.append(
            f"  {split:<5}    {info['n_spectra']:>8,} spectra, IBD events per spectrum "
            f"{info['events_per_spectrum_mean']:,.0f} (min {info['events_per_spectrum_min']:,.0f}, "
            f"max {info['events_per_spectrum_max']:,.0f})"
        )
    for label, info in (("pairs", s["pairs"].get("dvc")), ("spectra", sp.get("dvc"))):
        if info:
            lines.append(
                f"  dvc      : {label} md5 {info['md5']} ({info['nfiles']} files, {info['size']:,} bytes)"
            )
    if s.get("dvc_remote"):
        lines.append(
            f"  remote   : DVC remote '{s['dvc_remote']['name']}' at {s['dvc_remote']['path']}"
        )
    return "\n".join(lines)

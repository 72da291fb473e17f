"""The DVC stage ``dayabay_official``: ``python -m oscflow.data.dayabay_official [overrides]``
computes what fits need of the Daya Bay official model (``experiments.dayabay.store``) and
writes it to ``experiment.official_inputs`` of the fit config (``experiment=dayabay``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..errors import ConfigError
from ..experiments.dayabay.store import KEY, from_official


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m oscflow.data.dayabay_official [overrides]``: write
    ``experiment.official_inputs`` of the fit config (``experiment=dayabay``)."""
    from ..config import load
    from ..experiments.dayabay.model import build

    cfg = load("fit", ["experiment=dayabay", *(sys.argv[1:] if argv is None else argv)])
    target = cfg.experiment.get("official_inputs")
    if not target:
        raise ConfigError(KEY, "no path configured", "set experiment.official_inputs=<file.npz>")
    experiment = build(cfg.experiment)
    inputs = from_official(experiment.official(), experiment.options)
    md5 = inputs.save(target)
    print(f"{target}: {inputs.nbins} bins, {inputs.constraints.size} constraints, md5 {md5}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

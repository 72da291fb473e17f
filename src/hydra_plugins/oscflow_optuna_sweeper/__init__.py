"""Hydra sweeper plugin on Optuna 5: ``hydra/sweeper=oscflow_optuna`` (see ``sweeper.py``)."""

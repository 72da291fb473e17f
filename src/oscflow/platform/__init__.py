"""The local stack: ``oscflow up|down|status`` start, stop and inspect the MLflow server, the
event intake and the workers that ``up`` started (pid files under ``state_dir``)."""

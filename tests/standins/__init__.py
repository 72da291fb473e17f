"""Stand-in services for platform tests, importable as ``standins.<name>`` (tests/ is on the
worker processes' PYTHONPATH)."""

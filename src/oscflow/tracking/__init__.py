"""MLflow conventions: experiment and run names, params, tags, dataset lineage."""

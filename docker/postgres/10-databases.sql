-- Runs once, on the first start with an empty data volume (docker-entrypoint-initdb.d).
-- POSTGRES_DB creates the MLflow database; Optuna gets its own, because both keep an
-- Alembic `alembic_version` table and cannot share a schema.
CREATE DATABASE optuna;

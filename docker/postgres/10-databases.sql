-- Runs once, on the first start with an empty data volume (docker-entrypoint-initdb.d).
-- POSTGRES_DB creates the MLflow database; the others get their own, because MLflow, its
-- authentication app and Optuna each keep an Alembic `alembic_version` table and cannot share
-- a schema. The compose healthcheck queries `ledger`, the last one, so "healthy" means this
-- whole script has run. A volume created before a database was added here needs it created by
-- hand: docker compose exec postgres psql -U "$POSTGRES_USER" -d mlflow -c 'CREATE DATABASE …'
CREATE DATABASE optuna;
-- MLflow's basic-auth users and permissions (docker/mlflow/basic_auth.ini).
CREATE DATABASE mlflow_auth;
-- oscflow's event ledger: delivery ids, events, jobs, leases (OSCFLOW_LEDGER_URL).
CREATE DATABASE ledger;

# MLflow tracking server + model registry for the team-scale stack (docker/compose.yaml).
# PostgreSQL backend (psycopg2), S3/MinIO artifacts (boto3) and the basic-auth app (the `auth`
# extra: Flask-WTF) need packages the plain mlflow wheel does not bring, hence this small image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install "mlflow[auth]==3.17.2" "psycopg2-binary>=2.9" "boto3>=1.34"

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin mlflow
USER mlflow
WORKDIR /home/mlflow

EXPOSE 5000
ENTRYPOINT ["mlflow"]
CMD ["server", "--help"]

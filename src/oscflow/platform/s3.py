"""The stack's S3-compatible object store: MLflow's artifacts (an ``s3://`` value of
``mlflow.artifacts_destination``, which the MLflow server proxies: clients never talk to S3)
and the DVC remote (``s3.dvc_remote``), both on ``s3.endpoint_url`` (MinIO, AWS, or with
``s3.serve=true`` a local server ``oscflow up`` starts: ``oscflow.platform.s3server``).

Credentials come from the environment only (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
read by boto3, the MLflow server and DVC alike); nothing here writes them anywhere. ``oscflow
up`` checks the endpoint and the credentials and creates missing buckets before it starts the
MLflow server, so that a wrong setting fails there, naming the endpoint and the fix, and not
at the first artifact upload of a training."""

from __future__ import annotations

import functools
import os
import sys
import urllib.parse
from typing import Any

from omegaconf import DictConfig

from ..errors import InputError

DVC_REMOTE = "team"  # the name `oscflow up` suggests for the DVC remote
CREDENTIAL_CODES = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
CREDENTIALS_FIX = (
    "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY of a user of that endpoint (the MinIO "
    "of docker/compose.yaml: MINIO_ROOT_USER and MINIO_ROOT_PASSWORD of docker/.env)"
)


def _bucket(url: object) -> str | None:
    parts = urllib.parse.urlsplit(str(url or ""))
    return parts.netloc or None if parts.scheme == "s3" else None


def uses_s3(cfg: DictConfig) -> bool:
    """Whether the stack keeps anything on S3 (MLflow's artifacts or a DVC remote)."""
    return bool(buckets(cfg))


def buckets(cfg: DictConfig) -> list[str]:
    """The buckets of MLflow's artifacts and of the DVC remote, each once."""
    urls = (cfg.mlflow.artifacts_destination, cfg.get("s3", {}).get("dvc_remote"))
    return list(dict.fromkeys(b for b in map(_bucket, urls) if b))


def endpoint(cfg: DictConfig) -> str | None:
    """``s3.endpoint_url`` (None: AWS's own endpoints)."""
    url = cfg.get("s3", {}).get("endpoint_url")
    return str(url).rstrip("/") if url else None


def serves(cfg: DictConfig) -> bool:
    """Whether ``oscflow up`` starts the S3 server itself (``s3.serve=true``)."""
    return bool(cfg.get("s3", {}).get("serve")) and uses_s3(cfg)


def local_address(cfg: DictConfig) -> tuple[str, int]:
    """Host and port of the S3 server ``oscflow up`` starts: those of ``s3.endpoint_url``,
    which must then be plain http on this machine's loopback."""
    url = endpoint(cfg) or ""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or parts.hostname not in LOOPBACK or not port:
        raise InputError(
            f"s3.serve=true serves S3 on this machine, but s3.endpoint_url is {url or 'unset'}. "
            "Fix: set MLFLOW_S3_ENDPOINT_URL (or s3.endpoint_url) to http://127.0.0.1:<port>, "
            "or s3.serve=false for an S3 server that runs elsewhere"
        )
    return str(parts.hostname), int(port)


def server_cmd(cfg: DictConfig) -> list[str]:
    host, port = local_address(cfg)
    return [sys.executable, "-m", "oscflow.platform.s3server", "--host", host, "--port", str(port)]


def server_env(cfg: DictConfig) -> dict[str, str]:
    """What the MLflow server needs besides the credentials (which it inherits): the endpoint,
    whether it came from ``MLFLOW_S3_ENDPOINT_URL``, ``AWS_ENDPOINT_URL`` or an override."""
    url = endpoint(cfg)
    return {"MLFLOW_S3_ENDPOINT_URL": url} if url and uses_s3(cfg) else {}


def client(cfg: DictConfig, timeout: float = 5.0) -> Any:
    """A boto3 S3 client of the stack's endpoint with the environment's credentials, failing
    fast (one attempt, ``timeout`` s)."""
    session = _session(
        os.environ.get("AWS_ACCESS_KEY_ID"),
        os.environ.get("AWS_SECRET_ACCESS_KEY"),
        os.environ.get("AWS_SESSION_TOKEN"),
    )
    from botocore.config import Config

    config = Config(
        connect_timeout=timeout, read_timeout=timeout, retries={"total_max_attempts": 1}
    )
    return session.client("s3", endpoint_url=endpoint(cfg), config=config)


@functools.lru_cache(maxsize=4)
def _session(key: str | None, secret: str | None, token: str | None) -> Any:
    """A boto3 session per set of credentials in the environment (boto3's default session
    keeps the first it found for the life of the process); without them, boto3's own chain."""
    try:
        import boto3
    except ImportError:
        raise InputError(
            "the stack keeps artifacts on S3 but boto3 is not installed. "
            "Fix: pip install 'oscflow[team]'"
        ) from None

    return boto3.session.Session(
        aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token
    )


def _where(cfg: DictConfig) -> str:
    return f"the S3 endpoint {endpoint(cfg) or '(AWS)'}"


def ensure_buckets(cfg: DictConfig) -> dict[str, str]:
    """Check that the endpoint answers and accepts the credentials; create each missing
    bucket. ``{bucket: "exists" | "created"}``; InputError naming the endpoint and the fix."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    s3 = client(cfg)
    out: dict[str, str] = {}
    for bucket in buckets(cfg):
        try:
            try:
                s3.list_objects_v2(Bucket=bucket, MaxKeys=1)
                out[bucket] = "exists"
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
                    raise
                s3.create_bucket(Bucket=bucket, **_location(s3))
                out[bucket] = "created"
        except NoCredentialsError:
            raise InputError(
                f"no S3 credentials in the environment for {_where(cfg)}. Fix: " + CREDENTIALS_FIX
            ) from None
        except ClientError as exc:
            raise InputError(_refused(cfg, bucket, exc)) from None
        except BotoCoreError as exc:
            raise InputError(
                f"{_where(cfg)} cannot be reached ({exc}). Fix: start the S3 server there "
                "(MinIO: docker/compose.yaml), point MLFLOW_S3_ENDPOINT_URL at where it "
                "listens, or give s3.serve=true to have `oscflow up` start a local one"
            ) from None
    return out


def _location(s3: Any) -> dict[str, Any]:
    region = s3.meta.region_name
    if region in (None, "us-east-1", "aws-global"):
        return {}
    return {"CreateBucketConfiguration": {"LocationConstraint": region}}


def _refused(cfg: DictConfig, bucket: str, exc: Any) -> str:
    error = exc.response.get("Error", {})
    code, message = error.get("Code", "?"), error.get("Message", "")
    if code in CREDENTIAL_CODES:
        return (
            f"{_where(cfg)} refused the credentials ({_credential_source()}): {code}: "
            f"{message}. Fix: {CREDENTIALS_FIX}"
        )
    return (
        f"{_where(cfg)} refused access to bucket {bucket!r}: {code}: {message}. Fix: give "
        "that user access to the bucket, or choose another (mlflow.artifacts_destination, "
        "s3.dvc_remote)"
    )


def _credential_source() -> str:
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        return "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    return "boto3's configuration: no AWS_ACCESS_KEY_ID in the environment"


def healthy(cfg: DictConfig) -> bool:
    """Whether the endpoint answers and every bucket is there for these credentials."""
    try:
        s3 = client(cfg, timeout=2.0)
        for bucket in buckets(cfg):
            s3.list_objects_v2(Bucket=bucket, MaxKeys=1)
    except Exception:  # noqa: BLE001 — status reports, it does not fail
        return False
    return True


def dvc_remote(cfg: DictConfig) -> dict[str, Any] | None:
    """The DVC remote on the stack's endpoint and the commands that add it to a repository
    (``--local``: the endpoint is this deployment's, not the project's), or None."""
    url = cfg.get("s3", {}).get("dvc_remote")
    if not _bucket(url):
        return None
    commands = [f"dvc remote add --local --force {DVC_REMOTE} {url}"]
    if endpoint(cfg):
        commands.append(f"dvc remote modify --local {DVC_REMOTE} endpointurl {endpoint(cfg)}")
    return {"name": DVC_REMOTE, "url": str(url), "endpointurl": endpoint(cfg), "commands": commands}

"""A local S3-compatible server for ``oscflow up`` with ``s3.serve=true``:
``python -m oscflow.platform.s3server --host 127.0.0.1 --port PORT``.

moto's S3 (``moto.server``'s WSGI app, Werkzeug) behind a check of every request's AWS
Signature Version 4 against the one access key and secret in this process's
``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``: signed headers (boto3, DVC's s3fs) and
presigned URLs (MLflow 3's clients download artifacts through URLs the server presigns) alike,
as MinIO or AWS check them (AWS S3 API reference, "Authenticating Requests (AWS Signature
Version 4)"). An unknown key is ``InvalidAccessKeyId``, a wrong secret
``SignatureDoesNotMatch``, an unsigned request or an expired URL ``AccessDenied`` (all 403).
Payload chunk signatures are not checked (the seed signature is).

Objects live in memory for the life of the process: a single-machine stand-in for MinIO
(docker/compose.yaml) and the store of the team-scale tests, not a place to keep artifacts."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import os
import re
import sys
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

ALGORITHM = "AWS4-HMAC-SHA256"
AUTH_HEADER = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=([^,]+),\s*SignedHeaders=([^,]+),\s*Signature=([0-9a-f]+)"
)
SKEW = dt.timedelta(
    minutes=15
)  # AWS refuses header-signed requests further off (RequestTimeTooSkewed)

StartResponse = Callable[..., Any]
App = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Refused(Exception):
    """A request the server answers with 403 and an S3 error ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="-_.~")


def _query(raw: str, drop: str | None = None) -> str:
    """SigV4's canonical query string: every parameter (but ``drop``) URI-encoded, sorted."""
    pairs = []
    for part in filter(None, raw.split("&")):
        name, _, value = part.partition("=")
        name, value = urllib.parse.unquote(name), urllib.parse.unquote(value)
        if name != drop:
            pairs.append((_quote(name), _quote(value)))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def _header(environ: Mapping[str, Any], name: str) -> str:
    key = name.upper().replace("-", "_")
    value = environ.get(key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}", "")
    return " ".join(str(value).split())


def _path(environ: Mapping[str, Any]) -> str:
    """The path as the client sent (and signed) it: S3 signs it as is, not normalised."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return urllib.parse.urlsplit(str(raw)).path or "/"
    path = str(environ.get("PATH_INFO", "/")).encode("latin-1").decode("utf-8")
    return urllib.parse.quote(path, safe="/~")


def signature(
    secret: str, scope: str, stamp: str, method: str, path: str, query: str,
    headers: Mapping[str, str], payload: str,
) -> str:  # fmt: skip
    """The SigV4 signature of a request: ``scope`` is ``date/region/service/aws4_request``,
    ``headers`` the signed ones (lower-case names, canonical values), ``payload`` the
    payload's hash as the client declared it (or ``UNSIGNED-PAYLOAD``)."""
    names = sorted(headers)
    canonical = "\n".join(
        [
            method,
            path,
            query,
            "".join(f"{n}:{headers[n]}\n" for n in names),
            ";".join(names),
            payload,
        ]
    )
    to_sign = "\n".join([ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _time(stamp: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise Refused("AccessDenied", f"malformed date {stamp!r}") from None


def check(environ: Mapping[str, Any], key: str, secret: str, now: dt.datetime) -> None:
    """Refuse (``Refused``) a request not signed with ``key``/``secret``."""
    raw_query = str(environ.get("QUERY_STRING", ""))
    params = dict(urllib.parse.parse_qsl(raw_query, keep_blank_values=True))
    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    if "X-Amz-Signature" in params:  # a presigned URL
        credential, signed = (
            params.get("X-Amz-Credential", ""),
            params.get("X-Amz-SignedHeaders", ""),
        )
        given, stamp = params["X-Amz-Signature"], params.get("X-Amz-Date", "")
        payload = "UNSIGNED-PAYLOAD"
        query = _query(raw_query, drop="X-Amz-Signature")
        try:
            expires = dt.timedelta(seconds=int(params.get("X-Amz-Expires", "")))
        except ValueError:
            raise Refused("AccessDenied", "X-Amz-Expires missing or not a number") from None
        if now > _time(stamp) + expires:
            raise Refused("AccessDenied", "Request has expired")
    elif match := AUTH_HEADER.match(auth):
        credential, signed, given = match.groups()
        stamp = _header(environ, "x-amz-date")
        payload = _header(environ, "x-amz-content-sha256") or "UNSIGNED-PAYLOAD"
        query = _query(raw_query)
        if abs(now - _time(stamp)) > SKEW:
            raise Refused("RequestTimeTooSkewed", "the request time is too far from the server's")
    elif "AWSAccessKeyId" in params or auth.startswith("AWS "):
        raise Refused(
            "AccessDenied",
            "Signature Version 2 is not served here: sign with SigV4 "
            "(botocore: Config(signature_version='s3v4'))",
        )
    else:
        raise Refused("AccessDenied", "anonymous requests are not allowed: sign them (SigV4)")
    access, _, scope = credential.partition("/")
    if not hmac.compare_digest(access, key):
        raise Refused("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist")
    headers = {n: _header(environ, n) for n in signed.lower().split(";") if n}
    method = str(environ.get("REQUEST_METHOD", "GET"))
    expected = signature(secret, scope, stamp, method, _path(environ), query, headers, payload)
    if not hmac.compare_digest(expected, given):
        raise Refused(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided",
        )


def authenticating(app: App, key: str, secret: str) -> App:
    """``app`` behind ``check``: a refused request gets S3's XML error and status 403."""

    def wrapped(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            check(environ, key, secret, dt.datetime.now(dt.UTC))
        except Refused as exc:
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{exc.code}</Code><Message>{exc}</Message></Error>"
            ).encode()
            start_response(
                "403 Forbidden",
                [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
            )
            return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]
        return app(environ, start_response)

    return wrapped


def _credentials() -> tuple[str, str]:
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        sys.exit(
            "s3server: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set: the server "
            "accepts exactly those credentials. Fix: export both, then `oscflow up` again"
        )
    return key, secret


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m oscflow.platform.s3server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)  # moto's own default is 5000
    args = parser.parse_args(argv)
    key, secret = _credentials()
    from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    app = authenticating(create_backend_app("s3"), key, secret)
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()

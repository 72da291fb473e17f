"""The local S3 server's request check (``oscflow.platform.s3server.check``) against requests
signed by botocore, the AWS SDK's own SigV4 signer (the reference here): signed headers as boto3
and DVC's s3fs send them, presigned URLs as the MLflow server hands them to clients, and each
way a request can be wrong. In-process, no server: milliseconds."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import Any

import pytest
from botocore.auth import HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from oscflow.platform.s3server import Refused, check

KEY, SECRET = "oscflow-test", "s3cret/with+odd=chars"
HOST = "127.0.0.1:9000"
# keys as MLflow writes them (run ids, nested folders) and as people name files
OBJECT = "/mlflow/artifacts/1/0a1b/artifacts/model dir/ünï+code~(1).pt"


def _request(
    method: str = "GET", path: str = OBJECT, query: dict[str, str] | None = None, body: bytes = b""
) -> Any:
    """A request as a client encodes it (path and query percent-encoded as S3 clients do)."""
    encoded = urllib.parse.urlencode(query or {}, quote_via=urllib.parse.quote)
    url = f"http://{HOST}{urllib.parse.quote(path, safe='/~')}" + (f"?{encoded}" if query else "")
    return AWSRequest(method=method, url=url, data=body)


def _signed(request: Any, secret: str = SECRET, key: str = KEY, presign: bool = False) -> Any:
    """``request`` signed in its headers, or sent to the URL presigned for it (a presigned URL
    covers the method, path and query, not the body)."""
    credentials = Credentials(key, secret)
    if presign:
        url = AWSRequest(method=request.method, url=request.url)
        S3SigV4QueryAuth(credentials, "s3", "us-east-1", expires=60).add_auth(url)
        request.url = url.url
    else:
        S3SigV4Auth(credentials, "s3", "us-east-1").add_auth(request)
    return request


def _environ(request: Any) -> dict[str, Any]:
    """The WSGI environ Werkzeug builds for ``request`` as an HTTP client sends it."""
    prepared = request.prepare()
    parts = urllib.parse.urlsplit(prepared.url)
    environ = {
        "REQUEST_METHOD": prepared.method,
        "RAW_URI": parts.path + (f"?{parts.query}" if parts.query else ""),
        "QUERY_STRING": parts.query,
        "HTTP_HOST": parts.netloc,
    }
    for name, value in prepared.headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
    return environ


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(_request, id="get"),
        pytest.param(lambda: _request("PUT", body=b"\x00spectrum" * 100), id="put-with-body"),
        pytest.param(
            lambda: _request("GET", "/dvc", {"list-type": "2", "prefix": "oscflow/files md5"}),
            id="list-with-query",
        ),
        pytest.param(  # DeleteObjects: a bare ?delete, as botocore sends it
            lambda: AWSRequest(method="POST", url=f"http://{HOST}/mlflow?delete", data=b"<x/>"),
            id="subresource",
        ),
    ],
)
@pytest.mark.parametrize("presign", [False, True], ids=["headers", "presigned"])
def test_requests_botocore_signs_with_the_credentials_pass(request_: Any, presign: bool) -> None:
    check(_environ(_signed(request_(), presign=presign)), KEY, SECRET, _now())


@pytest.mark.parametrize("presign", [False, True], ids=["headers", "presigned"])
def test_a_wrong_secret_or_key_or_a_changed_request_is_refused(presign: bool) -> None:
    with pytest.raises(Refused) as wrong_secret:
        check(_environ(_signed(_request(), "not-the-secret", presign=presign)), KEY, SECRET, _now())
    assert wrong_secret.value.code == "SignatureDoesNotMatch"
    with pytest.raises(Refused) as wrong_key:
        check(
            _environ(_signed(_request(), key="someone-else", presign=presign)), KEY, SECRET, _now()
        )
    assert wrong_key.value.code == "InvalidAccessKeyId"
    # signed for one object, sent for another
    environ = _environ(_signed(_request(), presign=presign))
    environ["RAW_URI"] = environ["RAW_URI"].replace("model%20dir", "other%20dir")
    with pytest.raises(Refused) as changed:
        check(environ, KEY, SECRET, _now())
    assert changed.value.code == "SignatureDoesNotMatch"


def test_an_expired_presigned_url_and_a_stale_signature_are_refused() -> None:
    presigned = _environ(_signed(_request(), presign=True))  # valid for 60 s
    check(presigned, KEY, SECRET, _now() + dt.timedelta(seconds=50))
    with pytest.raises(Refused, match="expired") as expired:
        check(presigned, KEY, SECRET, _now() + dt.timedelta(seconds=70))
    assert expired.value.code == "AccessDenied"
    signed = _environ(_signed(_request()))
    check(signed, KEY, SECRET, _now() + dt.timedelta(minutes=14))
    with pytest.raises(Refused) as stale:
        check(signed, KEY, SECRET, _now() + dt.timedelta(minutes=16))
    assert stale.value.code == "RequestTimeTooSkewed"


def test_anonymous_and_signature_v2_requests_are_refused_with_the_reason() -> None:
    with pytest.raises(Refused, match="anonymous") as anonymous:
        check(_environ(_request()), KEY, SECRET, _now())
    assert anonymous.value.code == "AccessDenied"
    v2 = _request()
    HmacV1QueryAuth(Credentials(KEY, SECRET), expires=60).add_auth(v2)
    with pytest.raises(Refused, match="SigV4") as legacy:
        check(_environ(v2), KEY, SECRET, _now())
    assert legacy.value.code == "AccessDenied"

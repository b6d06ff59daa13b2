"""ECR against moto's server with IAM authentication on, and the distribution registry."""

import datetime as dt
import threading

import pytest

from registries import ecr
from registries.errors import RegistryError
from registries.oci.client import RegistryClient
from tests.support.registry import ACCOUNT, ECR_HOST, REGION, push_test_image


@pytest.fixture(autouse=True)
def fresh_cache():
    ecr.clear_token_cache()
    yield
    ecr.clear_token_cache()


def creds(keys, **extra):
    return dict(access_key_id=keys.access_key_id, secret_access_key=keys.secret_access_key,
                region=REGION, **extra)


@pytest.mark.parametrize("host,account,region", [
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com", "123456789012", "us-east-1"),
    ("210987654321.dkr.ecr.eu-central-1.amazonaws.com", "210987654321", "eu-central-1"),
    ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", "123456789012", "us-gov-west-1"),
    ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "123456789012", "cn-north-1"),
])
def test_it_parses_ecr_endpoints(host, account, region):
    assert ecr.parse_ecr_endpoint(host) == (account, region)


@pytest.mark.parametrize("host,fragment", [
    ("4999999999999.dkr.ecr.us-east-2.amazonaws.com", "exactly 12 digits"),  # the walkthrough's
    ("4999.dkr.ecr.us-east-2.amazonaws.com", "exactly 12 digits"),
    ("ghcr.io", "not an Amazon ECR registry host"),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.com", "not an Amazon ECR"),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com:443", "not an Amazon ECR"),
])
def test_it_explains_bad_ecr_endpoints(host, fragment):
    with pytest.raises(ValueError) as e:
        ecr.parse_ecr_endpoint(host)
    assert fragment in str(e.value)


def test_read_only_keys_get_a_token_that_the_registry_accepts(aws_users, ecr_env):
    push_test_image(ecr_env, "demo-apps/nginx", "latest")
    username, password = ecr.get_registry_credentials(**creds(aws_users.reader, cache_key="r1"))
    assert (username, password) == ("AWS", aws_users.registry_password)
    with RegistryClient(ECR_HOST, username=username, password=password) as client:
        client.ping()
        assert client.head_manifest("demo-apps/nginx", "latest").digest.startswith("sha256:")


def test_it_names_the_account_of_the_keys(aws_users):
    assert ecr.caller_account(**creds(aws_users.reader)) == ACCOUNT


@pytest.mark.parametrize("user,code", [
    ("no_ecr", "access_denied"),
    ("unknown", "unknown_access_key"),
    ("wrong_secret", "bad_secret"),
])
def test_each_bad_key_gets_its_own_reason(aws_users, user, code):
    keys = getattr(aws_users, user)
    with pytest.raises(RegistryError) as e:
        ecr.get_registry_credentials(**creds(keys, cache_key=user))
    assert e.value.code == code and e.value.permanent
    assert keys.secret_access_key not in e.value.message


def test_it_maps_real_aws_error_codes():
    from botocore.exceptions import ClientError

    def error(code, status=400):
        return ClientError({"Error": {"Code": code, "Message": "x"},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "GetAuthorizationToken")

    assert ecr._error(error("UnrecognizedClientException"), action="a").code == "unknown_access_key"
    assert ecr._error(error("InvalidSignatureException"), action="a").code == "bad_secret"
    assert ecr._error(error("AccessDeniedException"), action="a").code == "access_denied"
    throttled = ecr._error(error("ThrottlingException"), action="a")
    assert throttled.code == "upstream" and not throttled.permanent
    assert not ecr._error(error("Whatever", 503), action="a").permanent


def test_empty_keys_need_the_ambient_setting(settings):
    settings.PORTAL_ALLOW_AMBIENT_AWS_CREDENTIALS = False
    with pytest.raises(RegistryError) as e:
        ecr.get_registry_credentials(access_key_id="", secret_access_key="", region=REGION)
    assert "Access Key ID" in e.value.message


def test_it_caches_the_token_until_shortly_before_it_expires(aws_users, monkeypatch):
    calls = []
    real_fetch = ecr.fetch_token

    def counting_fetch(**kwargs):
        calls.append(1)
        return real_fetch(**kwargs)

    monkeypatch.setattr(ecr, "fetch_token", counting_fetch)
    first = ecr.get_registry_credentials(**creds(aws_users.reader, cache_key="c"))
    assert ecr.get_registry_credentials(**creds(aws_users.reader, cache_key="c")) == first
    assert len(calls) == 1
    # moto's expiresAt is in 2015: the token is kept for the fallback hour, then refreshed.
    later = dt.datetime.now(dt.UTC) + ecr.FALLBACK_LIFETIME + dt.timedelta(seconds=1)
    monkeypatch.setattr(ecr, "_now", lambda: later)
    ecr.get_registry_credentials(**creds(aws_users.reader, cache_key="c"))
    assert len(calls) == 2


def test_the_cache_refreshes_five_minutes_before_expires_at(monkeypatch):
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    expires = now + dt.timedelta(hours=12)
    tokens = iter(["one", "two"])

    def fake_fetch(**kwargs):
        return ecr.Token("AWS", next(tokens), expires, expires - ecr.REFRESH_BEFORE)

    monkeypatch.setattr(ecr, "fetch_token", fake_fetch)
    clock = [now]
    monkeypatch.setattr(ecr, "_now", lambda: clock[0])
    keys = dict(access_key_id="AKIA", secret_access_key="s", region=REGION)
    assert ecr.get_registry_credentials(**keys)[1] == "one"
    clock[0] = expires - dt.timedelta(minutes=6)
    assert ecr.get_registry_credentials(**keys)[1] == "one"
    clock[0] = expires - dt.timedelta(minutes=4)
    assert ecr.get_registry_credentials(**keys)[1] == "two"


def test_the_cache_key_never_holds_the_secret():
    key = ecr._key("r", "AKIAEXAMPLE", "the-secret-value", REGION)
    assert "the-secret-value" not in key and "AKIAEXAMPLE" not in key


def test_concurrent_callers_share_one_refresh(aws_users, monkeypatch):
    calls = []
    real_fetch = ecr.fetch_token
    gate = threading.Event()

    def slow_fetch(**kwargs):
        calls.append(1)
        gate.wait(5)  # hold the refresh until every caller is waiting on it
        return real_fetch(**kwargs)

    monkeypatch.setattr(ecr, "fetch_token", slow_fetch)
    results, errors = [], []

    def call():
        try:
            results.append(ecr.get_registry_credentials(**creds(aws_users.reader, cache_key="x")))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert not errors
    assert len(calls) == 1
    assert len(results) == 8 and len(set(results)) == 1


def test_neither_secret_nor_token_reaches_the_logs(aws_users, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    password = ecr.get_registry_credentials(**creds(aws_users.reader, cache_key="log"))[1]
    for keys in (aws_users.wrong_secret, aws_users.no_ecr):
        with pytest.raises(RegistryError):
            ecr.get_registry_credentials(**creds(keys, cache_key="log"))
    ecr.caller_account(**creds(aws_users.reader))
    text = caplog.text
    assert aws_users.reader.secret_access_key not in text
    assert aws_users.wrong_secret.secret_access_key not in text
    assert password not in text
    import base64

    assert base64.b64encode(f"AWS:{password}".encode()).decode() not in text


def test_calls_in_one_thread_share_a_warm_session_but_never_its_keys(moto_server, aws_users):
    """A session per call reloads botocore's models (~50 ms); the keys belong to each client."""
    assert ecr.caller_account(**creds(aws_users.reader)) == ACCOUNT
    session = ecr._session()
    with pytest.raises(RegistryError) as error:
        ecr.fetch_token(**creds(aws_users.wrong_secret))
    assert error.value.code == "bad_secret"
    assert ecr.caller_account(**creds(aws_users.reader)) == ACCOUNT
    assert ecr._session() is session
    other_thread = []
    thread = threading.Thread(target=lambda: other_thread.append(ecr._session()))
    thread.start()
    thread.join(timeout=10)
    assert other_thread and other_thread[0] is not session

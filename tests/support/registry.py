"""Loopback servers for the registry tests: moto, distribution registries, a token server.

Fixtures (tests/registries/conftest.py imports them):

- ``moto_server``: ``python -m moto.server`` on a free 127.0.0.1 port. IAM authentication is
  switched on after setup (``POST /moto-api/reset-auth`` with ``0``: from then on every request
  must be signed by a known IAM user and allowed by its policies). Sets AWS_ENDPOINT_URL_ECR /
  _STS / _IAM for this process; ``moto_server.env`` holds them for worker subprocesses.
- ``aws_users``: keys of a read-only ECR user (``reader``), a user without ECR permissions
  (``no_ecr``), an unknown key id and a wrong secret, and the password moto's ECR token decodes
  to (``registry_password``). ``moto_server.create_user(name, policy)`` makes more (e.g. a
  pusher with ecr:* for mirroring tests).
- ``distribution_factory(users={"name": "pw"})``: Debian's ``docker-registry`` (htpasswd, bcrypt) on
  a free port with storage in a tmp dir; ``distribution_registry`` is one with user ``tester``.
- ``ecr_registry``: a distribution registry with user ``AWS`` and moto's token password, reached
  at ``ECR_HOST`` through ``PORTAL_REGISTRY_HOST_MAP`` (``ecr_registry.host_map``; the ``ecr_env``
  fixture sets it and PORTAL_ALLOW_PRIVATE_REGISTRIES in Django settings).
- ``bearer_registry``: ``docker-registry`` with its own ``auth: token`` config, trusting a
  certificate generated here, and a Python token server that checks Basic credentials and signs
  JWTs (ES256 with an ``x5c`` header), as Docker Hub's auth.docker.io does.
- ``redirecting_registry``: a tiny image in a docker-registry (Basic auth) behind
  ``tests.support.faults.RedirectingRegistry``, which answers manifest and blob GETs with 307 to
  another host name and port (``localhost`` instead of ``127.0.0.1``), like ECR to S3, where a
  storage server records the headers it received: Authorization must never arrive there.
- ``push_test_image(registry, repo, tag)``: uploads a tiny image (config, layer, Docker v2
  manifest) over the distribution API with httpx; returns its manifest digest.

Every server binds 127.0.0.1 and stops at the end; a missing binary skips locally, fails in CI.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest

from registries.oci.client import RegistryClient
from tests.support.faults import RedirectingRegistry
from tests.support.servers import LOOPBACK, free_port, require_binary, stop_process, wait_for_port

ACCOUNT = "123456789012"
REGION = "us-east-1"
ECR_HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
MOTO_TOKEN_PASSWORD = f"{ACCOUNT}-auth-token"  # what moto's ECR token decodes to (AWS:<this>)
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"

ECR_READ_ONLY_POLICY = {
    # The actions of AWS's AmazonEC2ContainerRegistryReadOnly managed policy.
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Action": [
            "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability",
            "ecr:GetDownloadUrlForLayer", "ecr:GetRepositoryPolicy", "ecr:DescribeRepositories",
            "ecr:ListImages", "ecr:DescribeImages", "ecr:BatchGetImage",
            "ecr:GetLifecyclePolicy", "ecr:GetLifecyclePolicyPreview", "ecr:ListTagsForResource",
            "ecr:DescribeImageScanFindings", "sts:GetCallerIdentity",
        ],
        "Resource": "*",
    }],
}
NO_ECR_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:ListAllMyBuckets", "sts:GetCallerIdentity"],
                   "Resource": "*"}],
}


# --- moto ---------------------------------------------------------------------------------------


@dataclass
class MotoServer:
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL_ECR": self.url,
            "AWS_ENDPOINT_URL_STS": self.url,
            "AWS_ENDPOINT_URL_IAM": self.url,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def set_auth(self, enforced: bool) -> None:
        value = "0" if enforced else "inf"
        httpx.post(f"{self.url}/moto-api/reset-auth", content=value, timeout=5).raise_for_status()

    def create_user(self, name: str, policy: dict) -> AwsKeys:
        """An IAM user with ``policy`` and an access key (IAM auth is off while it is made)."""
        self.set_auth(False)
        try:
            iam = boto3.client("iam", region_name=REGION, endpoint_url=self.url,
                               aws_access_key_id="setup", aws_secret_access_key="setup")
            iam.create_user(UserName=name)
            arn = iam.create_policy(PolicyName=f"{name}-policy",
                                    PolicyDocument=json.dumps(policy))["Policy"]["Arn"]
            iam.attach_user_policy(UserName=name, PolicyArn=arn)
            key = iam.create_access_key(UserName=name)["AccessKey"]
            return AwsKeys(key["AccessKeyId"], key["SecretAccessKey"])
        finally:
            self.set_auth(True)


@dataclass
class AwsKeys:
    access_key_id: str
    secret_access_key: str


@dataclass
class AwsUsers:
    reader: AwsKeys
    no_ecr: AwsKeys
    unknown: AwsKeys
    wrong_secret: AwsKeys
    account: str = ACCOUNT
    region: str = REGION
    registry_password: str = MOTO_TOKEN_PASSWORD


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "inf", "MOTO_CALL_RESET_API": "false"}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT, env=env,
    )
    try:
        wait_for_port(LOOPBACK, port, time.monotonic() + 30, process=process)
    except Exception:
        stop_process(process)
        raise RuntimeError(f"moto server did not start: {log_path.read_text()[-2000:]}") from None
    server = MotoServer(port, process)
    saved = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)
    yield server
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    stop_process(process)


@pytest.fixture(scope="session")
def aws_users(moto_server) -> AwsUsers:
    reader = moto_server.create_user("ecr-reader", ECR_READ_ONLY_POLICY)
    no_ecr = moto_server.create_user("no-ecr", NO_ECR_POLICY)
    return AwsUsers(
        reader=reader,
        no_ecr=no_ecr,
        unknown=AwsKeys("AKIAUNKNOWNKEY000000", "x" * 40),
        wrong_secret=AwsKeys(reader.access_key_id, "wrong-" + reader.secret_access_key[6:]),
    )


# --- distribution registries --------------------------------------------------------------------


@dataclass
class Registry:
    port: int
    root: Path
    users: dict[str, str]
    process: subprocess.Popen | None = None
    log: Path | None = None
    token_server: TokenServer | None = None
    extra: dict = field(default_factory=dict)
    scheme: str = "http"

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def username(self) -> str:
        return next(iter(self.users))

    @property
    def password(self) -> str:
        return self.users[self.username]

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)

    def storage_bytes(self) -> int:
        """Bytes of blob data stored (to prove a mount moved no layer bytes)."""
        blobs = self.root / "data" / "docker" / "registry" / "v2" / "blobs"
        return sum(p.stat().st_size for p in blobs.rglob("data")) if blobs.exists() else 0

    def auth_headers(self, repository: str, actions: str = "pull,push") -> dict[str, str]:
        """Headers that let the tests' own pushes through (Basic, or a token from the server)."""
        if self.token_server is None:
            pair = f"{self.username}:{self.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        token = self.token_server.issue(self.username, [f"repository:{repository}:{actions}"])
        return {"Authorization": f"Bearer {token}"}

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


def _htpasswd(users: dict[str, str]) -> str:
    binary = require_binary("htpasswd")
    return "".join(
        subprocess.run([binary, "-Bbn", name, password], check=True, capture_output=True,
                       text=True).stdout.strip() + "\n"
        for name, password in users.items()
    )


def start_distribution(root: Path, *, users: dict[str, str] | None = None,
                       token_auth: dict | None = None, tls: tuple[Path, Path] | None = None,
                       timeout: float = 20) -> Registry:
    """Start docker-registry on a free loopback port: htpasswd auth for ``users``, or a
    ``token_auth`` config, or neither (no ``users``: anyone may pull and push, a public registry).
    ``tls``: (certificate, key) files to serve HTTPS with (tests/support/tls.py)."""
    binary = require_binary("docker-registry")
    root.mkdir(parents=True, exist_ok=True)
    users = users or {}
    port = free_port()
    if token_auth:
        auth = ("auth:\n  token:\n" + "".join(f"    {k}: {v}\n" for k, v in token_auth.items()))
    elif users:
        (root / "htpasswd").write_text(_htpasswd(users))
        auth = f"auth:\n  htpasswd:\n    realm: portal-tests\n    path: {root / 'htpasswd'}\n"
    else:
        auth = ""
    (root / "config.yml").write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        "  maintenance:\n    uploadpurging:\n      enabled: false\n"
        f"http:\n  addr: {LOOPBACK}:{port}\n  secret: portal-tests-{uuid.uuid4().hex}\n"
        + (f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n" if tls else "")
        + auth
    )
    log = root / "registry.log"
    process = subprocess.Popen([binary, "serve", str(root / "config.yml")],
                               stdout=log.open("wb"), stderr=subprocess.STDOUT)
    registry = Registry(port=port, root=root, users=users, process=process, log=log,
                        scheme="https" if tls else "http")
    deadline = time.monotonic() + timeout
    try:
        wait_for_port(LOOPBACK, port, deadline, process=process)
    except Exception:
        registry.stop()
        raise RuntimeError(f"docker-registry did not start: {log.read_text()[-2000:]}") from None
    return registry


@contextmanager
def _registries(tmp_path_factory):
    """A starter of registries (``make(users={...}, **start_distribution options)``); every
    one it started is stopped on leaving."""
    started: list[Registry] = []

    def make(users: dict[str, str], **kwargs) -> Registry:
        registry = start_distribution(tmp_path_factory.mktemp("registry"), users=users, **kwargs)
        started.append(registry)
        return registry

    try:
        yield make
    finally:
        for registry in started:
            registry.stop()


@pytest.fixture(scope="session")
def distribution_factory(tmp_path_factory):
    """``distribution_factory(users={"name": "password"})`` starts one more registry."""
    with _registries(tmp_path_factory) as make:
        yield lambda users=None, **kwargs: make(users or {"tester": "tester-pw-1"}, **kwargs)


@pytest.fixture
def registry_factory(tmp_path_factory):
    """Registries for one test, stopped at its end: ``registry_factory(username=..., password=...)``."""
    with _registries(tmp_path_factory) as make:
        yield lambda *, username="mirror", password="mirror-secret-pw": make({username: password})


@pytest.fixture
def source_registry(registry_factory) -> Registry:
    return registry_factory()


@pytest.fixture
def target_registry(registry_factory) -> Registry:
    return registry_factory(username="pusher", password="pusher-secret-pw")


def make_client(host: str, username: str = "", password: str = "") -> RegistryClient:
    """A RegistryClient for a loopback registry (tests set PORTAL_ALLOW_PRIVATE_REGISTRIES)."""
    return RegistryClient(host, username=username, password=password, insecure=True, timeout=30)


@pytest.fixture(scope="session")
def distribution_registry(distribution_factory) -> Registry:
    return distribution_factory({"tester": "s3cret-registry-pw"})


@pytest.fixture(scope="session")
def ecr_registry(distribution_factory) -> Registry:
    """The ECR stand-in: user AWS with moto's token password, at ECR_HOST via the host map."""
    registry = distribution_factory({"AWS": MOTO_TOKEN_PASSWORD})
    registry.extra["endpoint"] = ECR_HOST
    registry.extra["host_map"] = f"{ECR_HOST}={registry.url}"
    return registry


@pytest.fixture
def ecr_env(settings, ecr_registry, moto_server):
    """Django settings that send ECR_HOST to the stand-in and allow loopback addresses."""
    settings.PORTAL_REGISTRY_HOST_MAP = ecr_registry.extra["host_map"]
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True
    return ecr_registry


# --- token auth ---------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues registry JWTs (ES256, x5c) for Basic credentials, like auth.docker.io."""

    def __init__(self, directory: Path, users: dict[str, str], *, service: str, issuer: str):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.users, self.service, self.issuer = users, service, issuer
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portal-tests token signer")])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.bundle = directory / "token-signer.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.requests: list[dict] = []
        self.port = free_port()
        self._server = ThreadingHTTPServer((LOOPBACK, self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def realm(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/token"

    def issue(self, subject: str, scopes: list[str], expires_in: int = 300) -> str:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256",
                  "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + expires_in,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                server.requests.append({"path": parts.path, "query": query,
                                        "authorization": self.headers.get("Authorization")})
                subject = ""
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                    if server.users.get(name) != password:
                        return self._reply(401, {"details": "incorrect username or password"})
                    subject = name
                scopes = query.get("scope", [])
                if not subject:
                    scopes = []  # anonymous users get a token with no access, as on Docker Hub
                token = server.issue(subject, scopes)
                self._reply(200, {"token": token, "access_token": token, "expires_in": 300})

            def _reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def bearer_registry(tmp_path_factory) -> Registry:
    """docker-registry behind its own token auth, with a Python token server (user bearer-user)."""
    root = tmp_path_factory.mktemp("bearer-registry")
    users = {"bearer-user": "bearer-pw-1"}
    token_server = TokenServer(root, users, service="portal-tests-registry", issuer="portal-tests")
    registry = start_distribution(root, users=users, token_auth={
        "realm": token_server.realm, "service": token_server.service,
        "issuer": token_server.issuer, "rootcertbundle": str(token_server.bundle),
    })
    registry.token_server = token_server
    yield registry
    registry.stop()
    token_server.stop()


# --- a registry that redirects to another host --------------------------------------------------


@dataclass
class RedirectedImage:
    """The tiny image of ``push_test_image`` at ``demo/app:latest``, behind ``proxy``."""
    proxy: RedirectingRegistry
    manifest_digest: str
    config_digest: str
    config: bytes


@pytest.fixture
def redirecting_registry(distribution_factory):
    """docker-registry (Basic auth) behind a proxy whose manifest and blob GETs 307 to
    http://localhost:<other port>/…, where Authorization must never arrive."""
    registry = distribution_factory({"redirect-user": "redirect-pw-1"})
    manifest_digest = push_test_image(registry, "demo/app", "latest")
    headers = {**registry.auth_headers("demo/app", "pull"), "Accept": DOCKER_MANIFEST}
    base = f"{registry.url}/v2/demo/app"
    config_digest = httpx.get(f"{base}/manifests/{manifest_digest}", headers=headers,
                              timeout=10).json()["config"]["digest"]
    config = httpx.get(f"{base}/blobs/{config_digest}", headers=headers, timeout=10).content
    with RedirectingRegistry(registry.url, registry.auth, manifests=True) as proxy:
        yield RedirectedImage(proxy, manifest_digest, config_digest, config)


# --- pushing a tiny image -----------------------------------------------------------------------


def _tiny_layer() -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        content = b"hello from the portal tests\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(data.getvalue(), mtime=0)


def push_test_image(registry: Registry, repository: str, tag: str) -> str:
    """Push config + one layer + a Docker v2 manifest; return the manifest digest."""
    layer = _tiny_layer()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()]},
        "config": {},
    }).encode()
    headers = registry.auth_headers(repository)
    base = f"{registry.url}/v2/{repository}"
    with httpx.Client(headers=headers, timeout=10) as http:
        for blob in (config, layer):
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            start = http.post(f"{base}/blobs/uploads/")
            assert start.status_code == 202, start.text
            location = httpx.URL(registry.url).join(start.headers["location"])
            done = http.put(location.copy_merge_params({"digest": digest}), content=blob,
                            headers={"Content-Type": "application/octet-stream"})
            assert done.status_code == 201, done.text
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "digest": "sha256:" + hashlib.sha256(layer).hexdigest(),
                        "size": len(layer)}],
        }).encode()
        put = http.put(f"{base}/manifests/{tag}", content=manifest,
                       headers={"Content-Type": DOCKER_MANIFEST})
        assert put.status_code == 201, put.text
    return "sha256:" + hashlib.sha256(manifest).hexdigest()

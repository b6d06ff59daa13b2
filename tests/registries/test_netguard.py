"""The SSRF guard, the host map and the trust store."""

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpcore
import pytest

from registries import netguard
from registries.errors import RegistryError
from registries.oci.client import RegistryClient
from tests.support.servers import LOOPBACK, free_port


@pytest.mark.parametrize("ip,fragment", [
    ("169.254.169.254", "link-local"),
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "private"),  # carrier-grade NAT
    ("fd00::1", "private"),
    ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("::ffff:169.254.169.254", "link-local"),  # IPv4-mapped IPv6
])
def test_it_names_forbidden_addresses(ip, fragment):
    assert fragment in netguard.forbidden_reason(ip)


@pytest.mark.parametrize("ip", ["52.94.1.1", "140.82.112.3", "2600:1f18::1"])
def test_it_allows_public_addresses(ip):
    assert netguard.forbidden_reason(ip) is None


def _infos(*ips):
    return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "",
             (ip, 443)) for ip in ips]


def test_one_forbidden_address_among_public_ones_is_refused(settings):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = False
    with pytest.raises(RegistryError) as e:
        netguard.checked_addresses("evil.example", 443, _infos("52.94.1.1", "169.254.169.254"))
    assert e.value.code == "forbidden_address" and e.value.permanent
    assert "169.254.169.254" in e.value.message


def test_the_setting_allows_private_addresses(settings):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True
    assert netguard.checked_addresses("r", 443, _infos("10.0.0.5")) == ["10.0.0.5"]


@pytest.mark.parametrize("endpoint", ["169.254.169.254", "127.0.0.1:5000", "10.0.0.1",
                                      "localhost:5000"])
def test_the_client_refuses_internal_endpoints_before_connecting(settings, endpoint):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = False
    settings.PORTAL_REGISTRY_HOST_MAP = ""
    with RegistryClient(endpoint, insecure=True, timeout=2) as client:
        with pytest.raises(RegistryError) as e:
            client.ping()
    assert e.value.code == "forbidden_address"


def test_the_guard_checks_the_address_actually_connected_to(settings, monkeypatch):
    """A name that resolves to a public address at check time but to loopback when connecting
    cannot slip through: the backend connects to the very address it checked."""
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = False
    answers = iter([_infos("127.0.0.1")])
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: next(answers))
    connected = []

    class Recorder(httpcore.SyncBackend):
        def connect_tcp(self, host, port, **kwargs):
            connected.append(host)
            raise httpcore.ConnectError("not really connecting")

    backend = netguard.GuardedBackend(Recorder())
    with pytest.raises(RegistryError):
        backend.connect_tcp("rebind.example", 443)
    assert connected == []

    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: _infos("10.9.8.7"))
    with pytest.raises(httpcore.ConnectError):
        backend.connect_tcp("rebind.example", 443)
    assert connected == ["10.9.8.7"]


def test_the_transport_uses_the_guarded_backend():
    transport = netguard.guarded_transport()
    assert isinstance(transport._pool._network_backend, netguard.GuardedBackend)
    assert isinstance(netguard.async_guarded_transport()._pool._network_backend,
                      netguard.AsyncGuardedBackend)


def test_it_parses_the_host_map():
    mapping = netguard.parse_host_map(
        " 123456789012.dkr.ecr.us-east-1.amazonaws.com=http://127.0.0.1:5123/ ,"
        "Registry.Example.com=https://10.0.0.2:8443"
    )
    assert mapping == {
        "123456789012.dkr.ecr.us-east-1.amazonaws.com": "http://127.0.0.1:5123",
        "registry.example.com": "https://10.0.0.2:8443",
    }
    assert netguard.parse_host_map("") == {}


@pytest.mark.parametrize("text", ["nohost", "a=ftp://x", "a=http://x/path", "=http://x"])
def test_it_rejects_a_bad_host_map(text):
    with pytest.raises(ValueError) as e:
        netguard.parse_host_map(text)
    assert "PORTAL_REGISTRY_HOST_MAP" in str(e.value)


def test_host_map_targets_are_still_guarded(settings):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = False
    settings.PORTAL_REGISTRY_HOST_MAP = f"registry.example.com=http://127.0.0.1:{free_port()}"
    with RegistryClient("registry.example.com") as client:
        with pytest.raises(RegistryError) as e:
            client.ping()
    assert e.value.code == "forbidden_address"


def test_ssl_cert_file_is_honoured(tmp_path, monkeypatch, settings):
    """A registry with a certificate from a private CA works once SSL_CERT_FILE names the CA."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portal test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer((LOOPBACK, free_port()), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"{LOOPBACK}:{server.server_address[1]}"
    try:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        with RegistryClient(endpoint, timeout=3) as client:
            with pytest.raises(RegistryError) as e:
                client.ping()
        assert e.value.code == "tls" and "SSL_CERT_FILE" in e.value.message
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
        with RegistryClient(endpoint, timeout=3) as client:
            client.ping()
    finally:
        server.shutdown()
        server.server_close()

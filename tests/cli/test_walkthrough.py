"""The walkthrough "Using ECR for private images", from a pipeline: every step through the CLI.

Link the ECR stand-in (moto + docker-registry) with keys piped on stdin, create a release whose
image is in it and promote it to Unstable, see the image check pass, create a customer, download
the license (checked by verify_license), mirror an image with --wait (checked with skopeo).
"""

import json
import re
import subprocess

import pytest

from tests.cli.manifests import write_release
from tests.support.registry import ECR_HOST, MOTO_TOKEN_PASSWORD, push_test_image
from tests.support.servers import require_binary

pytestmark = [pytest.mark.postgres, pytest.mark.postgres_only, pytest.mark.slow]

ECR_PUSH_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["ecr:*", "sts:GetCallerIdentity"], "Resource": "*"}],
}


def checked(stack):
    """``ok(result)``: the command exited 0, else fail with its output and the server's log."""
    def ok(result):
        assert result.returncode == 0, (f"exit {result.returncode}\n{result.stdout}\n{result.stderr}\n"
                                        f"web log:\n{stack.log('web')[-4000:]}")
        return result
    return ok


def test_the_ecr_walkthrough_from_the_cli(run_cli, cli_stack, admin_token, moto_server,
                                          ecr_registry, tmp_path):
    skopeo = require_binary("skopeo")
    ok = checked(cli_stack)
    keys = moto_server.create_user("cli-pusher", ECR_PUSH_POLICY)
    push_test_image(ecr_registry, "demo-apps/nginx", "latest")
    image = f"{ECR_HOST}/demo-apps/nginx:latest"

    # Link the registry: the secret comes on stdin and is never printed.
    linked = ok(run_cli("registry", "add", "ecr", "--endpoint", ECR_HOST,
                        "--access-key-id", keys.access_key_id, "--secret-access-key-stdin",
                        "--test-image", "demo-apps/nginx:latest", "--output", "json",
                        token=admin_token, input=keys.secret_access_key + "\n"))
    assert "connected" in linked.stdout.lower()
    listed = ok(run_cli("registry", "ls", token=admin_token))
    assert ECR_HOST in listed.stdout
    ok(run_cli("registry", "test", "--endpoint", ECR_HOST, "--image", "demo-apps/nginx:latest",
               token=admin_token))
    for output in (linked, listed):
        assert keys.secret_access_key not in output.stdout + output.stderr

    # A release using the private image, promoted to Unstable.
    manifests = write_release(tmp_path / "manifests", image)
    created = ok(run_cli("release", "create", "--yaml-dir", str(manifests), "--promote", "Unstable",
                         "--version", "1.2.3", "--release-notes", "From CI", "--output", "json",
                         token=admin_token))
    sequence = json.loads(created.stdout)["release"]["sequence"]
    channels = json.loads(ok(run_cli("channel", "ls", "--output", "json", token=admin_token)).stdout)
    unstable = next(c for c in channels if c["name"] == "Unstable")
    assert (unstable["releaseSequence"], unstable["currentVersion"]) == (sequence, "1.2.3")
    releases = ok(run_cli("release", "ls", token=admin_token)).stdout
    assert re.search(rf"(?m)^\s*{sequence}\s.*Unstable", releases), releases

    # The image check: customers can pull it (through the proxy).
    check = ok(run_cli("image", "check", "--release", str(sequence), "--wait", token=admin_token))
    assert image in check.stdout

    # A customer on Unstable and their license.
    customer = json.loads(ok(run_cli(
        "customer", "create", "--name", "Big Bank CI", "--channel", "Unstable",
        "--email", "ops@bigbank.example", "--type", "paid", "--expires-in", "30d",
        "--output", "json", token=admin_token)).stdout)
    license_file = tmp_path / "license.yaml"
    ok(run_cli("customer", "download-license", "--customer", str(customer["id"]),
               "-o", str(license_file), token=admin_token))
    assert cli_stack.manage("verify_license", str(license_file)).startswith("OK")
    license_id = re.search(r"licenseID:\s*(\S+)", license_file.read_text()).group(1)
    customers = ok(run_cli("customer", "ls", "--output", "json", token=admin_token)).stdout
    assert "Big Bank CI" in customers
    assert license_id not in customers  # CI logs do not collect customers' credentials

    # Mirror an image into the linked registry and wait for it.
    mirrored = ok(run_cli("mirror", "create", image, f"{ECR_HOST}/demo-apps/nginx-ci:1.2.3",
                          "--wait", token=admin_token))
    assert "succeeded" in mirrored.stdout
    result = subprocess.run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", "--creds", f"AWS:{MOTO_TOKEN_PASSWORD}",
         f"docker://{ecr_registry.host}/demo-apps/nginx-ci:1.2.3"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["schemaVersion"] == 2


def test_promote_then_demote_by_release_sequence(run_cli, cli_stack, admin_token, tmp_path):
    ok = checked(cli_stack)
    manifests = write_release(tmp_path / "manifests", "nginx:1.27")
    created = ok(run_cli("release", "create", "--yaml-dir", str(manifests), token=admin_token))
    sequence = int(re.fullmatch(r"SEQUENCE: (\d+)\n", created.stdout).group(1))  # as scripts read it
    # docker.io is out of reach here, so the image check fails the public image: promote anyway.
    ok(run_cli("release", "promote", str(sequence), "Beta", "--version", "4.0.0",
               "--allow-failing-images", token=admin_token))
    beta = {c["name"]: c for c in json.loads(ok(run_cli("channel", "ls", "--output", "json",
                                                        token=admin_token)).stdout)}["Beta"]
    assert (beta["releaseSequence"], beta["currentVersion"]) == (sequence, "4.0.0")

    ok(run_cli("release", "demote", "Beta", "--release-sequence", str(sequence), token=admin_token))
    beta = {c["name"]: c for c in json.loads(ok(run_cli("channel", "ls", "--output", "json",
                                                        token=admin_token)).stdout)}["Beta"]
    assert beta["releaseSequence"] != sequence
    again = run_cli("release", "demote", "Beta", "--release-sequence", str(sequence), token=admin_token)
    assert again.returncode == 1 and f"release {sequence} is not live in Beta" in again.stderr


def test_names_print_as_typed_in_tables(run_cli, cli_stack, admin_token):
    ok = checked(cli_stack)
    name = "Ops [/red] Team [bold]"
    ok(run_cli("customer", "create", "--name", name, "--channel", "Stable", token=admin_token))
    listed = ok(run_cli("customer", "ls", token=admin_token))
    assert name in listed.stdout

"""Refusals exit 1 with the API's own message: what to fix, from the server, not a traceback."""

import pytest

from tests.cli.conftest import create_token
from tests.cli.manifests import write_release

pytestmark = [pytest.mark.postgres, pytest.mark.postgres_only, pytest.mark.slow]


def refused(result, message):
    assert result.returncode == 1, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_token_is_refused_with_the_apis_message(run_cli):
    refused(run_cli("channel", "ls", token="vp_00000000_" + "0" * 40), "API token")


def test_a_token_on_stdin_works_like_the_environment(run_cli, admin_token):
    result = run_cli("channel", "ls", "--token-stdin", input=admin_token + "\n")
    assert result.returncode == 0, result.stderr
    assert "Unstable" in result.stdout


def test_an_unknown_channel_names_the_channels_there_are(run_cli, admin_token):
    refused(run_cli("release", "promote", "1", "Nightly", "--version", "1.0.0", token=admin_token),
            "no channel 'Nightly' in this app (channels: ")


def test_bad_yaml_is_refused_with_its_line_and_column(run_cli, admin_token, tmp_path):
    manifests = write_release(tmp_path / "bad", "nginx")
    (manifests / "broken.yaml").write_text("apiVersion: v1\nkind: ConfigMap\ndata: [unclosed\n")
    result = run_cli("release", "create", "--yaml-dir", str(manifests), token=admin_token)
    refused(result, "broken.yaml")
    assert "broken.yaml: Line 4, column 1:" in result.stderr


def test_a_support_token_cannot_create_a_release(run_cli, cli_stack, tmp_path):
    token = create_token(cli_stack, "Support", "ci-support")
    manifests = write_release(tmp_path / "ok", "nginx")
    result = run_cli("release", "create", "--yaml-dir", str(manifests), token=token)
    assert result.returncode == 1
    assert "Error:" in result.stderr and "Traceback" not in result.stderr


def test_promoting_images_customers_cannot_pull_needs_allow_failing_images(run_cli, admin_token,
                                                                         tmp_path):
    # docker.io is out of reach here: the image check says customers will fail to pull it.
    manifests = write_release(tmp_path / "public", "nginx:1.27")
    result = run_cli("release", "create", "--yaml-dir", str(manifests), "--promote", "Beta",
                     "--version", "3.0.0", token=admin_token)
    refused(result, "was created but not promoted to Beta: Customers will fail to pull the images listed in images")
    assert "set promoteAnyway" in result.stderr
    assert "Add --allow-failing-images to promote anyway." in result.stderr
    assert "docker.io/library/nginx:1.27" in result.stderr

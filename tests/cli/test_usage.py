"""Usage errors exit 2 before anything is sent; the token never travels as an argument."""

import os
import subprocess

import pytest

NOWHERE = "http://127.0.0.1:9"  # discard port: a usage error must not even try to connect


def run(cli_bin, *args, token="vp_0123abcd_" + "0" * 40, input=None, env=None):
    environment = {"PATH": os.environ.get("PATH", ""), "VENDOR_PORTAL_URL": NOWHERE,
                   "VENDOR_PORTAL_APP": "mysampleecrapp", **(env or {})}
    if token:
        environment["VENDOR_PORTAL_API_TOKEN"] = token
    return subprocess.run([str(cli_bin), *args], env=environment, input=input,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "message"), [
    (("release", "create"), "Missing option '--yaml-dir'"),
    (("release", "create", "--yaml-dir", ".", "--version", "1.0.0"), "go with --promote"),
    (("release", "create", "--yaml-dir", ".", "--promote", "Unstable"), "--promote needs --version"),
    (("release", "ls", "--token", "secret"), "No such option '--token'"),
    (("release", "ls", "--output", "yaml"), "'yaml' is not one of 'table', 'json'"),
    (("release", "promote", "two", "Unstable", "--version", "1"), "'two' is not a valid integer"),
    (("release", "demote", "Unstable"), "exactly one of --channel-sequence or --release-sequence"),
    (("customer", "create", "--name", "A", "--channel", "Unstable", "--expires-in", "forever"),
     "30d, 72h, 90m"),
    (("customer", "create", "--name", "A", "--channel", "Unstable", "--type", "gold"),
     "'gold' is not one of"),
    (("registry", "add", "ecr", "--endpoint", "e", "--access-key-id", "AKIA",
      "--secret-access-key", "s"), "No such option '--secret-access-key'"),
    (("registry", "add", "ecr", "--endpoint", "e", "--access-key-id", "AKIA"),
     "No Secret Access Key"),
    (("mirror", "create", "nginx"), "Missing argument 'TARGET'"),
    (("nonsense",), "No such command 'nonsense'"),
])
def test_usage_errors_exit_2_with_what_to_fix(cli_bin, args, message):
    result = run(cli_bin, *args)
    assert result.returncode == 2, result
    assert message in result.stderr


def test_without_a_token_it_says_where_one_comes_from(cli_bin):
    result = run(cli_bin, "channel", "ls", token=None)
    assert result.returncode == 2
    assert "set VENDOR_PORTAL_API_TOKEN or pipe it in with --token-stdin" in result.stderr


def test_without_an_app_it_asks_for_one(cli_bin):
    result = run(cli_bin, "channel", "ls", env={"VENDOR_PORTAL_APP": ""})
    assert result.returncode == 2
    assert "VENDOR_PORTAL_APP" in result.stderr


def test_an_empty_yaml_dir_is_a_usage_error(cli_bin, tmp_path):
    (tmp_path / "notes.txt").write_text("not a manifest")
    result = run(cli_bin, "release", "create", "--yaml-dir", str(tmp_path))
    assert result.returncode == 2
    assert "no .yaml or .yml files" in result.stderr


def test_an_unreachable_portal_is_a_failure_naming_the_url(cli_bin):
    result = run(cli_bin, "app", "ls")
    assert result.returncode == 1
    assert f"cannot reach the vendor portal at {NOWHERE}" in result.stderr

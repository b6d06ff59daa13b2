"""The setup scripts behind `make run` and `make test`, with fake programs in place of apt."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import in_ci, require_binary

BASE_DIR = Path(__file__).resolve().parents[2]


def fake_program(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def bootstrap(tmp_path, *, python_body: str, user_id: str) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    python = fake_program(bin_dir, "python3", python_body)
    apt = fake_program(bin_dir, "apt-get", f'echo "$@" >> {tmp_path}/apt.log')
    env = {**os.environ, "PYTHON": str(python), "VENV": str(tmp_path / "venv"), "APT_GET": str(apt),
           "USER_ID": user_id}
    return subprocess.run(
        ["bash", str(BASE_DIR / "scripts/bootstrap-venv.sh")], env=env, capture_output=True, text=True,
        timeout=60,
    )


# A Python 3.11 without ensurepip, as on a bare Debian without python3-venv.
NO_VENV_PYTHON = """
case "$*" in
  *version_info*) echo 3.11 ;;
  *ensurepip*) exit 1 ;;
  *) exit 1 ;;
esac
"""


def test_without_venv_and_not_root_it_prints_the_command_that_fixes_it(tmp_path):
    result = bootstrap(tmp_path, python_body=NO_VENV_PYTHON, user_id="1000")
    assert result.returncode == 1
    assert "sudo apt-get install -y python3-venv" in result.stderr
    assert not (tmp_path / "apt.log").exists()
    assert not (tmp_path / "venv").exists()


def test_without_venv_as_root_it_installs_python3_venv(tmp_path):
    result = bootstrap(tmp_path, python_body=NO_VENV_PYTHON, user_id="0")
    apt_calls = (tmp_path / "apt.log").read_text().splitlines()
    assert apt_calls == ["update -qq", "install -y -qq python3-venv"]
    # The fake python still cannot make a venv: the script says so and leaves nothing behind.
    assert result.returncode == 1
    assert not (tmp_path / "venv").exists()


def test_it_refuses_another_python_version(tmp_path):
    result = bootstrap(tmp_path, python_body='echo 3.9', user_id="1000")
    assert result.returncode == 1
    assert "needs Python 3.11" in result.stderr


def test_it_creates_the_venv_with_a_real_python(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "VENV": str(tmp_path / "venv")}
    subprocess.run(["bash", str(BASE_DIR / "scripts/bootstrap-venv.sh")], env=env, check=True,
                   capture_output=True, timeout=120)
    assert (tmp_path / "venv" / "bin" / "python").exists()


def make_test_postgres(tmp_path, pytest_exit: int) -> subprocess.CompletedProcess:
    require_binary("make")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    fake_program(venv / "bin", "pytest", f'echo "pytest $@ DATABASE_URL=$DATABASE_URL"; exit {pytest_exit}')
    return subprocess.run(
        ["make", "--no-print-directory", "test-postgres", f"VENV={venv}"], cwd=BASE_DIR,
        capture_output=True, text=True, timeout=60,
    )


def test_the_postgres_run_accepts_no_tests_collected(tmp_path):
    result = make_test_postgres(tmp_path, 5)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pytest -m postgres" in result.stdout


@pytest.mark.parametrize("exit_code", [1, 2])
def test_the_postgres_run_fails_the_build_when_tests_fail(tmp_path, exit_code):
    assert make_test_postgres(tmp_path, exit_code).returncode != 0


def test_ci_runs_make_test_strictly():
    script = (BASE_DIR / ".ci/run").read_text()
    assert script.startswith("#!/usr/bin/env bash")
    assert "set -euo pipefail" in script
    assert "make test" in script


def test_missing_servers_fail_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert in_ci()
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_binary("no-such-program-anywhere")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        require_binary("no-such-program-anywhere")


TEST_PROGRAMS = ["redis-server", "docker-registry", "skopeo", "htpasswd", "chromium", "pg_ctlcluster", "caddy"]


def install_test_deps(tmp_path, present, *, user_id, ci=""):
    """Run scripts/install-test-deps.sh with only ``present`` programs (fakes) on its PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in present:
        fake_program(bin_dir, name, "exit 0")
    for tool in ("ls",):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    pg_lib = tmp_path / "pg"
    if "pg_ctlcluster" in present:
        (pg_lib / "15" / "bin").mkdir(parents=True)
        fake_program(pg_lib / "15" / "bin", "postgres", "exit 0")
    apt = fake_program(tmp_path, "apt-get", f'echo "$@" >> {tmp_path}/apt.log')
    env = {"PATH": str(bin_dir), "APT_GET": str(apt), "USER_ID": user_id, "PG_LIB": str(pg_lib), "CI": ci}
    return subprocess.run([shutil.which("bash"), str(BASE_DIR / "scripts/install-test-deps.sh")], env=env,
                          capture_output=True, text=True, timeout=60)


def test_test_deps_installs_nothing_when_all_are_there(tmp_path):
    result = install_test_deps(tmp_path, TEST_PROGRAMS, user_id="0")
    assert result.returncode == 0, result.stderr
    assert "all installed" in result.stdout
    assert not (tmp_path / "apt.log").exists()


def test_test_deps_installs_only_the_missing_packages_as_root(tmp_path):
    result = install_test_deps(tmp_path, ["redis-server", "skopeo", "htpasswd", "pg_ctlcluster"], user_id="0")
    assert result.returncode == 0, result.stderr
    assert "Installing through apt: docker-registry chromium caddy" in result.stdout
    apt_calls = (tmp_path / "apt.log").read_text().splitlines()
    assert apt_calls == ["update -qq", "install -y -qq --no-install-recommends docker-registry chromium caddy"]


def test_test_deps_says_what_to_install_when_not_root_and_fails_under_ci(tmp_path):
    result = install_test_deps(tmp_path, ["redis-server"], user_id="1000", ci="true")
    assert result.returncode == 1
    assert "sudo apt-get update && sudo apt-get install -y docker-registry skopeo apache2-utils chromium postgresql caddy" in result.stderr
    assert not (tmp_path / "apt.log").exists()

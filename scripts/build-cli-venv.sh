#!/usr/bin/env bash
# Build the command-line tool's own virtualenv (var/venv-cli) from cli/constraints.txt and install
# ./cli into it, as a pipeline would (pip install ./cli). The tests run `vendor-portal` from it.
# A no-op while nothing under cli/ changed since the last build (stamp file).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
CLI_VENV="${CLI_VENV:-var/venv-cli}"
STAMP="$CLI_VENV/.installed"

if [ -f "$STAMP" ] && [ -x "$CLI_VENV/bin/vendor-portal" ] \
        && [ -z "$(find cli -newer "$STAMP" -not -path '*/__pycache__*' -not -name '*.pyc' -print -quit)" ]; then
    exit 0
fi
if [ ! -x "$CLI_VENV/bin/python" ]; then
    echo "Creating $CLI_VENV for the command-line tool..."
    "$PYTHON" -m venv "$CLI_VENV"
fi
# Not editable: the tests run what `pip install ./cli` installs.
"$CLI_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c cli/constraints.txt --force-reinstall --no-deps ./cli
"$CLI_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c cli/constraints.txt ./cli
# setuptools builds in the source tree: leave it as checked out.
rm -rf cli/build cli/*.egg-info
touch "$STAMP"

#!/usr/bin/env bash
# Create .venv with Python 3.11. A bare Debian lacks python3-venv (venv's ensurepip):
# install it when root, else say the one command that fixes it.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
APT_GET="${APT_GET:-apt-get}"      # overridable for the tests
USER_ID="${USER_ID:-$(id -u)}"

[ -x "$VENV/bin/python" ] && exit 0

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: $PYTHON not found. Install Python 3.11: apt-get install -y python3 python3-venv" >&2
    exit 1
fi
version="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$version" != "3.11" ]; then
    echo "error: the portal needs Python 3.11; $PYTHON is $version. Run: make PYTHON=python3.11 ..." >&2
    exit 1
fi

if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    if [ "$USER_ID" = 0 ] && command -v "$APT_GET" >/dev/null 2>&1; then
        echo "Installing python3-venv (Python's venv module is missing)..."
        "$APT_GET" update -qq
        DEBIAN_FRONTEND=noninteractive "$APT_GET" install -y -qq python3-venv
    else
        echo "error: Python's venv module is missing. Fix it with:" >&2
        echo "    sudo apt-get install -y python3-venv" >&2
        exit 1
    fi
fi

echo "Creating $VENV with $PYTHON ($version)..."
if ! "$PYTHON" -m venv "$VENV"; then
    rm -rf "$VENV"
    echo "error: could not create $VENV (on Debian: sudo apt-get install -y python3-venv)" >&2
    exit 1
fi

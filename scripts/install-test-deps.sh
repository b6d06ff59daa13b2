#!/usr/bin/env bash
# Install the programs the tests start, through apt, when they are missing.
# As root: one `apt-get update`, then only the missing packages. Otherwise print the command;
# with CI=true a missing program is an error (the tests would fail anyway).
set -euo pipefail

APT_GET="${APT_GET:-apt-get}"      # overridable for the tests
USER_ID="${USER_ID:-$(id -u)}"
PG_LIB="${PG_LIB:-/usr/lib/postgresql}"

# package:program-that-shows-it-is-installed
wanted=(
    "redis-server:redis-server"
    "docker-registry:docker-registry"
    "skopeo:skopeo"
    "apache2-utils:htpasswd"
    "chromium:chromium"
    "postgresql:pg_ctlcluster"
    "caddy:caddy"
)

missing=()
for entry in "${wanted[@]}"; do
    package="${entry%%:*}"
    program="${entry#*:}"
    if ! command -v "$program" >/dev/null 2>&1; then
        missing+=("$package")
    fi
done
if ! ls "$PG_LIB"/*/bin/postgres >/dev/null 2>&1 && [[ ! " ${missing[*]} " == *" postgresql "* ]]; then
    missing+=("postgresql")
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "Test programs: all installed."
    exit 0
fi

if [ "$USER_ID" = 0 ] && command -v "$APT_GET" >/dev/null 2>&1; then
    echo "Installing through apt: ${missing[*]}"
    "$APT_GET" update -qq
    DEBIAN_FRONTEND=noninteractive "$APT_GET" install -y -qq --no-install-recommends "${missing[@]}"
    # Debian starts services on install; the tests start their own on free ports (caddy's
    # would hold port 80 and come back at boot: disabled too).
    for service in redis-server docker-registry caddy; do
        if [[ " ${missing[*]} " == *" $service "* ]] && command -v service >/dev/null 2>&1; then
            service "$service" stop >/dev/null 2>&1 || true
        fi
    done
    if [[ " ${missing[*]} " == *" caddy "* ]] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now caddy.service >/dev/null 2>&1 || true
    fi
else
    echo "Missing test programs: ${missing[*]}. Install them with:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    case "${CI:-}" in
        1|true|TRUE|True|yes|on) exit 1 ;;
    esac
    echo "(continuing: tests that need them are skipped)" >&2
fi

#!/usr/bin/env bash
# Install what betpipe needs to build, run and test on Debian 12 (apt). Idempotent: packages
# already present are left alone. Run as root or through sudo.
set -euo pipefail
packages=(
    build-essential cmake pkg-config git ca-certificates tzdata
    libjansson-dev libsqlite3-dev libhiredis-dev libcurl4-openssl-dev libgsl-dev zlib1g-dev
    libmicrohttpd-dev libcriterion-dev
    redis-server redis-tools sqlite3 python3 binutils clang-format
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || {
            echo "deps.sh: missing packages (${missing[*]}) and not root: run as root, or install sudo" >&2
            exit 1
        }
        SUDO="sudo"
    fi
    echo "installing: ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The test suite starts its own redis-server instances on unix sockets; the packaged
    # service is not needed (and must not hold the default port for our tests: they never use it).
fi

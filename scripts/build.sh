#!/usr/bin/env bash
# Configures and builds quench (RelWithDebInfo, Ninja) into ${BUILD_DIR:-build}.
# Afterwards $BUILD_DIR/bin holds quench and quench-devkafka. Shared by scripts/test.sh and
# scripts/demo.sh; run from anywhere.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${BUILD_DIR:-build}

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build_dir"

#!/usr/bin/env bash
# scripts/test.sh: the project's test command (the README's, and what .ci/run runs).
# Installs what the tests need (scripts/setup.sh, as root), then runs the whole test suite in release
# mode: unit tests, reactor tests, and the integration tests that mount arsyncfs over temp dirs (they
# need root, as CI has, and /dev/fuse). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

bash scripts/setup.sh
# --no-fail-fast: every test binary runs, so one failure does not hide the others.
cargo test --release --no-fail-fast "$@"

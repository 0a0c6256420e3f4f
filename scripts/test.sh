#!/usr/bin/env bash
# scripts/test.sh: the project's test command (the README's, and what .ci/run runs).
# Installs what the tests need (scripts/setup.sh, as root), then runs the test suite in release mode:
# first the fault-injection tests (tests/fault_injection.rs, tests/reactor_faults.rs and the unit
# tests, built with the cargo feature fault-injection, which release builds leave out), then the
# whole suite without the feature (unit tests, reactor tests, and the integration tests that mount
# arsyncfs over temp dirs; they need root, as CI has, and /dev/fuse), which also leaves
# target/release/arsyncfs built without it; then the soak's 60-second form (scripts/soak.sh: fio with verify, model-checked data,
# metadata and xattr churn, remounts). Extra arguments go to both `cargo test` runs and skip the soak,
# as does SOAK=0; SOAK_SECONDS sets its length.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

bash scripts/setup.sh
# --no-fail-fast: every test binary runs, so one failure does not hide the others; and the second
# run happens whatever the first found.
status=0
cargo test --release --no-fail-fast --features fault-injection --lib --test fault_injection --test reactor_faults "$@" || status=$?
cargo test --release --no-fail-fast "$@" || status=$?
if [[ $# -eq 0 && ${SOAK:-1} != 0 ]]; then
  # The binary cargo test just built (without fault injection).
  SOAK_SECONDS=${SOAK_SECONDS:-60} bash scripts/soak.sh 1 target/release/arsyncfs || status=1
fi
exit "$status"

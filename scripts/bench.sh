#!/usr/bin/env bash
# scripts/bench.sh: the side-by-side benchmark (issue 5), one command, as root:
#
#   bash scripts/bench.sh
#
# Sets the machine up (scripts/setup.sh), builds libfuse's passthrough_ll (C reference) and arsyncfs
# (release), mounts both over one temp backing directory, and runs the same fio jobs on the native
# backing directory, the passthrough_ll mount and the arsyncfs mount, interleaved run by run, REPS
# times. Writes docs/benchmarks.md (medians, ratios, resources), docs/benchmarks.svg and
# docs/scaling.svg; the raw runs go to target/bench/results-DATE.json. Both mounts are unmounted on
# every path (end, error, Ctrl-C).
#
# Environment (defaults in brackets):
#   REPS [3]           repetitions of every run
#   RUNTIME [10]       seconds per fio run (plus RAMP seconds of ramp, default 2, 0 if RUNTIME < 5)
#   TARGETS ["native passthrough_ll arsyncfs"]  which targets, in order; opt-in: arsyncfs-passthrough
#                      (arsyncfs --passthrough: the kernel reads and writes the backing files itself)
#   JOBS [.]           regex on job ids (seqread-1m, seqread-1m-j4, seqwrite-1m, randread-4k-qd1-io_uring,
#                      randread-4k-qd1-libaio, randread-4k-qd32-io_uring, randread-4k-qd32-libaio,
#                      randwrite-4k-qd32, randrw-4k-qd32-j4)
#   MODES ["buffered direct"]  CACHES ["warm cold"]  SCALING [1]  META [1]  META_FILES [20000]
#   FILE_SIZE [512M]   size of each fio data file (up to 8 shared read files + 4 write files per target)
#   ARSYNCFS_BIN       use this arsyncfs binary instead of building target/release/arsyncfs
#   ARSYNCFS_OPTS      extra arsyncfs arguments (default: none, i.e. arsyncfs' defaults)
#   PT_OPTS            extra passthrough_ll -o options (default: none, i.e. its defaults: cache=auto,
#                      timeout=1.0, no writeback, multi-threaded)
#   OUT_MD [docs/benchmarks.md] OUT_SVG [docs/benchmarks.svg] OUT_SCALING [docs/scaling.svg]
#   BENCH_TMP [/tmp]   where the temp backing directory and mount points go (needs disk space:
#                      about (8 + 4 x number of targets) x FILE_SIZE)
#   PLAN [0]           1: only print how many runs the settings make and about how long they take
#
# Progress: before each run a line says which run of how many it is and the time left, estimated
# from the runs of the same kind finished so far (warm fio, cold fio, metadata).
#
# Quick smoke run (a couple of minutes):
#   REPS=1 RUNTIME=2 FILE_SIZE=64M META_FILES=2000 JOBS='seqread-1m$|randread-4k-qd32-io_uring' bash scripts/bench.sh
set -euo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SCRIPT")/.." && pwd)
cd "$REPO"

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$SCRIPT"
  exit 0
fi
if [[ $# -gt 0 ]]; then
  echo "bench.sh: takes no arguments (configure with environment variables, see --help)" >&2
  exit 2
fi
REPS=${REPS:-3}
RUNTIME=${RUNTIME:-10}
TARGETS=${TARGETS:-"native passthrough_ll arsyncfs"}
FILE_SIZE=${FILE_SIZE:-512M}
OUT_MD=${OUT_MD:-docs/benchmarks.md}
OUT_SVG=${OUT_SVG:-docs/benchmarks.svg}
OUT_SCALING=${OUT_SCALING:-docs/scaling.svg}
for t in $TARGETS; do
  case $t in native | passthrough_ll | arsyncfs | arsyncfs-passthrough) ;; *) echo "bench.sh: unknown target: $t" >&2; exit 2 ;; esac
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: REPS must be a positive integer" >&2; exit 2; }
[[ $RUNTIME =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: RUNTIME must be a positive integer (seconds)" >&2; exit 2; }
# The options of the run matrix, shared by the plan and the run.
MATRIX=(--reps "$REPS" --runtime "$RUNTIME" ${RAMP:+--ramp-time "$RAMP"} --file-size "$FILE_SIZE"
  --jobs "${JOBS:-.}" --modes "${MODES:-buffered direct}" --caches "${CACHES:-warm cold}"
  --scaling "${SCALING:-1}" --meta "${META:-1}" --meta-files "${META_FILES:-20000}")
if [[ ${PLAN:-0} == 1 ]]; then
  plan_targets=()
  for t in $TARGETS; do plan_targets+=(--target "$t=/nonexistent"); done
  exec python3 scripts/bench/run.py --plan --backing /nonexistent "${plan_targets[@]}" --out /dev/null "${MATRIX[@]}"
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "bench.sh: must run as root (mounts, drops caches)" >&2
  exit 1
fi

# The exact command, for the report.
COMMAND="bash scripts/bench.sh"
for v in REPS RUNTIME TARGETS JOBS MODES CACHES SCALING META META_FILES FILE_SIZE RAMP ARSYNCFS_OPTS PT_OPTS; do
  if [[ -n ${!v:-} ]]; then COMMAND="$v=$(printf '%q' "${!v}") $COMMAND"; fi
done

bash scripts/setup.sh

PT_BIN=""
AR_BIN=""
if [[ " $TARGETS " == *" passthrough_ll "* ]]; then
  PT_BIN=$(bash scripts/bench/build-passthrough-ll.sh)
fi
if [[ " $TARGETS " == *" arsyncfs "* || " $TARGETS " == *" arsyncfs-passthrough "* ]]; then
  if [[ -n ${ARSYNCFS_BIN:-} ]]; then
    AR_BIN=$(readlink -f "$ARSYNCFS_BIN")
  else
    cargo build --release --bin arsyncfs
    AR_BIN=$REPO/target/release/arsyncfs
  fi
  [[ -x $AR_BIN ]] || { echo "bench.sh: not an executable: $AR_BIN" >&2; exit 1; }
fi

mkdir -p target/bench
WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/arsyncfs-bench.XXXXXX")
BACKING=$WORK/backing
mkdir -p "$BACKING"
declare -A MNT=() PID=() CONN=()

# shellcheck source=scripts/lib/fuse-mount.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/fuse-mount.sh"

# Unmount one target's mount and stop its daemon (see stop_mount).
stop_target() {
  local t=$1 mnt=${MNT[$1]:-}
  [[ -n $mnt ]] || return 0
  stop_mount "$mnt" "${PID[$t]:-}" "${CONN[$t]:-}" || echo "bench.sh: $t did not stop cleanly" >&2
  unset "MNT[$t]"
}

RUNNER_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $RUNNER_PID ]]; then
    kill -TERM "$RUNNER_PID" 2>/dev/null || true
    wait "$RUNNER_PID" 2>/dev/null || true
  fi
  for t in "${!MNT[@]}"; do stop_target "$t"; done
  remove_work_dir "$WORK" bench.sh || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Start a FUSE daemon in the foreground (as a background job) and wait for its mount.
start_target() {
  local t=$1 mnt=$WORK/mnt-$1
  mkdir -p "$mnt"
  MNT[$t]=$mnt
  case $t in
    passthrough_ll)
      # shellcheck disable=SC2086
      "$PT_BIN" -f -o "source=$BACKING${PT_OPTS:+,$PT_OPTS}" "$mnt" >"$WORK/$t.log" 2>&1 &
      ;;
    arsyncfs)
      # shellcheck disable=SC2086
      "$AR_BIN" ${ARSYNCFS_OPTS:-} "$BACKING" "$mnt" >"$WORK/$t.log" 2>&1 &
      ;;
    arsyncfs-passthrough)
      # shellcheck disable=SC2086
      "$AR_BIN" --passthrough ${ARSYNCFS_OPTS:-} "$BACKING" "$mnt" >"$WORK/$t.log" 2>&1 &
      ;;
  esac
  PID[$t]=$!
  local waited=0
  wait_for_mount "$mnt" "${PID[$t]}" "$WORK/$t.log" || waited=$?
  case $waited in
    1) echo "bench.sh: $t exited before mounting (its log is above)" >&2; exit 1 ;;
    2) echo "bench.sh: $t did not mount within 30 s" >&2; exit 1 ;;
  esac
  CONN[$t]=$(fuse_conn "$mnt")
  echo "bench.sh: $t (pid ${PID[$t]}) mounted on $mnt"
}

TARGET_ARGS=()
for t in $TARGETS; do
  if [[ $t == native ]]; then
    TARGET_ARGS+=(--target "native=$BACKING")
  else
    start_target "$t"
    TARGET_ARGS+=(--target "$t=${MNT[$t]}:${PID[$t]}")
  fi
done

STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS=$REPO/target/bench/results-$STAMP.json
INFO=(--info "arsyncfs_opts=${ARSYNCFS_OPTS:-(defaults)}" --info "passthrough_ll_opts=${PT_OPTS:-(defaults: cache=auto, timeout=1.0, no writeback)}")
if [[ -n ${ARSYNCFS_BIN:-} ]]; then
  INFO+=(--info "arsyncfs_commit=binary $ARSYNCFS_BIN ($("$AR_BIN" --version 2>/dev/null | head -1))")
elif [[ -n $AR_BIN ]]; then
  INFO+=(--info "arsyncfs_commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' with uncommitted changes')")
fi

python3 scripts/bench/run.py --backing "$BACKING" "${TARGET_ARGS[@]}" --out "$RESULTS" \
  "${MATRIX[@]}" --command "$COMMAND" "${INFO[@]}" &
RUNNER_PID=$!
wait "$RUNNER_PID"
RUNNER_PID=""

for t in "${!MNT[@]}"; do stop_target "$t"; done

python3 scripts/bench/report.py "$RESULTS" --md "$OUT_MD" --svg "$OUT_SVG" --scaling "$OUT_SCALING"
echo "bench.sh: wrote $OUT_MD, $OUT_SVG, $OUT_SCALING (raw: $RESULTS)"

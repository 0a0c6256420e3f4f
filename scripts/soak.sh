#!/usr/bin/env bash
# scripts/soak.sh: a long mixed run on one arsyncfs mount, remounted every few seconds, checked against
# models all along and at the end.
#
#   scripts/soak.sh [MINUTES] [ARSYNCFS_BIN]     MINUTES may be fractional (default 10)
#   SOAK_SECONDS=60 scripts/soak.sh              the length in seconds instead (CI's form)
#
# The run is cut into phases of REMOUNT_EVERY seconds. In each phase these run at once on the mount:
#   - fio, five jobs, time-based, every block written with a crc32c verify header: buffered 4 KiB
#     random writes (psync) and O_DIRECT 64 KiB random writes (libaio, QD 8) that read back and
#     verify what they wrote as they go (verify_backlog), buffered 16 KiB random writes through
#     io_uring (QD 4), and buffered (psync) and O_DIRECT (io_uring, QD 16) random reads that
#     verify every block they read of files laid out before the first phase;
#   - two data workers (scripts/soak/data_worker.py: buffered, O_DIRECT and mmap writes and reads,
#     truncate, fallocate, fdatasync, reopening; every read checked against an in-memory model);
#   - metadata churn (meta_worker.py: create, link, rename, unlink, directory renames) and
#     xattr churn (xattr_worker.py), each against a model.
# Then the workloads stop, the mount is taken down cleanly (in turn by `fusermount3 -u` and by SIGTERM to
# the daemon), the daemon must exit 0 with its exit counters balanced, and the next phase mounts again.
# The models live outside the mount; every worker checks its whole tree against its model at the start
# of each phase (after the remount) and at its end, and fio reads and verifies every block of every
# one of its files after each remount. After the last phase a final mount checks everything once
# more. The figures are printed at the end (scripts/soak/figures.py); the exit status is non-zero on
# any corruption, verify error, lost reply, unbalanced pool, failed unmount or failed worker.
#
# Environment:
#   SOAK_SECONDS    the length in seconds (overrides MINUTES; SECONDS itself is bash's own clock)
#   REMOUNT_EVERY   seconds per phase (default: a tenth of the run, at least 15 and at most 60)
#   ARSYNCFS_OPTS   extra arguments for arsyncfs, split on spaces (e.g. a fault-injection build's)
#   SOAK_FAULTS=1   the workers count failed operations instead of stopping at the first, and fio
#                   goes on after I/O errors (for builds that inject faults); verify errors still fail
#   KEEP=1          keep the work dir (backing tree, models, logs); it is kept on failure anyway
#   TMPDIR          where the work dir goes (default /var/tmp: O_DIRECT needs a disk-backed filesystem)
set -uo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SCRIPT")/.." && pwd)
# shellcheck source=lib/fuse-mount.sh
source "$REPO/scripts/lib/fuse-mount.sh"
WORKERS=$REPO/scripts/soak

die() { echo "soak: $*" >&2; exit 2; }

MINUTES=${1:-10}
BIN=${2:-$REPO/target/release/arsyncfs}
if [[ -n ${SOAK_SECONDS:-} ]]; then
  TOTAL=$SOAK_SECONDS
else
  [[ $MINUTES =~ ^[0-9]+([.][0-9]+)?$|^[.][0-9]+$ ]] || die "MINUTES must be a number, not '$MINUTES'"
  TOTAL=$(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60 + 0.5 }')
fi
[[ $TOTAL =~ ^[0-9]+$ && $TOTAL -ge 1 ]] || die "the length must be a whole number of seconds >= 1, not '$TOTAL'"
if [[ -n ${REMOUNT_EVERY:-} ]]; then
  PHASE=$REMOUNT_EVERY
else
  PHASE=$((TOTAL / 10))
  ((PHASE < 15)) && PHASE=15
  ((PHASE > 60)) && PHASE=60
fi
[[ $PHASE =~ ^[0-9]+$ && $PHASE -ge 1 ]] || die "REMOUNT_EVERY must be a whole number of seconds >= 1"
((PHASE > TOTAL)) && PHASE=$TOTAL
PHASES=$(((TOTAL + PHASE - 1) / PHASE))
[[ -x $BIN ]] || die "no arsyncfs binary at $BIN (build it: cargo build --release)"
[[ $(id -u) -eq 0 ]] || die "must run as root (it mounts, and the xattr worker sets trusted.* attributes)"
for tool in fio python3 fusermount3; do
  command -v "$tool" >/dev/null || die "$tool is missing (bash scripts/setup.sh installs it)"
done
read -r -a OPTS <<<"${ARSYNCFS_OPTS:-}"
TOLERATE=()
FIO_ON_ERROR=none
if [[ ${SOAK_FAULTS:-0} == 1 ]]; then
  TOLERATE=(--tolerate-errors)
  FIO_ON_ERROR=io
fi

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/arsyncfs-soak.XXXXXX") || die "cannot make a work dir"
BACKING=$WORK/backing MNT=$WORK/mnt STATE=$WORK/state LOGS=$WORK/logs
mkdir -p "$BACKING" "$MNT" "$STATE" "$LOGS"
DPID='' CONN='' SAMPLER='' FILTER='' CYCLE=0
JOBS=()
FAILURES=()
START=$(date +%s)

fail() {
  echo "soak: FAIL: $*" >&2
  FAILURES+=("$*")
}

# Stops whatever this script started, unmounts on every path, and keeps the work dir when something
# failed (or KEEP=1).
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${JOBS[@]}" $SAMPLER; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${JOBS[@]}" $SAMPLER; do
    wait "$pid" 2>/dev/null
  done
  if is_mounted "$MNT" || [[ -n $DPID ]]; then
    stop_mount "$MNT" "$DPID" "$CONN" || rc=1
  fi
  [[ -n $FILTER ]] && wait "$FILTER" 2>/dev/null
  if [[ $rc -ne 0 || ${KEEP:-0} == 1 ]]; then
    echo "soak: work dir kept: $WORK" >&2
  else
    remove_work_dir "$WORK" soak || rc=1
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "soak: interrupted" >&2; exit 130' INT TERM

# Samples the daemon's descriptors and peak RSS (VmHWM, KiB) every second into logs/samples.N.
sample_daemon() {
  local pid=$1 out=$2 fds hwm
  while kill -0 "$pid" 2>/dev/null; do
    fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
    [[ -n $hwm ]] && echo "$fds $hwm" >>"$out"
    sleep 1
  done
}

# The daemon logs with -v, plus fuser's line for each FUSE_INTERRUPT it receives (all other requests'
# debug lines are filtered out on the way to the log): fuser answers an INTERRUPT with ENOSYS, and the
# kernel refuses that answer (ENOENT, "Failed to send FUSE reply") when the interrupted request was read
# on another cloned /dev/fuse descriptor or was answered first. Such a refusal is not a lost reply;
# figures.py tells them apart by counting both. (fio's io_uring jobs are interrupted now and then:
# io_uring's task work makes a thread waiting for a FUSE request see a pending signal.)
export RUST_LOG=${RUST_LOG:-info,fuser::request=debug}
mount_fs() {
  local fifo
  CYCLE=$((CYCLE + 1))
  fifo=$LOGS/daemon.$CYCLE.fifo
  mkfifo "$fifo"
  awk '!/ DEBUG fuser::request: / || / INTERRUPT /' <"$fifo" >"$LOGS/daemon.$CYCLE.log" &
  FILTER=$!
  "$BIN" -v "${OPTS[@]}" "$BACKING" "$MNT" 2>"$fifo" &
  DPID=$!
  if ! wait_for_mount "$MNT" "$DPID" "$LOGS/daemon.$CYCLE.log"; then
    fail "mount $CYCLE did not come up"
    exit 1
  fi
  CONN=$(fuse_conn "$MNT")
  sample_daemon "$DPID" "$LOGS/samples.$CYCLE" &
  SAMPLER=$!
}

# Takes the mount down cleanly: odd lives by an unmount from outside, even ones by SIGTERM to the
# daemon (which unmounts itself). Either way the daemon must exit 0 and its counters balance.
unmount_fs() {
  local status=0 i
  if ((CYCLE % 2)); then
    fusermount3 -u "$MNT" || fail "fusermount3 -u $MNT failed (busy?)"
  else
    kill -TERM "$DPID"
  fi
  for ((i = 0; i < 300; i++)); do
    kill -0 "$DPID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$DPID" 2>/dev/null; then
    fail "daemon $DPID did not exit within 30 s of the unmount"
    stop_mount "$MNT" "$DPID" "$CONN"
  else
    wait "$DPID" || status=$?
    ((status == 0)) || fail "daemon of mount $CYCLE exited with status $status"
  fi
  DPID=''
  wait "$FILTER"
  FILTER=''
  rm -f "$LOGS/daemon.$CYCLE.fifo"
  is_mounted "$MNT" && fail "mount still present after the daemon exited"
  wait "$SAMPLER" 2>/dev/null
  SAMPLER=''
  python3 "$WORKERS/figures.py" cycle "$LOGS/daemon.$CYCLE.log" "$LOGS/daemon.$CYCLE.json" ||
    fail "daemon of mount $CYCLE: its exit counters show a loss (see above)"
}

# fio: the job file of one phase. RUNTIME 0: only read and verify every block of every file.
fio_jobs() {
  local runtime=$1 d=$MNT/fio
  cat <<EOF
[global]
directory=$d
verify=crc32c
verify_fatal=1
verify_state_save=0
continue_on_error=$FIO_ON_ERROR
group_reporting=0
randrepeat=0
EOF
  if ((runtime == 0)); then
    local f bs
    for f in wbuf:4k wdio:64k wuring:16k rbuf:4k rdio:128k; do
      bs=${f#*:}
      printf '[check-%s]\nfilename=%s.dat\nsize=32m\nbs=%s\nrw=read\nioengine=psync\n' "${f%:*}" "${f%:*}" "$bs"
    done
    return
  fi
  cat <<EOF
time_based=1
runtime=$runtime
size=32m

[wbuf]
filename=wbuf.dat
rw=randwrite
bs=4k
ioengine=psync
verify_backlog=256

[wdio]
filename=wdio.dat
rw=randwrite
bs=64k
direct=1
ioengine=libaio
iodepth=8
verify_backlog=64

[wuring]
filename=wuring.dat
rw=randwrite
bs=16k
ioengine=io_uring
iodepth=4
verify_backlog=128

[rbuf]
filename=rbuf.dat
rw=randread
bs=4k
ioengine=psync

[rdio]
filename=rdio.dat
rw=randread
bs=128k
direct=1
ioengine=io_uring
iodepth=16
EOF
}

# Lays every fio file out once, each block with a verify header, in the block size its jobs use.
fio_layout() {
  mkdir -p "$MNT/fio"
  local f
  {
    printf '[global]\ndirectory=%s\nverify=crc32c\nverify_state_save=0\ndo_verify=0\nsize=32m\nrw=write\nioengine=psync\n' "$MNT/fio"
    for f in wbuf:4k wdio:64k wuring:16k rbuf:4k rdio:128k; do
      printf '[lay-%s]\nfilename=%s.dat\nbs=%s\n' "${f%:*}" "${f%:*}" "${f#*:}"
    done
  } >"$LOGS/fio-layout.fio"
  fio --output="$LOGS/fio-layout.out" "$LOGS/fio-layout.fio" || fail "fio layout failed: $(tail -3 "$LOGS/fio-layout.out")"
}

# run_fio NAME RUNTIME [&]: one fio run, its job file, JSON output and stderr in logs/fio.NAME.*.
run_fio() {
  local name=$1 runtime=$2
  fio_jobs "$runtime" >"$LOGS/fio.$name.fio"
  fio --output-format=json --output="$LOGS/fio.$name.json" "$LOGS/fio.$name.fio" 2>"$LOGS/fio.$name.err"
}

# The workers of one phase (seconds 0: check only). Their state lives in $STATE/<worker>; each run
# of a worker gets a seed of its own.
SEED=${SOAK_SEED:-1}
run_workers() {
  local secs=$1 phase=$2 w kind name size
  JOBS=()
  for w in data:dataA:3 data:dataB:3 meta:meta:32 xattr:xattr:16; do
    IFS=: read -r kind name size <<<"$w"
    SEED=$((SEED + 1))
    python3 "$WORKERS/${kind}_worker.py" --mount "$MNT/$name" --backing "$BACKING/$name" \
      --state "$STATE/$name" --secs "$secs" --seed "$SEED" --size "$size" \
      "${TOLERATE[@]}" 2>"$LOGS/$name.$phase.err" &
    JOBS+=($!)
  done
}

# Waits for every job started; a job that failed is reported with its name.
wait_jobs() {
  local phase=$1 i names=(dataA dataB meta xattr fio) status
  for i in "${!JOBS[@]}"; do
    status=0
    wait "${JOBS[$i]}" || status=$?
    if ((status != 0)); then
      fail "${names[$i]} in phase $phase exited with status $status: $(tail -c 1500 "$LOGS/${names[$i]}.$phase.err" 2>/dev/null)"
    fi
  done
  JOBS=()
}

echo "soak: $TOTAL s in $PHASES phases of up to $PHASE s; $BIN ${OPTS[*]}; work dir $WORK"
mount_fs
fio_layout
for ((phase = 1; phase <= PHASES && ${#FAILURES[@]} == 0; phase++)); do
  left=$((TOTAL - (phase - 1) * PHASE))
  secs=$((left < PHASE ? left : PHASE))
  # After a remount: fio reads and verifies every block of its files first.
  if ((phase > 1)); then
    run_fio "check$phase" 0 || fail "fio verify after remount $((phase - 1)) failed: $(tail -c 1500 "$LOGS/fio.check$phase.err")"
  fi
  run_workers "$secs" "$phase"
  # fio itself in the background (not a subshell), so that a signal to $! reaches it.
  fio_jobs "$secs" >"$LOGS/fio.$phase.fio"
  fio --output-format=json --output="$LOGS/fio.$phase.json" "$LOGS/fio.$phase.fio" 2>"$LOGS/fio.$phase.err" &
  JOBS+=($!)
  wait_jobs "$phase"
  unmount_fs
  echo "soak: phase $phase/$PHASES done (${secs} s), $((${#FAILURES[@]})) failures"
  ((${#FAILURES[@]} == 0)) && mount_fs
done

# The final check: one more mount, every model and every fio block against the tree.
if ((${#FAILURES[@]} == 0)); then
  run_fio final 0 || fail "final fio verify failed: $(tail -c 1500 "$LOGS/fio.final.err")"
  run_workers 0 final
  wait_jobs final
  unmount_fs
fi

printf '{"seconds": %d, "phase": %d, "elapsed": %d, "bin": "%s", "opts": "%s", "failures": %s}\n' \
  "$TOTAL" "$PHASE" "$(($(date +%s) - START))" "$BIN" "${OPTS[*]}" \
  "$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "${FAILURES[@]}")" >"$WORK/soak.json"
python3 "$WORKERS/figures.py" summary "$WORK"

# shellcheck shell=bash
# Helpers for scripts that run a FUSE daemon in the foreground (as a background job) on a mount point
# of their own: wait for the mount, and take it down again on every path. Source this file.

# Whether MNT is a mount point now.
is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }

# remove_work_dir DIR WHO: removes the scratch directory DIR, unless something is still mounted under
# it (then WHO warns and leaves it, so that rm -rf cannot reach into a mount).
remove_work_dir() {
  local dir=$1 who=$2 left
  left=$(awk -v w="$dir/" 'index($2, w) == 1 { print $2 }' /proc/mounts)
  if [[ -n $left ]]; then
    echo "$who: WARNING: mounts left under $dir: $left" >&2
    return 1
  fi
  rm -rf "$dir"
}

# The FUSE connection id (/sys/fs/fuse/connections/ID) of the mount at MNT.
fuse_conn() { awk -v m="$1" '$5 == m { split($3, d, ":"); print d[2] }' /proc/self/mountinfo; }

# wait_for_mount MNT PID LOG: waits up to 30 s for the daemon PID to mount MNT. Returns 0 once
# mounted; 1 (after printing LOG) if the daemon exited first; 2 on timeout.
wait_for_mount() {
  local mnt=$1 pid=$2 log=$3 i
  for ((i = 0; i < 300; i++)); do
    is_mounted "$mnt" && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$log" >&2
      return 1
    fi
    sleep 0.1
  done
  is_mounted "$mnt" && return 0
  return 2
}

# stop_mount MNT PID CONN: unmounts MNT cleanly and gives the daemon PID 10 s to exit by itself, then
# SIGTERM/SIGKILL; a mount still there is aborted (frees processes stuck on it) and lazily detached.
# Returns 0 when the mount is gone and the daemon exited with status 0 by itself, 1 otherwise. PID and
# CONN may be empty.
stop_mount() {
  local mnt=$1 pid=$2 conn=$3 rc=0 i status=0
  if is_mounted "$mnt"; then
    fusermount3 -u "$mnt" 2>/dev/null || umount "$mnt" 2>/dev/null || rc=1
  fi
  if [[ -n $pid ]]; then
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "daemon $pid still running 10 s after unmount: SIGTERM" >&2
      rc=1
      kill -TERM "$pid" 2>/dev/null || true
      sleep 2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || status=$?
    if [[ $status -ne 0 ]]; then
      echo "daemon $pid exited with status $status" >&2
      rc=1
    fi
  fi
  if is_mounted "$mnt"; then
    rc=1
    if [[ -n $conn && -e /sys/fs/fuse/connections/$conn/abort ]]; then
      { echo 1 >"/sys/fs/fuse/connections/$conn/abort"; } 2>/dev/null || true
    fi
    umount -l "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || true
  fi
  return $rc
}

# Targets of a benchmark script (set WORK, and declare -A MNT PID CONN plus the array NAMES first).
# start_target NAME WHO CMD...: runs `CMD... $WORK/mnt-NAME` in the background (log in
# $WORK/NAME.log), waits for the mount and records it in MNT, PID, CONN and NAMES; exits the script
# with a message naming WHO if it does not mount. stop_targets takes every one down again.
start_target() {
  local name=$1 who=$2 mnt=$WORK/mnt-$1
  shift 2
  mkdir -p "$mnt"
  "$@" "$mnt" >"$WORK/$name.log" 2>&1 &
  PID[$name]=$!
  MNT[$name]=$mnt
  wait_for_mount "$mnt" "${PID[$name]}" "$WORK/$name.log" || { echo "$who: $name did not mount" >&2; exit 1; }
  CONN[$name]=$(fuse_conn "$mnt")
  NAMES+=("$name")
}

stop_targets() {
  local t
  for t in "${!MNT[@]}"; do stop_mount "${MNT[$t]}" "${PID[$t]}" "${CONN[$t]}" || true; done
}

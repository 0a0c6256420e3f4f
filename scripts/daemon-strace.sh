#!/usr/bin/env bash
# Proof that io_uring moves all file data of a running mount: mounts arsyncfs (the built release
# binary, with the options given as arguments, none by default) on a scratch directory, runs a mixed
# fio job through it under `strace -f` of the whole daemon (buffered and O_DIRECT, reads and writes,
# psync and io_uring engines, and a shared mapping written back), and checks that:
#   - the daemon issues io_uring_enter (the data moves through io_uring),
#   - no thread of the daemon issues pread64/pwrite64/preadv*/pwritev* at all,
#   - the requests arrived (the daemon answered many writes on /dev/fuse), so the trace is not blind.
# Prints the daemon's syscall counts per thread name and exits non-zero if a check fails.
#
# Usage: scripts/daemon-strace.sh [ARSYNCFS OPTIONS...]   (as root; ARSYNCFS_BIN overrides the binary)
set -euo pipefail
repo=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
# shellcheck source=scripts/lib/fuse-mount.sh
source "$repo/scripts/lib/fuse-mount.sh"
for tool in strace fio python3; do
  command -v "$tool" >/dev/null || { echo "daemon-strace: $tool is not installed (scripts/setup.sh)" >&2; exit 2; }
done
[[ $(id -u) -eq 0 ]] || { echo "daemon-strace: must run as root (it mounts)" >&2; exit 2; }
bin=${ARSYNCFS_BIN:-$repo/target/release/arsyncfs}
if [[ -z ${ARSYNCFS_BIN:-} ]]; then
  (cd "$repo" && cargo build --release --bin arsyncfs --quiet)
fi
[[ -x $bin ]] || { echo "daemon-strace: no arsyncfs binary at $bin" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/daemon-strace.XXXXXX")
mkdir -p "$work/backing" "$work/mnt"
pid='' conn=''
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n $pid ]] && { stop_mount "$work/mnt" "$pid" "$conn" || true; }
  remove_work_dir "$work" daemon-strace || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$bin" "$@" "$work/backing" "$work/mnt" >"$work/daemon.log" 2>&1 &
pid=$!
wait_for_mount "$work/mnt" "$pid" "$work/daemon.log" || { echo "daemon-strace: the mount did not come up" >&2; exit 1; }
conn=$(fuse_conn "$work/mnt")
# Attached once the mount is up: what the dynamic loader reads at start-up is not the data path.
syscalls=io_uring_enter,pread64,pwrite64,preadv,pwritev,preadv2,pwritev2,writev
strace -f -qq -p "$pid" -o "$work/trace" -e trace="$syscalls" &
tracer=$!
for ((i = 0; i < 50; i++)); do
  # Attached when the daemon's threads show strace as their tracer.
  grep -q "^TracerPid:[[:space:]]*$tracer$" "/proc/$pid/status" && break
  sleep 0.1
done

common=(--directory="$work/mnt" --size=8M --bs=4k --runtime=2 --time_based --output=/dev/null)
fio --name=buffered --rw=randrw --ioengine=psync "${common[@]}" \
  --name=direct --rw=randrw --direct=1 --ioengine=psync "${common[@]}" \
  --name=uring --rw=randrw --direct=1 --ioengine=io_uring --iodepth=8 "${common[@]}" \
  --name=uring-buffered --rw=randrw --ioengine=io_uring --iodepth=8 "${common[@]}" \
  --name=mapped --rw=randwrite --ioengine=mmap "${common[@]}" >/dev/null
sync
stop_mount "$work/mnt" "$pid" "$conn" || { pid=''; echo "daemon-strace: the daemon did not stop cleanly" >&2; exit 1; }
pid=''
wait "$tracer" || true

python3 - "$work/trace" <<'PY'
import collections, re, sys
calls = collections.Counter()
start = re.compile(r'^(\d+)\s+([a-z0-9_]+)\(')
for line in open(sys.argv[1]):
    m = start.match(line)
    if m and 'resumed>' not in line:
        calls[m.group(2)] += 1
print('daemon syscalls (all threads):', ', '.join(f'{n}={c}' for n, c in sorted(calls.items())))
fail = []
if calls['io_uring_enter'] == 0:
    fail.append('the daemon issued no io_uring_enter')
for name in ('pread64', 'pwrite64', 'preadv', 'pwritev', 'preadv2', 'pwritev2'):
    if calls[name]:
        fail.append(f'the daemon issued {calls[name]} {name}: data moved outside io_uring')
if calls['writev'] < 1000:
    fail.append(f'only {calls["writev"]} replies seen: is the trace blind?')
if fail:
    for f in fail:
        print('FAIL:', f)
    sys.exit(1)
print(f"OK: {calls['io_uring_enter']} io_uring_enter, {calls['writev']} replies, "
      "no pread64/pwrite64/preadv/pwritev")
PY

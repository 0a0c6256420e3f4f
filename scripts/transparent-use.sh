#!/usr/bin/env bash
# scripts/transparent-use.sh: use an arsyncfs mount the way people use a directory, and check the results.
#
#   scripts/transparent-use.sh [ARSYNCFS_BIN]        mount arsyncfs over a temp backing dir and run the steps
#   scripts/transparent-use.sh --native              run the same steps on a plain temp directory (reference)
#   scripts/transparent-use.sh --passthrough-ll BIN  run them on a libfuse passthrough_ll mount (comparison)
#
# Steps: cp -a and rsync -a of a real source tree + diff -r and a metadata comparison; git
# init/add/commit/status/fsck; tar c/x round trips; SQLite (a few thousand transactions, rollback
# journal and WAL, integrity_check); fio with psync, libaio and io_uring, buffered and direct=1,
# verify=crc32c; then a clean unmount. Prints PASS/FAIL per step and a closing `N passed, N failed` line;
# exits non-zero on any failure. Every mount lives under a temp dir and is unmounted on every path.
#
# Environment:
#   ARSYNCFS_OPTS   extra arguments for arsyncfs (e.g. "-o writeback_cache"), split on spaces
#   SRC_TREES       space-separated directories copied as the "real source tree" (default: the repo's
#                   sources plus a few thousand headers from /usr/include; missing ones are skipped)
#   STEP_TIMEOUT    seconds one step may take before it counts as failed (default 300)
#   STEPS           space-separated subset of steps to run (default: all); names as printed
#   KEEP=1          keep the temp dir (backing data and logs) afterwards
set -uo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SCRIPT")/.." && pwd)

# ---------------------------------------------------------------------------------------------------
# Step bodies. Each runs in its own bash process (under `timeout`) with `set -euo pipefail`, with
# $TARGET (the directory under test), $WORK (temp dir, on the native fs) and $ORIG (the staged source
# tree, native) exported. A step passes when its process exits 0.
# ---------------------------------------------------------------------------------------------------

step_cp_a() {
  cp -a "$ORIG" "$TARGET/cp"
  diff -r --no-dereference -x fifo.special "$ORIG" "$TARGET/cp"
  python3 "$WORK/treecmp.py" "$ORIG" "$TARGET/cp"
}

step_rsync_a() {
  rsync -aH "$ORIG/" "$TARGET/rsync/"
  diff -r --no-dereference -x fifo.special "$ORIG" "$TARGET/rsync"
  python3 "$WORK/treecmp.py" "$ORIG" "$TARGET/rsync"
  # A second rsync finds nothing to transfer (sizes and mtimes read back as written).
  local changed
  changed=$(rsync -aHi "$ORIG/" "$TARGET/rsync/" | wc -l)
  [[ $changed -eq 0 ]] || { echo "second rsync -a transferred $changed entries"; exit 1; }
}

step_xattrs() {
  # cp -a preserves user.* xattrs; rsync -aX does too.
  cp -a "$ORIG/extras" "$TARGET/xattr-cp"
  python3 "$WORK/treecmp.py" --xattrs "$ORIG/extras" "$TARGET/xattr-cp"
  setfattr -n user.arsyncfs.step -v ok "$TARGET/xattr-cp/plain.txt"
  [[ $(getfattr --only-values -n user.arsyncfs.step "$TARGET/xattr-cp/plain.txt") == ok ]]
  setfattr -x user.arsyncfs.step "$TARGET/xattr-cp/plain.txt"
  ! getfattr -n user.arsyncfs.step "$TARGET/xattr-cp/plain.txt" 2>/dev/null
}

step_git() {
  local repo="$TARGET/gitrepo"
  mkdir "$repo"
  cp -a "$ORIG/." "$repo/"
  rm -f "$repo/extras/fifo.special"
  cd "$repo"
  export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.invalid \
    GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.invalid HOME="$WORK/home"
  mkdir -p "$HOME"
  git init -q -b main .
  git add -A
  git commit -q -m "import"
  [[ -z $(git status --porcelain) ]] || { git status --porcelain | head; exit 1; }
  git fsck --strict --no-progress
  # Modify, see it dirty, restore, see it clean; an atomic-save style rewrite (temp + rename).
  local f
  f=$(git ls-files '*.h' | sed -n 1p)
  [[ -f $f ]]
  echo "/* changed */" >>"$f"
  [[ $(git status --porcelain | wc -l) -eq 1 ]]
  git checkout -- "$f"
  [[ -z $(git status --porcelain) ]]
  cp -p "$f" "$f.tmp"
  mv "$f.tmp" "$f"
  [[ -z $(git status --porcelain) ]]
  git gc -q
  git log --oneline | grep -q import
  [[ -z $(git status --porcelain) ]]
}

step_tar() {
  # tar c of the native tree into the mount, tar x from the mount into the mount.
  tar --format=posix -C "$ORIG" -cf "$TARGET/tree.tar" .
  mkdir "$TARGET/untar"
  tar -C "$TARGET/untar" -xpf "$TARGET/tree.tar"
  diff -r --no-dereference -x fifo.special "$ORIG" "$TARGET/untar"
  python3 "$WORK/treecmp.py" "$ORIG" "$TARGET/untar"
  # tar c of the mounted tree, tar x onto the native fs.
  mkdir "$WORK/from-mount"
  tar --format=posix -C "$TARGET/untar" -cf - . | tar -C "$WORK/from-mount" -xpf -
  diff -r --no-dereference -x fifo.special "$ORIG" "$WORK/from-mount"
  python3 "$WORK/treecmp.py" "$ORIG" "$WORK/from-mount"
  # Compressed round trip through a pipe.
  tar -C "$ORIG" -czf "$TARGET/tree.tgz" . && tar -tzf "$TARGET/tree.tgz" >/dev/null
}

step_sqlite() {
  python3 - "$TARGET" <<'PY'
import os, sqlite3, sys
target = sys.argv[1]
for mode in ("delete", "wal"):
    path = os.path.join(target, f"db-{mode}.sqlite")
    con = sqlite3.connect(path, isolation_level=None)
    got = con.execute(f"PRAGMA journal_mode={mode}").fetchone()[0]
    assert got == mode, f"journal_mode {got} != {mode}"
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v BLOB, n INTEGER)")
    n_tx = 2000
    for i in range(n_tx):
        con.execute("BEGIN")
        con.execute("INSERT INTO t (k, v, n) VALUES (?, ?, ?)", (f"key{i}", os.urandom(200 + i % 3000), i))
        if i % 7 == 0 and i > 0:
            con.execute("UPDATE t SET n = n + 1 WHERE id = ?", (i // 2,))
        if i % 11 == 0 and i > 0:
            con.execute("DELETE FROM t WHERE k = ?", (f"key{i - 1}",))
        con.execute("COMMIT")
    if mode == "wal":
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("VACUUM")
    ok = con.execute("PRAGMA integrity_check").fetchone()[0]
    assert ok == "ok", f"{mode}: integrity_check: {ok}"
    con.close()
    # Reopen and check the content.
    con = sqlite3.connect(path)
    ok = con.execute("PRAGMA integrity_check").fetchone()[0]
    assert ok == "ok", f"{mode}: integrity_check after reopen: {ok}"
    deleted = len([i for i in range(1, n_tx) if i % 11 == 0])
    rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
    assert rows == n_tx - deleted, f"{mode}: {rows} rows, expected {n_tx - deleted}"
    con.close()
    print(f"sqlite {mode}: {n_tx} transactions, {rows} rows, integrity ok")
PY
}

# One fio run: two write+verify jobs (random mixed block sizes, then sequential 1 MiB).
fio_verify() {
  local engine=$1 direct=$2 depth=1
  [[ $engine == psync ]] || depth=16
  local dir="$TARGET/fio-$engine-d$direct"
  mkdir -p "$dir"
  local log="$WORK/fio-$engine-d$direct.log"
  fio --output-format=normal --output="$log" - <<EOF || { grep -E 'err=|error|verify|fio:' "$log" | head -6; exit 1; }
[global]
directory=$dir
ioengine=$engine
direct=$direct
iodepth=$depth
verify=crc32c
verify_fatal=1
verify_state_save=0
do_verify=1
size=24M
fsync_on_close=1

[rand]
rw=randwrite
bsrange=4k-64k

[seq]
stonewall
rw=write
bs=1M
EOF
  grep -E 'err=|WRITE:|READ:' "$log" || true
  ! grep -E 'err= *[1-9]|verify:|bad magic|crc32c: verify failed' "$log"
}
step_fio_psync() { fio_verify psync 0; }
step_fio_psync_direct() { fio_verify psync 1; }
step_fio_libaio() { fio_verify libaio 0; }
step_fio_libaio_direct() { fio_verify libaio 1; }
step_fio_io_uring() { fio_verify io_uring 0; }
step_fio_io_uring_direct() { fio_verify io_uring 1; }

ALL_STEPS="cp_a rsync_a xattrs git tar sqlite fio_psync fio_psync_direct fio_libaio fio_libaio_direct fio_io_uring fio_io_uring_direct"

# Internal entry point: `transparent-use.sh --step NAME` runs one step body (used under `timeout`).
if [[ ${1:-} == --step ]]; then
  set -eEuo pipefail
  STEP_NAME=$2
  cd "$WORK"
  trap 'echo "step $STEP_NAME: failed (status $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
  "step_$STEP_NAME"
  exit 0
fi

# ---------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------

usage() { sed -n '2,22p' "$SCRIPT" | sed 's/^# \{0,1\}//'; }

MODE=arsyncfs
BIN=""
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  --native) MODE=native ;;
  --passthrough-ll)
    MODE=passthrough_ll
    BIN=${2:-}
    [[ -n $BIN ]] || { echo "transparent-use.sh: --passthrough-ll needs the passthrough_ll binary path" >&2; exit 2; }
    ;;
  -*) echo "transparent-use.sh: unknown option: $1 (see --help)" >&2; exit 2 ;;
  "") ;;
  *) BIN=$1 ;;
esac

for tool in fio rsync git tar diff python3 setfattr getfattr timeout; do
  command -v "$tool" >/dev/null 2>&1 || { echo "transparent-use.sh: $tool not found: run scripts/setup.sh" >&2; exit 2; }
done

if [[ $MODE == arsyncfs ]]; then
  if [[ -z $BIN ]]; then
    BIN="$REPO/target/release/arsyncfs"
    if [[ ! -x $BIN ]]; then
      echo "transparent-use.sh: building $BIN"
      (cd "$REPO" && cargo build --release --bin arsyncfs) || { echo "transparent-use.sh: build failed" >&2; exit 2; }
    fi
  fi
fi
if [[ $MODE != native ]]; then
  [[ -x $BIN ]] || { echo "transparent-use.sh: not an executable: $BIN" >&2; exit 2; }
  BIN=$(readlink -f "$BIN")
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/arsyncfs-tu.XXXXXX")
BACKING="$WORK/backing"
MNT="$WORK/mnt"
ORIG="$WORK/orig"
mkdir -p "$BACKING" "$MNT" "$ORIG"
DAEMON_PID=""
FUSE_CONN=""
STEP_PID=""
STEP_TIMEOUT=${STEP_TIMEOUT:-300}

# shellcheck source=scripts/lib/fuse-mount.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/fuse-mount.sh"

# Unmount and stop the daemon; used by the final step and by the exit trap. Returns 0 when the mount
# is gone and the daemon exited with status 0 by itself.
unmount_and_stop() {
  local rc=0
  stop_mount "$MNT" "$DAEMON_PID" "$FUSE_CONN" || rc=1
  DAEMON_PID=""
  return $rc
}

cleanup() {
  local code=$?
  if [[ -n $STEP_PID ]]; then
    kill -TERM "$STEP_PID" 2>/dev/null
    wait "$STEP_PID" 2>/dev/null
  fi
  unmount_and_stop >/dev/null 2>&1
  if is_mounted "$MNT"; then
    echo "transparent-use.sh: WARNING: could not unmount $MNT" >&2
  elif [[ ${KEEP:-0} == 1 ]]; then
    echo "kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Stage the source tree on the native fs: real trees plus a small directory of special cases.
stage_tree() {
  local trees=${SRC_TREES:-"$REPO/src $REPO/tests $REPO/scripts /usr/include/linux /usr/include/x86_64-linux-gnu /usr/include/c++ /usr/include/X11 /usr/share/doc/git"}
  local t name
  for t in $trees; do
    [[ -d $t ]] || continue
    name=$(echo "${t#/}" | tr / _)
    cp -a "$t" "$ORIG/$name"
  done
  local x="$ORIG/extras"
  mkdir -p "$x/sub dir/ünïcödé"
  echo plain >"$x/plain.txt"
  : >"$x/empty"
  head -c 5000000 /dev/urandom >"$x/random.bin"
  truncate -s 64M "$x/sparse.bin"
  printf 'middle' | dd of="$x/sparse.bin" bs=1 seek=$((32 << 20)) conv=notrunc status=none
  ln "$x/plain.txt" "$x/hardlink.txt"
  ln -s plain.txt "$x/symlink-rel"
  ln -s /etc/hostname "$x/symlink-abs"
  ln -s does-not-exist "$x/symlink-dangling"
  ln -s "../plain.txt" "$x/sub dir/up-link"
  echo "spaces" >"$x/sub dir/file with spaces"
  echo "unicode" >"$x/sub dir/ünïcödé/名前.txt"
  chmod 0600 "$x/plain.txt"
  chmod 0755 "$x/random.bin"
  chmod 1777 "$x/sub dir"
  chown 1234:2345 "$x/empty"
  touch -h -d '2001-02-03 04:05:06.123456789' "$x/symlink-rel"
  touch -d '1999-12-31 23:59:59.987654321' "$x/random.bin"
  mkfifo "$x/fifo.special"
  setfattr -n user.comment -v "arsyncfs test" "$x/plain.txt"
  setfattr -n user.binary -v 0x00ff00ff "$x/random.bin"
  touch -d '2010-01-01 00:00:00' "$x/sub dir/ünïcödé" "$x/sub dir"
}

# Compare two trees: type, mode, owner, size (non-directories), mtime (ns), symlink targets, nlink
# and hard-link groups, and with --xattrs the user.* extended attributes.
cat >"$WORK/treecmp.py" <<'PY'
import os, stat, sys
args = sys.argv[1:]
xattrs = args and args[0] == "--xattrs"
if xattrs:
    args = args[1:]
a_root, b_root = args
def walk(root):
    out, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames + ["."] if dirpath == root else dirnames + filenames:
            p = os.path.normpath(os.path.join(dirpath, name))
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            t = stat.S_IFMT(st.st_mode)
            rec = {"type": t, "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
            if t != stat.S_IFDIR:
                rec["size"] = st.st_size
                rec["nlink"] = st.st_nlink
            if rel != ".":
                rec["mtime_ns"] = st.st_mtime_ns
            if t == stat.S_IFLNK:
                rec["target"] = os.readlink(p)
            if xattrs and t in (stat.S_IFREG, stat.S_IFDIR):
                rec["xattrs"] = sorted((k, os.getxattr(p, k, follow_symlinks=False))
                                       for k in os.listxattr(p, follow_symlinks=False) if k.startswith("user."))
            if t == stat.S_IFREG and st.st_nlink > 1:
                inodes.setdefault(st.st_ino, []).append(rel)
            out[rel] = rec
    groups = sorted(sorted(g) for g in inodes.values())
    return out, groups
a, ga = walk(a_root)
b, gb = walk(b_root)
errors = []
for rel in sorted(set(a) | set(b)):
    if rel not in b:
        errors.append(f"missing in copy: {rel}")
    elif rel not in a:
        errors.append(f"extra in copy: {rel}")
    elif a[rel] != b[rel]:
        diffs = {k: (a[rel].get(k), b[rel].get(k)) for k in set(a[rel]) | set(b[rel]) if a[rel].get(k) != b[rel].get(k)}
        errors.append(f"{rel}: " + ", ".join(f"{k}: {va!r} != {vb!r}" for k, (va, vb) in sorted(diffs.items())))
if ga != gb:
    errors.append(f"hard-link groups differ: {ga} != {gb}")
for e in errors[:30]:
    print(e)
if errors:
    print(f"treecmp: {len(errors)} differences between {a_root} and {b_root}")
    sys.exit(1)
print(f"treecmp: {len(a)} entries identical ({a_root} vs {b_root})")
PY

stage_tree
echo "transparent-use: mode=$MODE, source tree: $(find "$ORIG" | wc -l) entries, $(du -sh "$ORIG" | cut -f1)"

if [[ $MODE == native ]]; then
  TARGET=$BACKING
else
  if [[ $MODE == arsyncfs ]]; then
    # shellcheck disable=SC2086
    "$BIN" ${ARSYNCFS_OPTS:-} "$BACKING" "$MNT" >"$WORK/daemon.log" 2>&1 &
  else
    "$BIN" -f -o "source=$BACKING" "$MNT" >"$WORK/daemon.log" 2>&1 &
  fi
  DAEMON_PID=$!
  waited=0
  wait_for_mount "$MNT" "$DAEMON_PID" "$WORK/daemon.log" || waited=$?
  if [[ $waited -ne 0 ]]; then
    if [[ $waited -eq 1 ]]; then
      echo "transparent-use.sh: $MODE exited before mounting (its log is above)" >&2
      DAEMON_PID=""
    else
      echo "transparent-use.sh: $MODE did not mount within 30 s" >&2
    fi
    echo "0 passed, 1 failed"
    exit 1
  fi
  FUSE_CONN=$(fuse_conn "$MNT")
  TARGET=$MNT
  echo "transparent-use: $MODE (pid $DAEMON_PID) mounted $BACKING on $MNT"
fi
export TARGET WORK ORIG

# Seconds since an $EPOCHREALTIME value, one decimal.
elapsed() {
  local now=${EPOCHREALTIME/./} then=${1/./}
  local ms=$(((now - then) / 1000))
  printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

passed=0
failed=0
failed_names=()
report() { # name ok seconds
  if [[ $2 == 0 ]]; then
    passed=$((passed + 1))
    printf 'PASS %-22s %5ss\n' "$1" "$3"
  else
    failed=$((failed + 1))
    failed_names+=("$1")
    printf 'FAIL %-22s %5ss\n' "$1" "$3"
  fi
}

for step in ${STEPS:-$ALL_STEPS}; do
  if ! declare -F "step_$step" >/dev/null; then
    echo "transparent-use.sh: unknown step: $step (steps: $ALL_STEPS)" >&2
    failed=$((failed + 1))
    failed_names+=("$step(unknown)")
    continue
  fi
  start=$EPOCHREALTIME
  # In the background + wait, so that a signal to this script interrupts the step at once (the
  # trap stops it; timeout forwards the signal to the step's processes).
  timeout -k 10 "$STEP_TIMEOUT" bash "$SCRIPT" --step "$step" >"$WORK/step-$step.log" 2>&1 &
  STEP_PID=$!
  wait "$STEP_PID"
  rc=$?
  STEP_PID=""
  report "$step" "$rc" "$(elapsed "$start")"
  if [[ $rc -ne 0 ]]; then
    [[ $rc -eq 124 ]] && echo "  (timed out after ${STEP_TIMEOUT}s)"
    tail -n 25 "$WORK/step-$step.log" | sed 's/^/  | /'
  fi
  if [[ $MODE != native ]] && ! kill -0 "$DAEMON_PID" 2>/dev/null; then
    echo "transparent-use.sh: $MODE died during step $step:"
    tail -n 25 "$WORK/daemon.log" | sed 's/^/  | /'
    DAEMON_PID=""
    break
  fi
done

if [[ $MODE != native ]]; then
  # Backing dir sees what the mount saw (spot check on the cp -a copy).
  if [[ -d $BACKING/cp ]]; then
    start=$EPOCHREALTIME
    diff -r --no-dereference -x fifo.special "$ORIG" "$BACKING/cp" >"$WORK/step-backing.log" 2>&1
    rc=$?
    report backing_matches "$rc" "$(elapsed "$start")"
    [[ $rc -eq 0 ]] || tail -n 25 "$WORK/step-backing.log" | sed 's/^/  | /'
  fi
  start=$EPOCHREALTIME
  unmount_and_stop >"$WORK/step-unmount.log" 2>&1
  rc=$?
  report clean_unmount "$rc" "$(elapsed "$start")"
  if [[ $rc -ne 0 ]]; then
    sed 's/^/  | /' "$WORK/step-unmount.log"
    tail -n 25 "$WORK/daemon.log" | sed 's/^/  | /'
  fi
fi

((failed == 0)) || echo "failed steps: ${failed_names[*]}"
echo "$passed passed, $failed failed"
((failed == 0))

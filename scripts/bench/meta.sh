#!/usr/bin/env bash
# scripts/bench/meta.sh: metadata A/B across arsyncfs variants, passthrough_ll and native, as root.
#
#   REPS=5 N=5000 VARIANTS='new=;old=/var/tmp/arsyncfs-old' bash scripts/bench/meta.sh
#   STRACE=1 N=1000 bash scripts/bench/meta.sh      # system calls of each daemon per operation
#
# Mounts every target over its own directory of one backing directory and runs, per target and
# repetition, interleaved with the order rotating: create N empty files (open O_CREAT|O_TRUNC,
# close), stat them (once the daemons' 1 s entry timeouts have passed), unlink them, `tar x` of a
# tarball of TREE, `find` over the result (timeouts passed too), `rm -rf` of it. Prints per-phase
# medians (operations per second; tar x, find and rm -rf count the tarball's entries) and ratios
# against native and passthrough_ll. BENCH_TMP [/var/tmp] holds the backing directory: a tmpfs
# (/dev/shm) takes the disk out of the comparison, leaving the cost of FUSE and the daemons.
#
# VARIANTS: ';'-separated NAME=ARGS (ARGS: arsyncfs arguments; a first word that is an executable
#           path replaces target/release/arsyncfs). Default: one variant "arsyncfs" with no arguments.
# PHASES ["create stat unlink tar-x find rm-rf"]: which phases (create runs whenever stat or
#           unlink does; find and rm-rf only with tar-x).
# N [5000]  files per create/stat/unlink phase.   TREE [/usr/share/doc]  what the tarball holds.
# NATIVE [1], PLL [1]: include the native directory / passthrough_ll.
# Also prints each daemon's CPU time (user + system) per operation, medians.
# STRACE=1: instead of timing, attach `strace -c -f` to each daemon while a shell creates N files
#           with `: > f` (the shell's redirection: open O_CREAT|O_TRUNC, dup2, close: two FLUSHes)
#           and while N files are unlinked, and while `find -printf %s` lists them after the kernel
#           dropped its inodes (echo 2 > drop_caches); prints each daemon's system calls per file,
#           the reads and writes of /dev/fuse included.
# AS_USER=NAME: the workload runs as that user (setpriv --init-groups; the mounts get allow_other),
#           so that arsyncfs creates as a user, not as root.
set -euo pipefail
REPO=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
cd "$REPO"
[[ $(id -u) -eq 0 ]] || { echo "meta.sh: must run as root" >&2; exit 1; }
[[ $# -eq 0 ]] || { echo "meta.sh: takes no arguments (see the header)" >&2; exit 2; }
REPS=${REPS:-3}
N=${N:-5000}
TREE=${TREE:-/usr/share/doc}
VARIANTS=${VARIANTS:-arsyncfs=}
STRACE=${STRACE:-0}
PHASES=${PHASES:-create stat unlink tar-x find rm-rf}
[[ $REPS =~ ^[1-9][0-9]*$ ]] || { echo "meta.sh: REPS must be a positive integer" >&2; exit 2; }
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "meta.sh: N must be a positive integer" >&2; exit 2; }
[[ -d $TREE ]] || { echo "meta.sh: TREE is not a directory: $TREE" >&2; exit 2; }

# shellcheck source=scripts/lib/fuse-mount.sh
source "$REPO/scripts/lib/fuse-mount.sh"
bash scripts/setup.sh >&2
cargo build --release --bin arsyncfs >&2
PT_BIN=$(bash scripts/bench/build-passthrough-ll.sh)

WORK=$(mktemp -d "${BENCH_TMP:-/var/tmp}/arsyncfs-meta.XXXXXX")
mkdir -p "$WORK/backing"
declare -A MNT=() PID=() CONN=() DIR=()
NAMES=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_targets
  remove_work_dir "$WORK" meta.sh || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start() { # NAME CMD...
  start_target "$1" meta.sh "${@:2}"
  DIR[$1]=${MNT[$1]}/$1
}

if [[ ${NATIVE:-1} == 1 && $STRACE != 1 ]]; then
  DIR[native]=$WORK/backing/native
  NAMES+=(native)
fi
AS=()
OTHER=()
if [[ -n ${AS_USER:-} ]]; then
  id -u "$AS_USER" >/dev/null || { echo "meta.sh: no such user: $AS_USER" >&2; exit 2; }
  AS=(setpriv "--reuid=$(id -u "$AS_USER")" "--regid=$(id -g "$AS_USER")" --init-groups --)
  OTHER=(-o allow_other)
  chmod 755 "$WORK"
fi
[[ ${PLL:-1} == 1 ]] && start passthrough_ll "$PT_BIN" -f -o "source=$WORK/backing${OTHER:+,allow_other}"
IFS=';' read -ra specs <<<"$VARIANTS"
for spec in "${specs[@]}"; do
  name=${spec%%=*}
  read -ra args <<<"${spec#*=}"
  bin=$REPO/target/release/arsyncfs
  if [[ ${#args[@]} -gt 0 && -x ${args[0]} && ${args[0]} == */* ]]; then
    bin=${args[0]}
    args=("${args[@]:1}")
  fi
  start "$name" "$bin" "${OTHER[@]}" "${args[@]}" "$WORK/backing"
done
for t in "${NAMES[@]}"; do mkdir -p "$WORK/backing/$t"; done
[[ -n ${AS_USER:-} ]] && chmod 777 "$WORK/backing" "$WORK/backing"/*

if [[ $STRACE == 1 ]]; then
  command -v strace >/dev/null || { echo "meta.sh: strace is not installed" >&2; exit 1; }
  # strace -c -f -p PID attaches every thread of the daemon; its summary is written at detach.
  traced() { # TARGET WHAT COMMAND...
    local t=$1 what=$2 sp
    shift 2
    strace -c -f -p "${PID[$t]}" -o "$WORK/strace-$t-$what" 2>/dev/null &
    sp=$!
    sleep 1 # attached
    "$@"
    sleep 0.5 # the last replies and releases
    kill -INT "$sp"
    wait "$sp" || true
    python3 - "$WORK/strace-$t-$what" "$N" "$t" "$what" <<'PY'
import sys
path, n, target, what = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = []
for line in open(path):
    f = line.split()
    if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
        calls = int(f[3])
        rows.append((calls / n, f[-1]))
rows.sort(reverse=True)
total = sum(c for c, _ in rows)
print(f"{target} {what}: {total:.1f} system calls per file: " +
      ", ".join(f"{name} {c:.2f}" for c, name in rows if c >= 0.005))
PY
  }
  for t in "${NAMES[@]}"; do
    d=${DIR[$t]}
    traced "$t" create "${AS[@]}" bash -c 'cd "$1" && for ((i = 0; i < $2; i++)); do : >"f$i"; done' _ "$d" "$N"
    # The kernel forgets the new inodes (and the daemon its nodes): the listing meets them anew.
    sync
    echo 2 >/proc/sys/vm/drop_caches
    sleep 1
    traced "$t" list "${AS[@]}" bash -c 'find "$1" -printf "%s\n" >/dev/null' _ "$d"
    traced "$t" unlink "${AS[@]}" /usr/bin/python3 -c 'import os, sys
for i in range(int(sys.argv[2])): os.unlink(os.path.join(sys.argv[1], "f%d" % i))' "$d" "$N"
  done
  exit 0
fi

TARBALL=$WORK/tree.tar
ENTRIES=0
if [[ " $PHASES " == *" tar-x "* ]]; then
  tar -cf "$TARBALL" -C "$(dirname "$TREE")" "$(basename "$TREE")" 2>/dev/null || true
  ENTRIES=$(tar -tf "$TARBALL" | wc -l)
fi
echo "meta.sh: $N files per phase; tarball of $TREE: $ENTRIES entries, $(du -h "$TARBALL" | cut -f1)" >&2

declare -A RESULTS=()
n=${#NAMES[@]}
for ((rep = 0; rep < REPS; rep++)); do
  for ((i = 0; i < n; i++)); do
    t=${NAMES[$(((i + rep) % n))]}
    sync
    line=$("${AS[@]}" /usr/bin/python3 - "${DIR[$t]}" "$N" "$TARBALL" "$ENTRIES" "$PHASES" "${PID[$t]:-}" <<'PY'
import os, subprocess, sys, time
base, n, tarball, entries = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
phases, pid = sys.argv[5].split(), sys.argv[6]
hz = os.sysconf("SC_CLK_TCK")
def daemon_cpu():
    """The daemon's user + system CPU seconds so far (0 for native)."""
    if not pid:
        return 0.0
    with open("/proc/%s/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / hz
files = os.path.join(base, "files")
tree = os.path.join(base, "tree")
os.makedirs(files)
os.makedirs(tree)
names = [os.path.join(files, "f%06d" % i) for i in range(n)]
cpu = {}
def timed(fn, phase=None, ops=1):
    c0 = daemon_cpu()
    t0 = time.monotonic()
    fn()
    dt = time.monotonic() - t0
    if phase and pid:
        cpu[phase] = (daemon_cpu() - c0) / ops * 1e6
    return dt
def create():
    for p in names:
        os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
def stat():
    for p in names:
        os.stat(p)
def unlink():
    for p in names:
        os.unlink(p)
res = {}
if {"create", "stat", "unlink"} & set(phases):
    res["create"] = n / timed(create, "create", n)
    if "stat" in phases:
        # Past the 1 s entry and attribute timeouts of both daemons: every stat asks the daemon.
        time.sleep(1.5)
        res["stat"] = n / timed(stat, "stat", n)
    t = timed(unlink, "unlink", n)
    if "unlink" in phases:
        res["unlink"] = n / t
if "tar-x" in phases:
    subprocess.run(["sync"], check=True)
    res["tar-x"] = entries / timed(lambda: subprocess.run(["tar", "-C", tree, "-xf", tarball], check=True), "tar-x", entries)
    if "find" in phases:
        time.sleep(1.5)
        res["find"] = entries / timed(lambda: subprocess.run(["find", tree, "-printf", "%y %s\\n"], check=True, stdout=subprocess.DEVNULL), "find", entries)
    t = timed(lambda: subprocess.run(["rm", "-rf", tree], check=True), "rm-rf", entries)
    if "rm-rf" in phases:
        res["rm-rf"] = entries / t
os.rmdir(files)
if os.path.isdir(tree):
    os.rmdir(tree)
print(" ".join(f"{k}={v:.0f}" for k, v in res.items()) +
      "".join(f" {k}@cpu={cpu[k]:.1f}" for k in res if k in cpu))
PY
)
    rmdir "${DIR[$t]}" 2>/dev/null || true
    mkdir -p "$WORK/backing/$t"
    [[ -n ${AS_USER:-} ]] && chmod 777 "$WORK/backing/$t"
    RESULTS[$t]+="$line;"
    printf '  rep %d %-16s %s\n' "$rep" "$t" "$line" >&2
  done
done

echo "metadata: N=$N files, tarball of $TREE ($ENTRIES entries), $REPS reps, medians per second"
for t in "${NAMES[@]}"; do echo "$t ${RESULTS[$t]}"; done | python3 <(cat <<'PY'
import statistics, sys
rows = {}
order = []
for line in sys.stdin:
    name, runs = line.split(None, 1)
    order.append(name)
    per = {}
    for run in runs.strip().strip(";").split(";"):
        for kv in run.split():
            k, v = kv.split("=")
            per.setdefault(k, []).append(float(v))
    rows[name] = per
phases = [p for p in next(iter(rows.values())).keys() if "@" not in p]
print("%-16s" % "target" + "".join("%16s" % p for p in phases))
for name in order:
    cells = []
    for p in phases:
        m = statistics.median(rows[name][p])
        rel = []
        for ref, tag in (("native", "n"), ("passthrough_ll", "p")):
            if ref in rows and ref != name:
                rel.append("%.2f%s" % (m / statistics.median(rows[ref][p]), tag))
        cells.append("%7.0f %-8s" % (m, "/".join(rel)))
    print("%-16s" % name + "".join("%16s" % c for c in cells))
print("(x.xxn / x.xxp: ratio to native / to passthrough_ll)")
print()
print("daemon CPU microseconds per operation (user + system; medians)")
print("%-16s" % "target" + "".join("%16s" % p for p in phases))
for name in order:
    if not any(p + "@cpu" in rows[name] for p in phases):
        continue
    print("%-16s" % name + "".join("%16s" % ("%.1f" % statistics.median(rows[name][p + "@cpu"]) if p + "@cpu" in rows[name] else "-") for p in phases))
PY
)

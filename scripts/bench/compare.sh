#!/usr/bin/env bash
# scripts/bench/compare.sh: A/B one fio job across arsyncfs variants, passthrough_ll and native, as root.
# Sets the machine up (scripts/setup.sh) like scripts/bench.sh. For tuning: bench.sh runs the whole
# matrix against one arsyncfs; this runs one job against several arsyncfs option sets (or binaries)
# side by side, interleaved run by run, order rotating.
#
#   VARIANTS='spin0=--spin-us 0;spin50=--spin-us 50' \
#   FIO='--rw=randread --bs=4k --ioengine=io_uring --iodepth=1 --direct=1' \
#   REPS=5 RUNTIME=5 bash scripts/bench/compare.sh
#
# VARIANTS: ';'-separated NAME=ARGS (ARGS: arsyncfs arguments; a first word that is an executable
#           path replaces target/release/arsyncfs). Default: one variant "arsyncfs" with no arguments.
# FIO:      fio arguments of the job (a file per target and per rep slot is laid out first; reads
#           read it, writes overwrite it). FILE_SIZE [256M]. WARM [1]: read the file through the
#           target before each run; 0: drop caches instead.
# FIO2:     optional: a second job run at the same time on the same file (e.g. buffered reads beside
#           direct writes); the figures then count the first job only.
# NATIVE [1], PLL [1]: include the native directory / passthrough_ll.
# Prints per-target medians (MiB/s and IOPS), ratios vs native and passthrough_ll, and daemon CPU
# seconds per GiB moved.
set -euo pipefail
REPO=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
cd "$REPO"
[[ $(id -u) -eq 0 ]] || { echo "compare.sh: must run as root" >&2; exit 1; }
[[ $# -eq 0 ]] || { echo "compare.sh: takes no arguments (see the header)" >&2; exit 2; }
REPS=${REPS:-3}
RUNTIME=${RUNTIME:-5}
FILE_SIZE=${FILE_SIZE:-256M}
WARM=${WARM:-1}
FIO=${FIO:?FIO must hold the job\'s fio arguments}
VARIANTS=${VARIANTS:-arsyncfs=}

# shellcheck source=scripts/lib/fuse-mount.sh
source "$REPO/scripts/lib/fuse-mount.sh"
bash scripts/setup.sh >&2
cargo build --release --bin arsyncfs >&2
PT_BIN=$(bash scripts/bench/build-passthrough-ll.sh)

WORK=$(mktemp -d "${BENCH_TMP:-/var/tmp}/arsyncfs-compare.XXXXXX")
mkdir -p "$WORK/backing"
declare -A MNT=() PID=() CONN=() DIR=()
NAMES=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_targets
  remove_work_dir "$WORK" compare.sh || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start() { # NAME CMD...
  start_target "$1" compare.sh "${@:2}"
  DIR[$1]=${MNT[$1]}
}

[[ ${NATIVE:-1} == 1 ]] && { DIR[native]=$WORK/backing; NAMES+=(native); }
[[ ${PLL:-1} == 1 ]] && start passthrough_ll "$PT_BIN" -f -o "source=$WORK/backing"
IFS=';' read -ra specs <<<"$VARIANTS"
for spec in "${specs[@]}"; do
  name=${spec%%=*}
  read -ra args <<<"${spec#*=}"
  bin=$REPO/target/release/arsyncfs
  if [[ ${#args[@]} -gt 0 && -x ${args[0]} && ${args[0]} == */* ]]; then
    bin=${args[0]}
    args=("${args[@]:1}")
  fi
  start "$name" "$bin" "${args[@]}" "$WORK/backing"
done

# One data file per target, laid out on the backing directory.
for t in "${NAMES[@]}"; do
  mkdir -p "$WORK/backing/$t"
  fio --name=layout --filename="$WORK/backing/$t/f" --rw=write --bs=1M --size="$FILE_SIZE" \
    --end_fsync=1 --output=/dev/null
done

cpu_ticks() { [[ -n ${PID[$1]:-} ]] && awk '{ print $14 + $15 }' "/proc/${PID[$1]}/stat" || echo 0; }
declare -A RESULTS=() CPU=() BYTES=()
n=${#NAMES[@]}
for ((rep = 0; rep < REPS; rep++)); do
  for ((i = 0; i < n; i++)); do
    t=${NAMES[$(((i + rep) % n))]}
    file=${DIR[$t]}/$t/f
    sync
    if [[ $WARM == 1 ]]; then cat "$file" >/dev/null; else echo 3 >/proc/sys/vm/drop_caches; fi
    before=$(cpu_ticks "$t")
    second=()
    [[ -n ${FIO2:-} ]] && read -ra second <<<"--name=job2 --filename=$file --size=$FILE_SIZE --time_based --runtime=$RUNTIME $FIO2"
    # shellcheck disable=SC2086
    out=$(fio --output-format=json --name=job --filename="$file" --size="$FILE_SIZE" --time_based \
      --runtime="$RUNTIME" $FIO "${second[@]}")
    after=$(cpu_ticks "$t")
    read -r bw iops bytes < <(python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][:1 if sys.argv[1] else None]
bw = sum(x["read"]["bw_bytes"] + x["write"]["bw_bytes"] for x in j)
iops = sum(x["read"]["iops"] + x["write"]["iops"] for x in j)
b = sum(x["read"]["io_bytes"] + x["write"]["io_bytes"] for x in j)
print(bw / 2**20, iops, b)' "${FIO2:-}" <<<"$out")
    RESULTS[$t]+="$bw,$iops "
    CPU[$t]=$((${CPU[$t]:-0} + after - before))
    BYTES[$t]=$((${BYTES[$t]:-0} + bytes))
    printf '  rep %d %-16s %9.1f MiB/s %10.0f IOPS\n' "$rep" "$t" "$bw" "$iops" >&2
  done
done

echo "job: $FIO (runtime ${RUNTIME}s, $REPS reps, warm=$WARM, file $FILE_SIZE)"
hz=$(getconf CLK_TCK)
{
  for t in "${NAMES[@]}"; do echo "$t ${RESULTS[$t]} ${CPU[$t]} ${BYTES[$t]} $hz"; done
} | python3 <(cat <<'PY'
import statistics, sys
rows = []
for line in sys.stdin:
    f = line.split()
    name, runs, cpu, nbytes, hz = f[0], f[1:-3], int(f[-3]), int(f[-2]), int(f[-1])
    bw = statistics.median(float(r.split(",")[0]) for r in runs)
    iops = statistics.median(float(r.split(",")[1]) for r in runs)
    spread = [round(float(r.split(",")[1])) for r in runs]
    rows.append((name, bw, iops, spread, cpu / hz / (nbytes / 2**30) if nbytes else 0.0))
ref = {r[0]: r[2] for r in rows}
print("%-16s %9s %9s %8s %6s %10s  runs (IOPS)" % ("target", "MiB/s", "IOPS", "/native", "/pll", "CPU s/GiB"))
for name, bw, iops, spread, cpu in rows:
    vn = "%.2f" % (iops / ref["native"]) if ref.get("native") else "-"
    vp = "%.2f" % (iops / ref["passthrough_ll"]) if ref.get("passthrough_ll") else "-"
    c = "%.2f" % cpu if name != "native" else "-"
    print("%-16s %9.1f %9.0f %8s %6s %10s  %s" % (name, bw, iops, vn, vp, c, spread))
PY
)

#!/usr/bin/env bash
# Proof that io_uring does the reactor's file I/O.
#
# Runs examples/reactor_bench in --strace-proof mode (4 KiB reads and writes through the reactor,
# then a little plain pread/pwrite from the sending thread) under `strace -f`, and checks, for the
# reactor thread alone:
#   - it issues io_uring_enter (the data moves through io_uring),
#   - it issues no pread64/pwrite64/preadv*/pwritev* at all,
#   - every read/write it issues is on the runtime's eventfd (wake-ups), never on a file.
# It also checks that the plain pread/pwrite of the sending thread *are* seen, so the trace is not
# blind. Prints a per-thread syscall summary and exits non-zero if any check fails.
#
# Usage: scripts/reactor-strace.sh            (builds the example in release mode first)
#        REACTOR_BENCH_BIN=path/to/reactor_bench scripts/reactor-strace.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v strace >/dev/null 2>&1; then
    echo "reactor-strace: strace is not installed (apt-get install strace)" >&2
    exit 2
fi
bin=${REACTOR_BENCH_BIN:-}
if [ -z "$bin" ]; then
    (cd "$repo" && cargo build --release --example reactor_bench --quiet)
    bin=$(cd "$repo" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null ||
        echo "$repo/target")/release/examples/reactor_bench
fi
if [ ! -x "$bin" ]; then
    echo "reactor-strace: no benchmark binary at $bin" >&2
    exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/reactor-strace.XXXXXX")
trap 'rm -rf "$work"' EXIT

syscalls=io_uring_setup,io_uring_enter,pread64,pwrite64,preadv,pwritev,preadv2,pwritev2,read,write
strace -f -qq -y -o "$work/trace" -e trace="$syscalls" \
    "$bin" --strace-proof --pin false --file "$work/data" --size 64M --bs 4k --qd 16 \
    --ops read,write --cache cached >"$work/stdout" 2>"$work/stderr" || {
    echo "reactor-strace: the benchmark failed:" >&2
    cat "$work/stderr" >&2
    exit 1
}
tid=$(sed -n 's/^reactor-tid: //p' "$work/stderr")
if [ -z "$tid" ]; then
    echo "reactor-strace: the benchmark did not report its reactor thread" >&2
    cat "$work/stderr" >&2
    exit 1
fi
sed 's/^/  /' "$work/stdout"

# strace -f -y lines: "<tid> <syscall>(<fd><path>, ...) = <result>" (possibly split as
# <unfinished ...> / <... resumed>). Count calls per thread and name, and the reactor's reads/writes
# on anything but the runtime's eventfd.
python3 - "$work/trace" "$tid" <<'PY'
import collections, re, sys
trace, reactor = sys.argv[1], sys.argv[2]
calls = collections.defaultdict(collections.Counter)
bad = []
start = re.compile(r'^(\d+)\s+([a-z0-9_]+)\((.*)')
for line in open(trace):
    m = start.match(line)
    if not m or 'resumed>' in line:
        continue
    tid, name, rest = m.groups()
    calls[tid][name] += 1
    if tid == reactor and name in ('read', 'write'):
        # With -y the descriptor shows what it is: the runtime's wake-up is an eventfd.
        if not re.match(r'\d+<anon_inode:\[eventfd\]>', rest):
            bad.append(line.strip())
print(f"{'thread':>10}  {'role':<8}  syscalls")
for tid in sorted(calls, key=int):
    role = 'reactor' if tid == reactor else 'other'
    summary = ', '.join(f'{n}={c}' for n, c in sorted(calls[tid].items()))
    print(f"{tid:>10}  {role:<8}  {summary}")
r = calls.get(reactor, collections.Counter())
others = collections.Counter()
for tid, c in calls.items():
    if tid != reactor:
        others.update(c)
fail = []
if r['io_uring_enter'] == 0:
    fail.append('the reactor thread issued no io_uring_enter')
for name in ('pread64', 'pwrite64', 'preadv', 'pwritev', 'preadv2', 'pwritev2'):
    if r[name]:
        fail.append(f'the reactor thread issued {r[name]} {name}')
if bad:
    fail.append(f'the reactor thread read/wrote something other than its eventfd: {bad[:3]}')
if others['pread64'] == 0 or others['pwrite64'] == 0:
    fail.append('the plain pread64/pwrite64 of the sending thread were not seen: is the trace blind?')
if fail:
    for f in fail:
        print('FAIL:', f)
    sys.exit(1)
print(f"OK: reactor thread {reactor}: {r['io_uring_enter']} io_uring_enter, no pread64/pwrite64, "
      f"{r['read'] + r['write']} reads/writes, all on its eventfd (wake-ups); "
      f"plain I/O elsewhere: {others['pread64']} pread64, {others['pwrite64']} pwrite64")
PY

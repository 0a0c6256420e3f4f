#!/usr/bin/env bash
# Benchmark of the reactor against plain pread/pwrite (examples/reactor_bench.rs).
#
# Usage: scripts/reactor-bench.sh [--baseline REV] [reactor_bench options...]
#
#   --baseline REV   also build the reactor as of git revision REV (with today's benchmark program)
#                    and run it right after, with the same options: a before/after comparison.
#
# Everything else goes to reactor_bench (see `--help`); the defaults measure 4 KiB and 128 KiB random
# reads and writes, cached and cold, at queue depths 1, 16 and 64 from 1 and 2 sending threads, on
# a 2 GiB file under /var/tmp (the real disk: /tmp may be tmpfs). Cold runs drop the page cache
# (needs root). Output is printed and saved under target/reactor-bench/.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
baseline=
args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --baseline)
        [ $# -ge 2 ] || { echo "reactor-bench: --baseline needs a git revision" >&2; exit 2; }
        baseline=$2
        shift 2
        ;;
    *)
        args+=("$1")
        shift
        ;;
    esac
done

if [ "$(id -u)" != 0 ]; then
    echo "reactor-bench: not root: cold runs cannot drop the page cache and will be warmer than cold" >&2
fi

target=$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
out_dir=$target/reactor-bench
mkdir -p "$out_dir"
stamp=$(date +%Y%m%d-%H%M%S)

(cd "$repo" && cargo build --release --example reactor_bench --quiet)
current=$target/release/examples/reactor_bench

base_bin=
if [ -n "$baseline" ]; then
    src=$(mktemp -d "${TMPDIR:-/tmp}/reactor-baseline.XXXXXX")
    trap 'rm -rf "$src"' EXIT
    (cd "$repo" && git archive "$baseline") | tar -x -C "$src"
    mkdir -p "$src/examples"
    cp "$repo/examples/reactor_bench.rs" "$src/examples/"
    (cd "$src" && CARGO_TARGET_DIR=$target/reactor-baseline \
        cargo build --release --example reactor_bench --quiet)
    base_bin=$target/reactor-baseline/release/examples/reactor_bench
fi

run() {
    local label=$1 bin=$2 log=$3
    {
        echo "## $label  $(date -Is)  $(uname -r)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "## $bin ${args[*]:-}"
    } | tee "$log"
    "$bin" "${args[@]}" | tee -a "$log"
}

run "reactor @ $(cd "$repo" && git rev-parse --short HEAD)$(cd "$repo" && git diff --quiet HEAD -- src/reactor src/sys || echo +dirty)" \
    "$current" "$out_dir/$stamp-current.txt"
if [ -n "$base_bin" ]; then
    echo
    run "reactor @ $baseline (baseline)" "$base_bin" "$out_dir/$stamp-baseline.txt"
fi
echo "saved in $out_dir/$stamp-*.txt" >&2

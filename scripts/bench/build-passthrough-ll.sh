#!/usr/bin/env bash
# scripts/bench/build-passthrough-ll.sh [OUT_DIR]: build libfuse's passthrough_ll example (the C
# reference passthrough filesystem shipped in Debian's libfuse3-dev) with gcc -O2 and pkg-config fuse3.
# Prints the binary's path. Rebuilds only when the source is newer than the binary.
set -euo pipefail
REPO=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
OUT=${1:-$REPO/target/bench}
EXAMPLES=/usr/share/doc/libfuse3-dev/examples
SRC=$EXAMPLES/passthrough_ll.c
if [[ ! -f $SRC ]]; then
  # Debian may ship the example compressed.
  if [[ -f $SRC.gz ]]; then
    mkdir -p "$OUT/src"
    gunzip -c "$SRC.gz" >"$OUT/src/passthrough_ll.c"
    cp "$EXAMPLES/passthrough_helpers.h" "$OUT/src/" 2>/dev/null ||
      gunzip -c "$EXAMPLES/passthrough_helpers.h.gz" >"$OUT/src/passthrough_helpers.h"
    SRC=$OUT/src/passthrough_ll.c
  else
    echo "build-passthrough-ll.sh: $SRC not found: install libfuse3-dev (scripts/setup.sh)" >&2
    exit 1
  fi
fi
mkdir -p "$OUT"
BIN=$OUT/passthrough_ll
if [[ ! -x $BIN || $SRC -nt $BIN ]]; then
  # shellcheck disable=SC2046
  gcc -O2 -Wall -D_FILE_OFFSET_BITS=64 -I"$(dirname "$SRC")" $(pkg-config fuse3 --cflags) \
    "$SRC" -o "$BIN" $(pkg-config fuse3 --libs) -lpthread >&2
fi
echo "$BIN"

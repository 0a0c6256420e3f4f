#!/usr/bin/env bash
# scripts/setup.sh: install what arsyncfs' build, tests, scripts and benchmark need on a fresh
# Debian machine. Idempotent: packages already present are not touched, and when nothing is missing
# it neither updates the package lists nor needs the network. Installs from Debian's packages only.
# Must run as root (it re-runs itself with sudo when it can).
set -euo pipefail

# Debian packages, with the reason each is here.
PACKAGES=(
  fuse3          # fusermount3 (unmounting as a user, non-root mounts) and /etc/fuse.conf
  libfuse3-dev   # fuse3 headers + examples/passthrough_ll.c, built by scripts/bench.sh as the C reference
  pkg-config     # `pkg-config fuse3` for that build
  gcc            # C compiler for passthrough_ll and for crates that build C
  libc6-dev      # C headers and crt files for gcc
  fio            # data-path tests (scripts/transparent-use.sh), the soak (scripts/soak.sh) and benchmarks
  libaio-dev     # libaio for fio's libaio engine (pulls in the library under its release's name)
  rsync          # transparent-use: rsync -a into the mount
  git            # transparent-use: git init/add/commit/status on the mount
  tar            # transparent-use and bench: tar c / tar x
  diffutils      # diff -r
  findutils      # find
  attr           # getfattr/setfattr (xattr checks; tests/boundary.rs)
  acl            # getfacl/setfacl (tests/posix_creds.rs, tests/boundary.rs)
  sqlite3        # sqlite3 CLI (debugging the SQLite step)
  python3        # transparent-use SQLite step (sqlite3 module), the soak's workers, bench parsing/plots, tests/cli_stats.rs (json, re)
  procps         # ps, pgrep used to find daemons
  psmisc         # fuser(1) to find processes holding a mount
  util-linux     # mount, umount, findmnt; setpriv (tests as other users) and fincore (passthrough tests)
  passwd         # useradd: the test users of tests/posix_creds.rs and tests/boundary.rs
  coreutils      # mkfifo, stat, ...; the soak's daemon log goes through a FIFO
  strace         # tests/daemon_strace.rs and tests/reactor_strace.rs: no pread/pwrite outside io_uring
  linux-perf     # profiling (issue 5 tuning)
  librsvg2-bin   # rsvg-convert: render docs/*.svg to PNG to look at them
  groff-base     # groff: tests/man_page.rs formats docs/arsyncfs.1 and fails on a warning
)

if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo -E bash "$0" "$@"
  fi
  echo "setup.sh: must run as root (no sudo found): re-run as root" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup.sh: all ${#PACKAGES[@]} packages already installed"
else
  echo "setup.sh: installing: ${missing[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# /dev/fuse: needed for every mount. Try to load the module if it is absent.
if [[ ! -c /dev/fuse ]]; then
  modprobe fuse 2>/dev/null || true
fi
if [[ ! -c /dev/fuse ]]; then
  echo "setup.sh: /dev/fuse is missing and the fuse module could not be loaded: mounts will fail" >&2
  exit 1
fi

# io_uring: the reactor has no fallback.
if [[ -r /proc/sys/kernel/io_uring_disabled ]] && [[ $(cat /proc/sys/kernel/io_uring_disabled) != 0 ]]; then
  echo "setup.sh: warning: kernel.io_uring_disabled=$(cat /proc/sys/kernel/io_uring_disabled): arsyncfs needs io_uring" >&2
fi

# The Rust toolchain is expected on the machine (rustup); it is not installed here.
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup.sh: warning: cargo not found in PATH: install a Rust toolchain (rustup) to build arsyncfs" >&2
fi

python_bin=$(command -v python3 || true)
if [[ -z $python_bin ]] || ! "$python_bin" -c 'import sqlite3, json, statistics' 2>/dev/null; then
  echo "setup.sh: python3 with the sqlite3 module is required" >&2
  exit 1
fi

echo "setup.sh: ready ($(fio --version), $(fusermount3 --version 2>&1 | head -1))"

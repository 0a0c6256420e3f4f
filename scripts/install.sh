#!/usr/bin/env bash
# scripts/install.sh: install arsyncfs as a system tool, or remove it again. Build first
# (`cargo build --release`), then as root:
#
#   bash scripts/install.sh [--prefix DIR] [--sbindir DIR] [--bin FILE] [--uninstall]
#
# Installs (PREFIX defaults to /usr/local, SBINDIR to /sbin, where mount(8) looks for helpers):
#   PREFIX/bin/arsyncfs                            the binary (FILE, default target/release/arsyncfs)
#   SBINDIR/mount.fuse.arsyncfs -> PREFIX/bin/arsyncfs
#                                                  mount(8)'s helper: fstab lines and
#                                                  `mount -t fuse.arsyncfs` work through it
#   PREFIX/share/man/man1/arsyncfs.1               the man page (docs/arsyncfs.1)
#   PREFIX/lib/systemd/system/arsyncfs@.service    the template unit, running PREFIX/bin/arsyncfs
#   PREFIX/share/doc/arsyncfs/examples/mnt-view.mount
#                                                  a .mount unit example
# --uninstall removes exactly these (the helper link only while it points at PREFIX/bin/arsyncfs).
# DESTDIR (environment) stages everything under another root, for packaging: the files land in
# DESTDIR/PREFIX/..., the link still points at PREFIX/bin/arsyncfs. Nothing is started or enabled.
set -euo pipefail
REPO=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}
fail() { # CODE MESSAGE
  echo "install.sh: error: $2" >&2
  exit "$1"
}

prefix=/usr/local
sbindir=/sbin
bin=$REPO/target/release/arsyncfs
uninstall=0
while (($#)); do
  case $1 in
    --prefix | --sbindir | --bin)
      (($# >= 2)) || fail 2 "$1 needs a value (see --help)"
      case $1 in
        --prefix) prefix=$2 ;;
        --sbindir) sbindir=$2 ;;
        --bin) bin=$2 ;;
      esac
      shift 2
      ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --sbindir=*) sbindir=${1#*=}; shift ;;
    --bin=*) bin=${1#*=}; shift ;;
    --uninstall) uninstall=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) fail 2 "unknown argument '$1' (see --help)" ;;
  esac
done
for dir in "$prefix" "$sbindir"; do
  [[ $dir == /* ]] || fail 2 "'$dir' is not an absolute path"
done
prefix=${prefix%/}
sbindir=${sbindir%/}
destdir=${DESTDIR:-}
destdir=${destdir%/}

# Where each file goes (as the installed system sees it) and where it comes from.
target_bin=$prefix/bin/arsyncfs
helper=$sbindir/mount.fuse.arsyncfs
man_page=$prefix/share/man/man1/arsyncfs.1
unit=$prefix/lib/systemd/system/arsyncfs@.service
example_dir=$prefix/share/doc/arsyncfs/examples
mount_example=$example_dir/mnt-view.mount

if ((uninstall)); then
  for file in "$target_bin" "$man_page" "$unit" "$mount_example"; do
    if [[ -e $destdir$file ]]; then
      rm -f -- "$destdir$file"
      echo "removed $destdir$file"
    fi
  done
  if [[ -L $destdir$helper ]]; then
    if [[ $(readlink -- "$destdir$helper") == "$target_bin" ]]; then
      rm -f -- "$destdir$helper"
      echo "removed $destdir$helper"
    else
      echo "install.sh: left $destdir$helper alone: it points at $(readlink -- "$destdir$helper"), not $target_bin" >&2
    fi
  fi
  rmdir -- "$destdir$example_dir" "$destdir$prefix/share/doc/arsyncfs" 2>/dev/null || true
  exit 0
fi

[[ -f $bin && -x $bin ]] || fail 1 "no arsyncfs binary at $bin: build it first (cargo build --release) or name it with --bin FILE"
for file in docs/arsyncfs.1 contrib/systemd/arsyncfs@.service contrib/systemd/mnt-view.mount; do
  [[ -f $REPO/$file ]] || fail 1 "$REPO/$file is missing"
done
if [[ -z $destdir && $(id -u) -ne 0 && ! -w $prefix ]]; then
  fail 1 "$prefix is not writable: run as root (sudo bash scripts/install.sh), or give --prefix or DESTDIR"
fi

put() { # MODE SOURCE TARGET
  install -D -m "$1" -- "$2" "$destdir$3"
  echo "installed $destdir$3"
}
put 0755 "$bin" "$target_bin"
put 0644 "$REPO/docs/arsyncfs.1" "$man_page"
mkdir -p -- "$destdir${unit%/*}"
unit_text=$(<"$REPO/contrib/systemd/arsyncfs@.service")
printf '%s\n' "${unit_text//\/usr\/local\/bin\/arsyncfs/"$target_bin"}" > "$destdir$unit"
chmod 0644 -- "$destdir$unit"
echo "installed $destdir$unit"
put 0644 "$REPO/contrib/systemd/mnt-view.mount" "$mount_example"
mkdir -p -- "$destdir$sbindir"
ln -sfn -- "$target_bin" "$destdir$helper"
echo "linked $destdir$helper -> $target_bin"
if [[ -z $destdir ]] && command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
  echo "run 'systemctl daemon-reload' for systemd to see arsyncfs@.service"
fi

//! `arsyncfs [OPTIONS] BACKING MOUNTPOINT`: see `arsyncfs --help`.

fn main() {
    // Exit explicitly: after a lazy unmount, session threads are still blocked on /dev/fuse.
    std::process::exit(arsyncfs::cli::main());
}

//! Running as a mount(8) helper, so that an fstab line works:
//!
//! ```text
//! /srv/data  /mnt/view  fuse.arsyncfs  defaults  0 0
//! ```
//!
//! For the type `fuse.arsyncfs`, mount(8) runs `/sbin/mount.fuse.arsyncfs` if it exists (install it
//! as a symlink to the arsyncfs binary), as `mount.fuse.arsyncfs SPEC DIR [-s] [-f] [-n] [-v]
//! [-o OPTIONS] [-t TYPE]`, and waits for it to exit. Started under a name beginning with `mount.`,
//! arsyncfs therefore translates those arguments and goes to the background once mounted.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use super::error::CliError;

/// Whether `argv0` names a mount helper (`mount.fuse.arsyncfs`, `mount.arsyncfs`).
pub fn is_helper(argv0: &OsStr) -> bool {
    Path::new(argv0)
        .file_name()
        .is_some_and(|n| n.as_encoded_bytes().starts_with(b"mount."))
}

/// Translates mount(8)'s helper arguments (without argv0) into arsyncfs arguments: `--daemon`
/// first; `-s` becomes `--sloppy`, `-f` (fake) `--fake`; `-n` and `-t TYPE` are dropped; `-v` and
/// `-o OPTIONS` stay.
pub fn translate(args: &[OsString]) -> Result<Vec<OsString>, CliError> {
    let mut out: Vec<OsString> = vec!["--daemon".into()];
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("-n") => {}
            Some("-s") => out.push("--sloppy".into()),
            Some("-f") => out.push("--fake".into()),
            Some("-t") => {
                it.next();
            }
            Some("-N") => {
                return Err(CliError::usage(
                    "mounting in another mount namespace (-N) is not supported",
                ));
            }
            _ => out.push(arg.clone()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn helper_names() {
        assert!(is_helper(OsStr::new("/sbin/mount.fuse.arsyncfs")));
        assert!(is_helper(OsStr::new("mount.arsyncfs")));
        assert!(!is_helper(OsStr::new("/usr/bin/arsyncfs")));
        assert!(!is_helper(OsStr::new("arsyncfs")));
    }

    #[test]
    fn translates_mount_arguments() {
        let got = translate(&os(&[
            "/srv",
            "/mnt",
            "-s",
            "-n",
            "-v",
            "-o",
            "rw,nosuid",
            "-t",
            "fuse.arsyncfs",
        ]))
        .unwrap();
        assert_eq!(
            got,
            os(&[
                "--daemon",
                "/srv",
                "/mnt",
                "--sloppy",
                "-v",
                "-o",
                "rw,nosuid"
            ])
        );
        assert_eq!(
            translate(&os(&["/srv", "/mnt", "-f"])).unwrap(),
            os(&["--daemon", "/srv", "/mnt", "--fake"])
        );
        assert!(translate(&os(&["/srv", "/mnt", "-N", "1"])).is_err());
    }
}

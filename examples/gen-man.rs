//! Writes the arsyncfs(1) man page to stdout: `cargo run --example gen-man > docs/arsyncfs.1`.
//!
//! NAME, SYNOPSIS, DESCRIPTION and OPTIONS come from the clap definitions (clap_mangen); the sections
//! clap cannot write are made here: MOUNT OPTIONS and EXIT STATUS from the very texts `--help` ends
//! with, CACHE MODES from the modes' values, and SIGNALS, ENVIRONMENT, FILES, EXAMPLES and SEE ALSO.
//! tests/man_page.rs fails when docs/arsyncfs.1 is not what this writes.

use std::time::Duration;

use arsyncfs::cli::{CacheMode, EXIT_CODES_HELP, OPTIONS_HELP, command, stats_command};
use roff::{Inline, Roff, bold, roman};

#[allow(dead_code)] // tests/man_page.rs includes this file for `render` only
fn main() {
    print!("{}", render());
}

/// The whole page, as roff.
pub fn render() -> String {
    // clap's synopsis lists every flag; the page has OPTIONS for that.
    let synopsis = "arsyncfs [OPTIONS] BACKING MOUNTPOINT\n\
                    mount -t fuse.arsyncfs [-o OPT[,OPT...]] BACKING MOUNTPOINT";
    let man = clap_mangen::Man::new(command().override_usage(synopsis)).manual("User Commands");
    let mut clap_part = Vec::new();
    man.render_title(&mut clap_part).unwrap();
    man.render_name_section(&mut clap_part).unwrap();
    man.render_synopsis_section(&mut clap_part).unwrap();
    man.render_description_section(&mut clap_part).unwrap();
    man.render_options_section(&mut clap_part).unwrap();
    let mut page = String::from_utf8(clap_part).unwrap();

    let mut r = Roff::new();
    mount_options(&mut r);
    stats(&mut r);
    cache_modes(&mut r);
    signals(&mut r);
    exit_status(&mut r);
    environment(&mut r);
    files(&mut r);
    examples(&mut r);
    see_also(&mut r);
    page.push_str(&r.render());
    // Each part starts with the same preamble (the apostrophe string); once is enough.
    let preamble = &page[..page.find(".TH").unwrap()].to_owned();
    let body = page[preamble.len()..].replace(preamble.as_str(), "");
    format!("{preamble}{body}")
}

/// `text` with its `quoted` spans in bold.
fn marked(text: &str) -> Vec<Inline> {
    text.split('`')
        .enumerate()
        .filter(|(_, s)| !s.is_empty())
        .map(|(i, s)| if i % 2 == 1 { bold(s) } else { roman(s) })
        .collect()
}

fn paragraph(r: &mut Roff, text: &str) {
    r.control("PP", []);
    r.text(marked(text));
}

/// A tagged paragraph: `tag` in bold, then its description.
fn item(r: &mut Roff, tag: &str, text: &str) {
    r.control("TP", []);
    r.text([bold(tag)]);
    r.text(marked(text));
}

/// STATS: the `arsyncfs stats` subcommand, from its clap definition.
fn stats(r: &mut Roff) {
    let cmd = stats_command();
    r.control("SH", ["STATS"]);
    example(
        r,
        &["arsyncfs stats [--json | --prometheus] [--watch SECS] MOUNTPOINT"],
    );
    if let Some(about) = cmd.get_long_about() {
        paragraph(r, &about.to_string().replace('\n', " "));
    }
    for arg in cmd.get_arguments().filter(|a| a.get_long().is_some()) {
        let long = arg.get_long().unwrap();
        if matches!(long, "help" | "version") {
            continue;
        }
        let tag = match arg.get_value_names() {
            Some(names) if arg.get_action().takes_values() => format!("--{long} {}", names[0]),
            _ => format!("--{long}"),
        };
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        item(r, &tag, &help.replace('\n', " "));
    }
}

/// Lines shown as they are (commands, fstab lines).
fn example(r: &mut Roff, lines: &[&str]) {
    r.control("PP", []);
    r.control("RS", ["4"]);
    r.control("EX", []);
    for line in lines {
        r.text([roman(*line)]);
    }
    r.control("EE", []);
    r.control("RE", []);
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// MOUNT OPTIONS from `OPTIONS_HELP`: its heading line, then entries (a term indented by two
/// spaces, perhaps over several lines, and a description indented further, perhaps beside it),
/// then after a blank line paragraphs with indented example lines.
fn mount_options(r: &mut Roff) {
    r.control("SH", ["MOUNT OPTIONS"]);
    let (list, rest) = OPTIONS_HELP.split_once("\n\n").unwrap();
    let mut lines = list.lines();
    let heading = lines.next().unwrap().trim_end_matches(':');
    paragraph(r, &format!("{heading}:"));
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut in_description = false;
    for line in lines {
        let text = line.trim();
        if indent(line) > 2 {
            let (_, description) = entries.last_mut().unwrap();
            description.push(' ');
            description.push_str(text);
            in_description = true;
        } else if let Some((term, description)) = text.split_once("  ") {
            entries.push((term.to_owned(), description.trim().to_owned()));
            in_description = true;
        } else if in_description || entries.is_empty() {
            entries.push((text.to_owned(), String::new()));
            in_description = false;
        } else {
            let (term, _) = entries.last_mut().unwrap();
            term.push(' ');
            term.push_str(text);
        }
    }
    for (term, description) in &entries {
        item(r, term, description.trim());
    }
    for block in rest.split("\n\n") {
        let mut text = String::new();
        for line in block.lines() {
            if indent(line) > 0 {
                paragraph(r, text.trim());
                text.clear();
                example(r, &[line.trim()]);
            } else {
                text.push(' ');
                text.push_str(line);
            }
        }
        if !text.trim().is_empty() {
            paragraph(r, text.trim());
        }
    }
}

fn seconds(d: Duration) -> String {
    d.as_secs_f64().to_string()
}

fn cache_modes(r: &mut Roff) {
    let [auto, always, never] = CacheMode::ALL.map(CacheMode::policy);
    assert!(
        !auto.writeback_cache && always.writeback_cache && never.direct_io && !never.keep_cache
    );
    r.control("SH", ["CACHE MODES"]);
    paragraph(
        r,
        "`--cache` MODE (`-o cache=`MODE) says how much the kernel may cache, by who else changes \
         BACKING. `--attr-timeout`, `--entry-timeout` and `--writeback`/`--no-writeback` refine a \
         mode, in any order. Whatever the mode, a change made through the mount is seen at once \
         through it.",
    );
    item(
        r,
        "auto (the default)",
        &format!(
            "BACKING changes now and then beside the mount. The kernel caches attributes and names \
             for {} s, and keeps a file's pages across opens while its mtime and size are \
             unchanged. A change made in BACKING shows through the mount within {} s for names and \
             attributes; new contents at the next open, or in an open file once its attributes \
             refresh.",
            seconds(auto.attr_timeout),
            seconds(auto.entry_timeout)
        ),
    );
    item(
        r,
        "always",
        &format!(
            "Nothing but the mount changes BACKING. Attributes and names are cached for {} s, pages \
             are kept, and the writeback cache is on: the kernel gathers writes, the backing file \
             catches up at fsync, close or background writeback, and stat shows the kernel's own \
             mtime and ctime. Fastest for small buffered writes and for metadata looked at again; \
             changes made beside the mount may stay unseen. Excludes `--passthrough`.",
            seconds(always.attr_timeout)
        ),
    );
    item(
        r,
        "never",
        "Others write to BACKING all the time. Nothing is cached: every stat, lookup, read and \
         write reaches arsyncfs and the backing file (FOPEN_DIRECT_IO), so a change made beside \
         the mount shows at once, in open files too; shared mmap still works. Slowest: whatever \
         the other modes serve from a cache costs a round trip.",
    );
    paragraph(
        r,
        "With `--passthrough` the kernel reads and writes the backing files itself (Linux 6.9+, \
         CAP_SYS_ADMIN) and reads use the backing file's page cache, shared with every other user \
         of BACKING.",
    );
}

fn signals(r: &mut Roff) {
    r.control("SH", ["SIGNALS"]);
    item(
        r,
        "SIGINT, SIGTERM, SIGHUP",
        "Answer the requests in flight (waiting up to 1 s), unmount, and exit 0. A busy mount (open \
         files, a shell's current directory) is tried again for 500 ms, then detached like `umount \
         -l`: its remaining users get ENOTCONN. A second signal while arsyncfs waits for the \
         session to end exits at once, with status 1. With `--daemon`, a signal to the waiting \
         parent before the mount is ready is passed on to the daemon.",
    );
    item(
        r,
        "SIGKILL",
        "Or any other death without unmounting (the OOM killer, a crash). With auto_unmount (the \
         default) the watcher process arsyncfs started detaches the dead mount within moments. \
         With `--no-auto-unmount` the mount stays: every access fails with ENOTCONN until \
         `fusermount3 -u` MOUNTPOINT or `umount -l` MOUNTPOINT, and a new arsyncfs on it exits \
         with status 4 (a stale FUSE mount).",
    );
    paragraph(
        r,
        "The watcher (`arsyncfs --auto-unmount-watcher` in ps(1)) ignores SIGINT, SIGTERM and \
         SIGHUP, so a signal sent to the whole process group or unit does not end it before the \
         daemon; it exits on its own once the daemon has.",
    );
}

/// EXIT STATUS from `EXIT_CODES_HELP`: a heading line, then `  CODE  text` entries whose text may
/// go on over lines indented further.
fn exit_status(r: &mut Roff) {
    r.control("SH", ["EXIT STATUS"]);
    let mut entries: Vec<(String, String)> = Vec::new();
    for line in EXIT_CODES_HELP.lines().skip(1) {
        let text = line.trim();
        // An entry is `  CODE text` (the code's digits, then spaces); deeper lines continue it.
        match text.split_once(' ') {
            Some((code, description))
                if indent(line) == 2 && code.bytes().all(|b| b.is_ascii_digit()) =>
            {
                entries.push((code.to_owned(), description.trim().to_owned()));
            }
            _ => {
                let (_, description) = entries.last_mut().unwrap();
                description.push(' ');
                description.push_str(text);
            }
        }
    }
    for (code, description) in &entries {
        item(r, code, description);
    }
    paragraph(
        r,
        "Errors before mounting are one line on stderr, starting `arsyncfs: error:`.",
    );
}

fn environment(r: &mut Roff) {
    r.control("SH", ["ENVIRONMENT"]);
    item(
        r,
        "RUST_LOG",
        "What to log, in tracing's filter syntax; wins over `-v` (e.g. \
         `RUST_LOG=arsyncfs=debug,fuser=info`).",
    );
    item(
        r,
        "NOTIFY_SOCKET",
        "Set by systemd for a `Type=notify` service: arsyncfs sends `READY=1` once the mount is \
         usable and `STOPPING=1` when it unmounts (sd_notify(3); a path or an @abstract socket). \
         With `--daemon` the daemon sends them with its `MAINPID`, which systemd takes only with \
         `NotifyAccess=all`: run arsyncfs in the foreground under `Type=notify`.",
    );
}

fn files(r: &mut Roff) {
    r.control("SH", ["FILES"]);
    item(r, "/dev/fuse", "The FUSE device.");
    item(
        r,
        "/sbin/mount.fuse.arsyncfs",
        "mount(8)'s helper for the type fuse.arsyncfs: a symbolic link to arsyncfs (scripts/install.sh \
         makes it). Run under a name beginning with `mount.`, arsyncfs takes mount(8)'s helper \
         arguments and goes to the background once the mount is live.",
    );
    item(
        r,
        "/etc/fstab",
        "Lines of type fuse.arsyncfs (see MOUNT OPTIONS).",
    );
    item(
        r,
        "/etc/arsyncfs/INSTANCE.conf",
        "`BACKING=` and `ARSYNCFS_OPTIONS=` of the arsyncfs@INSTANCE.service unit, INSTANCE being \
         the mountpoint escaped by `systemd-escape --path`.",
    );
    item(
        r,
        "PREFIX/lib/systemd/system/arsyncfs@.service",
        "The template unit (`Type=notify`); PREFIX/share/doc/arsyncfs/examples/ holds a .mount unit \
         example.",
    );
    item(
        r,
        "fusermount3",
        "From the fuse3 package: mounts and unmounts for a user other than root.",
    );
}

fn examples(r: &mut Roff) {
    r.control("SH", ["EXAMPLES"]);
    paragraph(r, "Show /srv/data on /mnt/view until Ctrl-C:");
    example(r, &["arsyncfs /srv/data /mnt/view"]);
    paragraph(
        r,
        "In the background, read-only and open to every user; then unmount it:",
    );
    example(
        r,
        &[
            "arsyncfs --daemon --allow-other -o ro /srv/data /mnt/view",
            "umount /mnt/view",
        ],
    );
    paragraph(
        r,
        "A directory only the mount changes (fastest), and one shared with other writers:",
    );
    example(
        r,
        &[
            "arsyncfs --cache always /srv/build /mnt/build",
            "arsyncfs --cache never /srv/shared /mnt/shared",
        ],
    );
    paragraph(r, "In /etc/fstab, then `mount /mnt/view`:");
    example(
        r,
        &["/srv/data  /mnt/view  fuse.arsyncfs  allow_other,cache=auto  0 0"],
    );
    paragraph(r, "As a systemd service for the mountpoint /mnt/view:");
    example(
        r,
        &[
            "mkdir -p /etc/arsyncfs",
            "printf 'BACKING=/srv/data\\nARSYNCFS_OPTIONS=--allow-other\\n' \\",
            "    > /etc/arsyncfs/mnt-view.conf",
            "systemctl enable --now arsyncfs@mnt-view.service",
        ],
    );
}

fn see_also(r: &mut Roff) {
    r.control("SH", ["SEE ALSO"]);
    let pages = [
        "mount(8)",
        "fstab(5)",
        "fusermount3(1)",
        "mount.fuse3(8)",
        "systemd.service(5)",
        "systemd.mount(5)",
        "systemd-escape(1)",
        "sd_notify(3)",
    ];
    let mut inlines = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let (name, section) = page.split_once('(').unwrap();
        if i > 0 {
            inlines.push(roman(", "));
        }
        inlines.push(bold(name));
        inlines.push(roman(format!("({section}")));
    }
    r.text(inlines);
    paragraph(
        r,
        "README.md and docs/ in the source tree: what each kind of request does (docs/semantics.md), \
         the architecture and the benchmarks.",
    );
}

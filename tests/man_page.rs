//! docs/arsyncfs.1 is what examples/gen-man.rs writes from the current clap definitions and help
//! texts (regenerate it with `cargo run --example gen-man > docs/arsyncfs.1`), it has every option
//! and section, and groff formats it without a warning.

#[path = "../examples/gen-man.rs"]
mod gen_man;

use std::process::Command;

const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/arsyncfs.1");

#[test]
fn checked_in_page_is_up_to_date() {
    let checked_in = std::fs::read_to_string(PAGE).expect("docs/arsyncfs.1");
    let fresh = gen_man::render();
    if checked_in != fresh {
        let (n, (old, new)) = checked_in
            .lines()
            .chain(std::iter::repeat(""))
            .zip(fresh.lines().chain(std::iter::repeat("")))
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .unwrap();
        panic!(
            "docs/arsyncfs.1 is stale: run `cargo run --example gen-man > docs/arsyncfs.1`\n\
             first difference at line {}:\n  checked in: {old}\n  generated:  {new}",
            n + 1
        );
    }
}

/// The page as text, roff escapes of dashes undone.
fn text() -> String {
    gen_man::render().replace("\\-", "-")
}

#[test]
fn page_has_every_option_and_section() {
    let page = text();
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "\"MOUNT OPTIONS\"",
        "\"CACHE MODES\"",
        "SIGNALS",
        "\"EXIT STATUS\"",
        "ENVIRONMENT",
        "FILES",
        "EXAMPLES",
        "\"SEE ALSO\"",
    ] {
        assert!(page.contains(&format!(".SH {section}\n")), "no {section}");
    }
    for arg in arsyncfs::cli::command().get_arguments() {
        if let Some(long) = arg.get_long().filter(|_| !arg.is_hide_set()) {
            assert!(page.contains(&format!("--{long}")), "--{long} missing");
        }
    }
    // Every word of the -o list, e.g. `noauto_unmount` or `buffer_size=SIZE`.
    let options = arsyncfs::cli::OPTIONS_HELP;
    let list = options.split_once("\n\n").unwrap().0;
    for line in list.lines().skip(1).filter(|l| l.starts_with("  ")) {
        let terms = line.trim().split("  ").next().unwrap();
        for term in terms.split(", ").map(|t| t.trim_end_matches(',')) {
            assert!(page.contains(term), "-o {term} missing");
        }
    }
    for code in 0..=7 {
        assert!(
            page.contains(&format!(".TP\n\\fB{code}\\fR\n")),
            "exit status {code}"
        );
    }
}

#[test]
fn groff_formats_it_without_warnings() {
    let out = Command::new("groff")
        .args(["-ww", "-z", "-man", "-rLL=80n", PAGE])
        .output()
        .expect("groff (Debian: groff-base, installed by scripts/setup.sh)");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warned");
}

//! `--fault` as a user (or a CI script) runs it: a bad spec stops the
//! program with one line naming the bad part; `--headless` prints the
//! active faults in the canonical grammar at start.

mod control_support;

use control_support::{HeadlessChild as Headless, run_to_end};
use std::process::Command;

fn muxscope() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_muxscope"));
    c.env_remove("MUXSCOPE_TOKEN");
    c
}

/// The first line of stderr, which must be the grammar's error.
fn error_line(args: &[&str]) -> String {
    let mut cmd = muxscope();
    cmd.args(args);
    let (code, out, err) = run_to_end(cmd);
    assert_eq!(code, Some(2), "exit code; stderr: {err}");
    assert!(out.is_empty(), "nothing on stdout: {out}");
    err.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn a_bad_spec_exits_2_with_one_line_naming_the_bad_part() {
    let line = error_line(&["--headless", "--fault", "latncy=200ms"]);
    assert!(
        line.starts_with("error: --fault: unknown fault 'latncy' (did you mean latency?): valid faults are latency, bandwidth,"),
        "{line}"
    );
    let line = error_line(&[
        "--fault",
        "latency=1ms",
        "--fault",
        "slice=4..64@0ms,latency=200mz",
    ]);
    assert_eq!(
        line,
        "error: --fault: '200mz' in 'latency=200mz': 'mz' is not a time unit: use ms or s (e.g. 200ms)"
    );
    let line = error_line(&["--headless", "--fault=rcvbuf=4KB"]);
    assert!(
        line.contains("'4KB' in 'rcvbuf=4KB': 'KB' is not a size unit: use B, KiB or MiB"),
        "{line}"
    );
}

/// What a terminal would act on is shown escaped, never raw.
#[test]
fn a_bad_spec_is_escaped_on_the_terminal() {
    let mut cmd = muxscope();
    cmd.args(["--headless", "--fault", "corrupt=\u{1b}]0;pwned\u{7}"]);
    let (code, _, err) = run_to_end(cmd);
    assert_eq!(code, Some(2));
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
    assert!(
        err.starts_with("error: --fault: '\\u{1b}]0;pwned\\u{7}' in 'corrupt=\\u{1b}]0;pwned\\u{7}': not a probability"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn a_spec_that_is_not_text_is_refused() {
    use std::os::unix::ffi::OsStrExt;
    let mut cmd = muxscope();
    cmd.arg("--fault")
        .arg(std::ffi::OsStr::from_bytes(b"latency=\xff1ms"));
    let (code, _, err) = run_to_end(cmd);
    assert_eq!(code, Some(2));
    assert!(err.contains("a fault spec is text (UTF-8)"), "{err}");
}

/// A headless muxscope whose stdout lines arrive on a channel; stopped
/// with SIGTERM.
#[test]
fn headless_prints_the_active_faults_at_start() {
    let h = Headless::spawn(&[
        "--fault",
        "latency=200ms~50ms",
        "--fault",
        "slice=4..64@0ms,stall-writes",
    ]);
    let (line, before) = h.line_starting("muxscope faults: ");
    assert_eq!(
        line,
        "muxscope faults: latency=200ms~50ms, slice=4..64@0ms, stall-writes"
    );
    assert!(
        before
            .iter()
            .any(|l| l.starts_with("muxscope listening on 127.0.0.1:")),
        "the listening line comes first: {before:?}"
    );
    assert!(h.stop(), "exit status after SIGTERM");
}

#[test]
fn headless_says_none_without_faults_and_later_values_win() {
    let h = Headless::spawn(&[]);
    assert_eq!(
        h.line_starting("muxscope faults: ").0,
        "muxscope faults: none"
    );
    assert!(h.stop());
    let h = Headless::spawn(&[
        "--fault",
        " bandwidth = 10240 , toxicity=0.5 ",
        "--fault",
        "bandwidth=1MiB/s",
    ]);
    assert_eq!(
        h.line_starting("muxscope faults: ").0,
        "muxscope faults: bandwidth=1MiB/s, toxicity=0.5"
    );
    assert!(h.stop());
}

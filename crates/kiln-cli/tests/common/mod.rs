//! Helpers shared by the CLI tests.

use assert_cmd::Command;

/// The `kiln` binary, with `RUST_LOG` cleared so logs do not leak into stderr checks.
pub fn kiln() -> Command {
    let mut cmd = Command::cargo_bin("kiln").unwrap();
    cmd.env_remove("RUST_LOG");
    cmd
}

/// Runs kiln expecting exit `code`; returns stderr. Runtime errors (1) must be one line
/// starting `kiln: `; nothing may panic or print a backtrace.
pub fn fails(cmd: &mut Command, code: i32) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if code == 1 {
        assert_eq!(lines.len(), 1, "one line on stderr, got: {stderr}");
        assert!(lines[0].starts_with("kiln: "), "{stderr}");
    }
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    stderr
}

/// [`fails`] for errors kiln itself reports (runtime or usage): exactly one `kiln: ` line,
/// which is returned.
pub fn fails_one_line(cmd: &mut Command, code: i32) -> String {
    let stderr = fails(cmd, code);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got: {stderr}");
    assert!(lines[0].starts_with("kiln: "), "{stderr}");
    lines[0].to_string()
}

/// WordNet's folder (scripts/fetch_wordnet.sh, idempotent; fails, never skips, without it).
pub fn wordnet_dir() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/fetch_wordnet.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Runs kiln expecting success (stderr shown otherwise); returns the output.
pub fn succeeds(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

//! End-to-end tests of `kiln augment`: K lines per input line, the same output for the same
//! seed, files written atomically and never over the input, one-line errors.

use crate::common::{fails_one_line, kiln, succeeds, wordnet_dir};

const LINES: &str =
    "The quick brown fox jumps over the lazy dog\nA man is playing a guitar on the stage\n";

fn augment(args: &[&str]) -> String {
    let out = succeeds(
        kiln()
            .arg("augment")
            .args(["--wordnet", &wordnet_dir()])
            .args(args)
            .write_stdin(LINES),
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn augment_writes_k_lines_per_line_deterministically() {
    for method in ["synonym", "insert", "swap", "delete", "eda"] {
        let a = augment(&["--method", method, "--n", "3", "--seed", "7"]);
        assert_eq!(a.lines().count(), 6, "{method}: {a}");
        assert_eq!(
            a,
            augment(&["--method", method, "--n", "3", "--seed", "7"]),
            "{method}"
        );
        assert_ne!(
            a,
            augment(&["--method", method, "--n", "3", "--seed", "8"]),
            "{method}"
        );
    }
    // Swap keeps each line's words (EDA's cleaning lowercases).
    let swapped = augment(&["--method", "swap", "--n", "2", "--alpha", "0.3"]);
    let mut want: Vec<&str> = "the quick brown fox jumps over the lazy dog"
        .split(' ')
        .collect();
    want.sort();
    for line in swapped.lines().take(2) {
        let mut got: Vec<&str> = line.split(' ').collect();
        got.sort();
        assert_eq!(got, want);
    }
    let kept = augment(&["--method", "delete", "--n", "1", "--p-rd", "0"]);
    assert_eq!(
        kept.lines().next(),
        Some("the quick brown fox jumps over the lazy dog")
    );
}

#[test]
fn augment_files_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, LINES).unwrap();
    let output = dir.path().join("out.txt");
    kiln()
        .args([
            "augment",
            "--method",
            "eda",
            "--n",
            "2",
            "--wordnet",
            &wordnet_dir(),
        ])
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .assert()
        .success();
    assert_eq!(std::fs::read_to_string(&output).unwrap().lines().count(), 4);
    assert_eq!(
        std::fs::read_to_string(&input).unwrap(),
        LINES,
        "input untouched"
    );
    // `--output -` is stdout, as `--input -` is stdin: no file named `-`.
    let out = kiln()
        .current_dir(dir.path())
        .args(["augment", "--method", "swap", "--n", "2", "--output", "-"])
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 4);
    assert!(!dir.path().join("-").exists(), "`--output -` wrote a file");

    let err = fails_one_line(
        kiln()
            .args(["augment", "--method", "swap", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&input),
        2,
    );
    assert!(err.contains("never overwrites its inputs"), "{err}");
    let err = fails_one_line(
        kiln()
            .args(["augment", "--method", "synonym", "--wordnet"])
            .arg(dir.path())
            .write_stdin("a b\n"),
        1,
    );
    assert!(
        err.contains("WordNet") && err.contains("data.noun"),
        "{err}"
    );
    let err = fails_one_line(
        kiln()
            .args(["augment", "--method", "swap", "--alpha", "2"])
            .write_stdin("a b\n"),
        2,
    );
    assert!(err.contains("alpha_sr 2 must be in [0, 1]"), "{err}");
    let out = kiln()
        .args(["augment", "--method", "shuffle"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

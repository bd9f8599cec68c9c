//! End-to-end tests of `kiln augment --method back-translate` through Apertium (CI installs it
//! with scripts/install_apertium.sh's pairs; these tests fail, never skip, without it): lines
//! stay aligned through markup and empty lines, K variants per line, the same output for the
//! same seed whatever the batch size, the summary line, and one-line errors that name the
//! missing package.

use crate::common::{fails_one_line, kiln, succeeds, wordnet_dir};

const LINES: &str = "The dog is small.\n\nLine 3: <b>bold</b> a*b #tag @user ^x$ [y] {z} \\ ~ end.\nLine 4 has xqzzyfoo words.\n";

/// Runs `kiln augment --method back-translate` on [`LINES`]; returns (stdout, stderr).
fn back_translate(args: &[&str]) -> (String, String) {
    let out = succeeds(
        kiln()
            .args(["augment", "--method", "back-translate"])
            .args(["--wordnet", &wordnet_dir()])
            .args(args)
            .write_stdin(LINES),
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn back_translate_keeps_lines_aligned_and_reports_unchanged_lines() {
    let (out, err) = back_translate(&["--n", "1"]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "The dog is small.",
            "",
            "Line 3: <b>bold</b> a*b #user @of label ^x$ [and] {z} \\ ~ end.",
            "Line 4 has xqzzyfoo words.",
        ],
        "Apertium's unknown-word marker (*xqzzyfoo) is removed; markup passes through"
    );
    assert!(
        err.contains("back-translated 4 lines through spa")
            && err.contains("2 of 3 round trips came back identical"),
        "{err}"
    );
}

#[test]
fn back_translate_variants_are_deterministic_and_streamed_in_batches() {
    let args = ["--n", "3", "--pivot", "spa,cat", "--seed", "5"];
    let (a, _) = back_translate(&args);
    let lines: Vec<&str> = a.lines().collect();
    assert_eq!(lines.len(), 12, "{a}");
    // Line 1's variants: through Spanish, through Catalan, then Spanish plus one EDA operation.
    assert_eq!(lines[0], "The dog is small.");
    assert_eq!(lines[1], "The dog is small.");
    assert_eq!(lines[2], lines[2].to_lowercase(), "EDA's cleaning");
    assert_eq!(&lines[3..6], ["", "", ""], "an empty line stays empty");
    let (b, _) = back_translate(&args);
    assert_eq!(a, b, "same seed, same output");
    let mut one_per_batch = args.to_vec();
    one_per_batch.extend(["--batch", "1"]);
    let (c, _) = back_translate(&one_per_batch);
    assert_eq!(a, c, "one Apertium process per line gives the same output");
    let differs = (6..16).any(|seed| {
        let seed = seed.to_string();
        back_translate(&["--n", "3", "--pivot", "spa,cat", "--seed", &seed]).0 != a
    });
    assert!(differs, "other seeds draw other EDA operations");

    // A file output is written atomically, the input untouched.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, LINES).unwrap();
    let output = dir.path().join("out.txt");
    let result = succeeds(
        kiln()
            .args(["augment", "--method", "back-translate", "--n", "2"])
            .args(["--pivot", "cat,spa", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&output),
    );
    let written = std::fs::read_to_string(&output).unwrap();
    assert_eq!(written.lines().count(), 8, "{written}");
    assert_eq!(std::fs::read_to_string(&input).unwrap(), LINES);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("through cat, spa"), "{stderr}");
}

#[test]
fn back_translate_errors_name_what_is_missing() {
    // Apertium not on PATH.
    let empty = tempfile::tempdir().unwrap();
    let err = fails_one_line(
        kiln()
            .args(["augment", "--method", "back-translate", "--n", "1"])
            .env("PATH", empty.path())
            .write_stdin("a b\n"),
        1,
    );
    assert!(
        err.contains("apertium is not installed")
            && err.contains("apt-get install apertium apertium-eng-spa"),
        "{err}"
    );
    // Apertium without the pair: an empty data directory.
    std::fs::create_dir(empty.path().join("modes")).unwrap();
    let err = fails_one_line(
        kiln()
            .args(["augment", "--method", "back-translate", "--n", "1"])
            .args(["--pivot", "cat"])
            .env("APERTIUM_DATADIR", empty.path())
            .write_stdin("a b\n"),
        1,
    );
    assert!(
        err.contains("English -> Catalan is not installed")
            && err.contains("apt-get install apertium-eng-cat"),
        "{err}"
    );
    // Usage errors: a pivot twice, a pivot kiln does not know, a batch of 0.
    let bad: [&[&str]; 3] = [
        &["--pivot", "spa,spa"],
        &["--pivot", "deu"],
        &["--batch", "0"],
    ];
    for args in bad {
        let out = kiln()
            .args(["augment", "--method", "back-translate"])
            .args(args)
            .write_stdin("a b\n")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    // More variants than pivots need WordNet, named.
    let err = fails_one_line(
        kiln()
            .args(["augment", "--method", "back-translate", "--n", "2"])
            .arg("--wordnet")
            .arg(empty.path())
            .write_stdin("a b\n"),
        1,
    );
    assert!(err.contains("WordNet") && err.contains("--n 2"), "{err}");
}

//! End-to-end tests of `kiln augment --method back-translate` through Apertium (CI installs it
//! with scripts/install_apertium.sh's pairs; these tests fail, never skip, without it): lines
//! stay aligned through markup and empty lines, K variants per line, the same output for the
//! same seed whatever the batch size, the summary line, and one-line errors that name the
//! missing package; `train-classifier --augment back-translate` with its translation cache.

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

const LABELED: &str = "\
food\tI baked a chocolate cake with butter and sugar for dessert.
food\tThe soup needs more salt, garlic and fresh basil.
food\tWe ate pasta with tomato sauce and grated cheese for dinner.
computers\tThe program crashed with a segmentation fault in the kernel.
computers\tCompile the source code and link it against the library.
computers\tThe server ran out of memory and the database stopped.
";

const UNLABELED: &str = "\
Slice the onions and fry them in olive oil until golden.
The network card driver fails to load at boot time.
";

/// `train-classifier` with back-translated copies of the labelled texts and back-translated
/// views for UDA; returns the JSON summary.
fn train_back_translated(dir: &std::path::Path, out: &str, augment: &str) -> serde_json::Value {
    let model = kiln_tests::minilm::minilm_dir();
    let result = kiln()
        .arg("train-classifier")
        .arg("--model")
        .arg(&model)
        .args(["--backend", "ndarray", "--augment", augment])
        .arg("--labeled")
        .arg(dir.join("train.tsv"))
        .arg("--unlabeled")
        .arg(dir.join("unlabeled.txt"))
        .args(["--consistency", "--uda-augment", "back-translate"])
        .args(["--pivot", "spa,cat", "--views", "2", "--steps", "20"])
        .args(["--wordnet", &wordnet_dir()])
        .arg("--cache")
        .arg(dir.join("cache"))
        .arg("--out")
        .arg(dir.join(out))
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    serde_json::from_slice(&result.stdout).unwrap()
}

#[test]
fn train_classifier_back_translates_once_and_caches_the_translations() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.tsv"), LABELED).unwrap();
    std::fs::write(dir.path().join("unlabeled.txt"), UNLABELED).unwrap();
    let first = train_back_translated(dir.path(), "a", "eda,back-translate");
    let first = &first["training"];
    assert_eq!(first["method"], "consistency");
    assert_eq!(
        first["augment"],
        serde_json::json!(["eda", "back-translate"])
    );
    assert_eq!(first["uda_augment"], serde_json::json!(["back-translate"]));
    assert_eq!(first["pivots"], serde_json::json!(["spa", "cat"]));
    // 8 texts, 2 pivots, there and back.
    assert_eq!(first["translator"]["translations"], 32);
    assert_eq!(first["translator"]["translated_now"], 32);
    let cached: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("translations-") && name.ends_with(".json"))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");

    // The same run again: nothing translated, nothing embedded.
    let second = train_back_translated(dir.path(), "b", "eda,back-translate");
    let second = &second["training"];
    assert_eq!(second["translator"]["translated_now"], 0);
    assert_eq!(second["embedded_texts"], 0);
    // Back-translation alone reuses the translations too.
    let third = train_back_translated(dir.path(), "c", "back-translate");
    let third = &third["training"];
    assert_eq!(third["translator"]["translated_now"], 0);

    // Usage errors: none with another method, a method twice.
    for augment in ["none,eda", "eda,eda"] {
        let out = kiln()
            .arg("train-classifier")
            .arg("--model")
            .arg(kiln_tests::minilm::minilm_dir())
            .args(["--augment", augment])
            .arg("--labeled")
            .arg(dir.path().join("train.tsv"))
            .arg("--out")
            .arg(dir.path().join("d"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{augment}");
    }
}

//! End-to-end tests of `kiln train-classifier` and `kiln classify` on all-MiniLM-L6-v2: a tiny
//! run lowers the loss and writes a loadable classifier, the embedding cache makes a second run
//! embed nothing and train the same head, and bad input is a one-line error.

use std::path::Path;

use kiln_tests::minilm::minilm_dir;
use serde_json::Value;

use crate::common::{fails_one_line, kiln, wordnet_dir};

const LABELED: &str = "\
food\tI baked a chocolate cake with butter and sugar for dessert.
food\tThe soup needs more salt, garlic and fresh basil.
food\tWe ate pasta with tomato sauce and grated cheese for dinner.
food\tFresh bread from the oven smells of yeast and flour.
food\tThe chef grilled the steak and served it with potatoes.
food\tBreakfast was eggs, bacon, toast and a cup of coffee.
computers\tThe program crashed with a segmentation fault in the kernel.
computers\tCompile the source code and link it against the library.
computers\tThe server ran out of memory and the database stopped.
computers\tReboot the computer after installing the operating system update.
computers\tThe compiler reported a syntax error on line ten of the file.
computers\tMy laptop keyboard and mouse stopped working after the driver update.
";

const UNLABELED: &str = "\
Slice the onions and fry them in olive oil until golden.
The network card driver fails to load at boot time.
Apple pie with cinnamon and vanilla ice cream.
The disk is full, so the backup software cannot write its files.
";

const EVAL: &str = "\
food\tRoast the chicken with lemon, thyme and a little honey.
food\tA bowl of rice with beans, peppers and spicy sauce.
computers\tThe CPU overheats when the graphics card renders the game.
computers\tInstall the package with the terminal and restart the service.
";

struct Data {
    dir: tempfile::TempDir,
}

impl Data {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.tsv"), LABELED).unwrap();
        std::fs::write(dir.path().join("unlabeled.txt"), UNLABELED).unwrap();
        std::fs::write(dir.path().join("eval.tsv"), EVAL).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}

fn train(data: &Data, out: &str) -> Value {
    let result = kiln()
        .arg("train-classifier")
        .args([
            "--model",
            minilm_dir().to_str().unwrap(),
            "--backend",
            "ndarray",
        ])
        .args(["--labeled", &data.path("train.tsv")])
        .args(["--unlabeled", &data.path("unlabeled.txt")])
        .args([
            "--augment",
            "eda",
            "--consistency",
            "--pseudo-labels",
            "--views",
            "2",
        ])
        .args(["--wordnet", &wordnet_dir()])
        .args([
            "--steps",
            "60",
            "--learning-rate",
            "1e-2",
            "--labeled-batch",
            "8",
        ])
        .args([
            "--eval",
            &data.path("eval.tsv"),
            "--cache",
            &data.path("cache"),
        ])
        .args(["--out", out, "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    serde_json::from_slice(&result.stdout).unwrap()
}

#[test]
fn train_classifier_learns_and_classify_loads_it() {
    let data = Data::new();
    let out = data.path("classifier");
    let summary = train(&data, &out);
    let training = &summary["training"];
    assert_eq!(summary["labels"], serde_json::json!(["computers", "food"]));
    assert_eq!(training["method"], "consistency+pseudo-labels");
    assert_eq!(training["labeled_texts"], 12);
    assert_eq!(training["unlabeled_texts"], 4);
    let first = training["supervised_loss_first_10_steps"].as_f64().unwrap();
    let last = training["supervised_loss_last_10_steps"].as_f64().unwrap();
    assert!(last < 0.7 * first, "supervised loss {first} -> {last}");
    let last_step = &training["last_step"];
    assert!(last_step["consistency"].is_number() && last_step["pseudo_label"].is_number());
    let accuracy = training["evaluation"]["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.75, "held-out accuracy {accuracy}");
    // Labelled texts, unlabelled texts and up to 2 views of each, plus the eval texts.
    let embedded = training["embedded_texts"].as_u64().unwrap();
    assert!((16..=48).contains(&embedded), "{embedded}");

    let dir = Path::new(&out);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("classifier.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["kiln_classifier"], 1);
    assert_eq!(manifest["head"]["input_dim"], 384);
    assert_eq!(manifest["encoder"]["pooling"], serde_json::json!(["mean"]));
    let head = kiln::TensorFile::read(dir.join("head.safetensors")).unwrap();
    assert_eq!(head.tensors["classifier.weight"].shape, vec![2, 384]);

    // classify: one `label<TAB>confidence` line per text.
    let result = kiln()
        .args(["classify", "--model", &out, "--backend", "ndarray"])
        .args([
            "Boil the noodles and add soy sauce.",
            "The hard drive failed and the files are lost.",
        ])
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let stdout = String::from_utf8(result.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for line in &lines {
        let (label, confidence) = line.split_once('\t').unwrap();
        assert!(["food", "computers"].contains(&label), "{line}");
        let c: f64 = confidence.parse().unwrap();
        assert!((0.5..=1.0).contains(&c), "{line}");
    }
    // JSON: every class's probability, summing to 1.
    let result = kiln()
        .args([
            "classify",
            "--model",
            &out,
            "--backend",
            "ndarray",
            "--json",
            "Pancakes with maple syrup.",
        ])
        .output()
        .unwrap();
    assert!(result.status.success());
    let json: Value = serde_json::from_slice(&result.stdout).unwrap();
    let p: Vec<f64> = json["predictions"][0]["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(p.len(), 2);
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-5);
    // --eval gives the same accuracy as training's own evaluation.
    let result = kiln()
        .args([
            "classify",
            "--model",
            &out,
            "--backend",
            "ndarray",
            "--json",
        ])
        .args(["--eval", &data.path("eval.tsv")])
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let evaluation: Value = serde_json::from_slice(&result.stdout).unwrap();
    let again = evaluation["accuracy"].as_f64().unwrap();
    assert!((again - accuracy).abs() < 1e-12, "{again} vs {accuracy}");
    assert_eq!(evaluation["classes"].as_array().unwrap().len(), 2);

    // Same data, seed and cache: nothing is embedded again and the same head is trained (up to
    // float summation order in burn's parallel CPU kernels).
    let out2 = data.path("classifier2");
    let summary2 = train(&data, &out2);
    assert_eq!(summary2["training"]["embedded_texts"], 0);
    let head2 = kiln::TensorFile::read(Path::new(&out2).join("head.safetensors")).unwrap();
    for (key, t) in &head.tensors {
        let t2 = &head2.tensors[key];
        assert_eq!(t.shape, t2.shape);
        let diff = t
            .data
            .iter()
            .zip(&t2.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-4, "{key}: {diff}");
    }
}

#[test]
fn classifier_errors_are_one_line() {
    let data = Data::new();
    let model = minilm_dir().to_string_lossy().into_owned();
    let base = |args: &[&str]| {
        let mut cmd = kiln();
        cmd.arg("train-classifier")
            .args(["--model", &model, "--backend", "ndarray"]);
        cmd.args(args);
        cmd
    };
    let out = data.path("out");
    // --consistency needs unlabelled texts (clap: usage error, exit 2).
    let result = base(&[
        "--labeled",
        &data.path("train.tsv"),
        "--consistency",
        "--out",
        &out,
    ])
    .output()
    .unwrap();
    assert_eq!(result.status.code(), Some(2));
    // A line without a tab: named.
    std::fs::write(
        data.dir.path().join("bad.tsv"),
        "food\tok\nno tab on this line\n",
    )
    .unwrap();
    let err = fails_one_line(
        &mut base(&["--labeled", &data.path("bad.tsv"), "--out", &out]),
        2,
    );
    assert!(err.contains("line 2") && err.contains("tab"), "{err}");
    // One class only.
    std::fs::write(data.dir.path().join("one.tsv"), "food\ta\nfood\tb\n").unwrap();
    let err = fails_one_line(
        &mut base(&["--labeled", &data.path("one.tsv"), "--out", &out]),
        2,
    );
    assert!(err.contains("two classes"), "{err}");
    // Never writes into the encoder's directory.
    let inside = format!("{model}/classifier");
    let err = fails_one_line(
        &mut base(&["--labeled", &data.path("train.tsv"), "--out", &inside]),
        2,
    );
    assert!(err.contains("encoder's directory"), "{err}");
    // An --eval label the training data does not have.
    std::fs::write(data.dir.path().join("law.tsv"), "law\tThe judge ruled.\n").unwrap();
    let err = fails_one_line(
        &mut base(&[
            "--labeled",
            &data.path("train.tsv"),
            "--eval",
            &data.path("law.tsv"),
            "--out",
            &out,
        ]),
        2,
    );
    assert!(err.contains("`law`"), "{err}");
    assert!(!Path::new(&out).exists(), "nothing written on errors");
    // classify: not a classifier directory; an encoder that is not there.
    let err = fails_one_line(
        kiln().args(["classify", "--model", &data.path("nope"), "x"]),
        2,
    );
    assert!(err.contains("not a directory"), "{err}");
    std::fs::create_dir(data.dir.path().join("empty")).unwrap();
    let err = fails_one_line(
        kiln().args([
            "classify",
            "--model",
            &data.path("empty"),
            "--backend",
            "ndarray",
            "x",
        ]),
        1,
    );
    assert!(err.contains("classifier.json"), "{err}");
}

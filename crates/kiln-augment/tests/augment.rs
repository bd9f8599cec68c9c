//! kiln-augment: WordNet lookups, EDA's operations as specified, determinism under a seed,
//! token- and embedding-level ops, back-translation through a Translator and through Apertium.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kiln_augment::apertium::Apertium;
use kiln_augment::back_translation::BackTranslation;
use kiln_augment::eda::{self, apply, clean, words, EdaConfig, Operation};
use kiln_augment::tokens::{mask_tokens, span_cutoff};
use kiln_augment::translate::{back_translate, Translator};
use kiln_augment::wordnet::WordNet;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// WordNet 3.0, fetched by scripts/fetch_wordnet.sh on first use (the test fails, never skips,
/// when it cannot be had).
fn wordnet() -> &'static WordNet {
    static WORDNET: OnceLock<WordNet> = OnceLock::new();
    WORDNET.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = std::process::Command::new("bash")
            .arg(root.join("scripts/fetch_wordnet.sh"))
            .output()
            .expect("running scripts/fetch_wordnet.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        WordNet::load(dir).unwrap()
    })
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

const TEXT: &str = "The quick brown fox jumps over the lazy dog near the old river bank";

#[test]
fn wordnet_has_its_synsets_and_morphology() {
    let wn = wordnet();
    assert_eq!(wn.num_synsets(), 117_659, "WordNet 3.0's synset count");
    let car = wn.synonyms("car");
    assert!(
        car.contains(&"automobile".to_string()) && car.contains(&"auto".to_string()),
        "{car:?}"
    );
    assert!(!car.contains(&"car".to_string()), "not the word itself");
    assert!(wn.synonyms("happy").contains(&"glad".to_string()));
    assert!(
        wn.lemmas("cars").contains(&"car".to_string()),
        "detachment rule s -> ''"
    );
    assert!(wn.lemmas("ran").contains(&"run".to_string()), "verb.exc");
    assert!(
        wn.lemmas("geese").contains(&"goose".to_string()),
        "noun.exc"
    );
    assert!(wn.synonyms("xqzzy").is_empty());
    let err = WordNet::load("/nonexistent").unwrap_err().to_string();
    assert!(
        err.contains("data.noun") && err.contains("fetch_wordnet.sh"),
        "{err}"
    );
}

#[test]
fn cleaning_follows_eda() {
    assert_eq!(
        clean("It's  a  well-known FACT, 42!"),
        "its a well known fact"
    );
    assert_eq!(words("A b"), ["a", "b"]);
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn swap_keeps_the_words_and_deletion_with_p_zero_is_identity() {
    let w = words(TEXT);
    for seed in 0..20 {
        let swapped = eda::random_swap(&w, 3, &mut rng(seed));
        assert_eq!(
            sorted(swapped.clone()),
            sorted(w.clone()),
            "swap keeps the multiset"
        );
        assert_eq!(swapped.len(), w.len());
    }
    assert_ne!(
        eda::random_swap(&w, 3, &mut rng(1)),
        w,
        "swap changes the order"
    );
    assert_eq!(eda::random_deletion(&w, 0.0, &mut rng(0)), w);
    let all = eda::random_deletion(&w, 1.0, &mut rng(0));
    assert_eq!(all.len(), 1, "never empty");
    assert!(w.contains(&all[0]));
    let some = eda::random_deletion(&w, 0.3, &mut rng(5));
    assert!(some.len() < w.len() && some.iter().all(|x| w.contains(x)));
    // Deletion keeps the order of the words that stay.
    let mut it = w.iter();
    assert!(some.iter().all(|x| it.any(|y| y == x)));
}

#[test]
fn synonym_replacement_draws_from_wordnet_and_spares_stop_words() {
    let wn = wordnet();
    let w = words(TEXT);
    for seed in 0..10 {
        let out = eda::synonym_replacement(&w, 2, wn, &mut rng(seed));
        let joined = out.join(" ");
        assert_ne!(joined, w.join(" "), "seed {seed}: something replaced");
        // Each original word either stays or was replaced by one of its WordNet synonyms;
        // stop words always stay. Compare position by position when no multi-word synonym
        // was inserted.
        if out.len() == w.len() {
            let mut replaced = 0;
            for (orig, new) in w.iter().zip(&out) {
                if orig != new {
                    assert!(
                        !eda::STOP_WORDS.contains(&orig.as_str()),
                        "{orig} is a stop word"
                    );
                    assert!(
                        wn.synonyms(orig).contains(new),
                        "{new} is not a synonym of {orig}"
                    );
                    replaced += 1;
                }
            }
            assert!(replaced >= 1);
        }
    }
}

#[test]
fn insertion_adds_synonyms_of_words_in_the_text() {
    let wn = wordnet();
    let w = words(TEXT);
    let out = eda::random_insertion(&w, 2, wn, &mut rng(3));
    assert!(out.len() >= w.len() + 2);
    let mut counts: HashMap<&str, i32> = HashMap::new();
    out.iter().for_each(|x| *counts.entry(x).or_default() += 1);
    w.iter().for_each(|x| *counts.entry(x).or_default() -= 1);
    assert!(
        counts.values().all(|&c| c >= 0),
        "every original word stays"
    );
    let added: Vec<&str> = counts
        .iter()
        .filter(|(_, &c)| c > 0)
        .map(|(k, _)| *k)
        .collect();
    let all_synonyms: Vec<String> = w.iter().flat_map(|x| wn.synonyms(x)).collect();
    for a in added {
        assert!(
            all_synonyms
                .iter()
                .any(|s| s.split(' ').any(|part| part == a)),
            "{a} is part of a synonym of a word of the text"
        );
    }
}

#[test]
fn every_operation_is_deterministic_for_a_seed() {
    let wn = wordnet();
    let config = EdaConfig::uniform(0.2);
    for op in [
        Operation::Synonym,
        Operation::Insert,
        Operation::Swap,
        Operation::Delete,
    ] {
        let a = apply(op, TEXT, &config, Some(wn), &mut rng(7)).unwrap();
        let b = apply(op, TEXT, &config, Some(wn), &mut rng(7)).unwrap();
        assert_eq!(a, b, "{op:?}");
        let differs =
            (0..10).any(|s| apply(op, TEXT, &config, Some(wn), &mut rng(s)).unwrap() != a);
        assert!(differs, "{op:?}: other seeds give other texts");
    }
    let a = eda::eda(TEXT, &config, 9, wn, &mut rng(1)).unwrap();
    assert_eq!(a.len(), 9);
    assert_eq!(a, eda::eda(TEXT, &config, 9, wn, &mut rng(1)).unwrap());
    let err = apply(Operation::Synonym, TEXT, &config, None, &mut rng(0)).unwrap_err();
    assert!(err.to_string().contains("WordNet"), "{err}");
    let err = eda::eda(TEXT, &EdaConfig::uniform(1.5), 1, wn, &mut rng(0)).unwrap_err();
    assert!(err.to_string().contains("alpha_sr 1.5"), "{err}");
}

#[test]
fn token_masking_and_cutoff_spare_special_tokens() {
    let ids = [101, 7, 8, 9, 10, 11, 12, 102];
    let special = [101, 102, 0];
    assert_eq!(
        mask_tokens(&ids, 0.0, 103, &special, &mut rng(0)).unwrap(),
        ids
    );
    let all = mask_tokens(&ids, 1.0, 103, &special, &mut rng(0)).unwrap();
    assert_eq!(all, [101, 103, 103, 103, 103, 103, 103, 102]);
    let cut = span_cutoff(&ids, 0.5, &special, &mut rng(2)).unwrap();
    assert_eq!(cut.len(), 5);
    assert_eq!((cut[0], cut[4]), (101, 102));
    // The removed tokens form one contiguous span.
    let kept: Vec<u32> = cut[1..4].to_vec();
    let start = ids.iter().position(|&x| x == kept[0]).unwrap();
    let rest: Vec<u32> = ids[1..7]
        .iter()
        .filter(|x| !kept.contains(x))
        .cloned()
        .collect();
    assert_eq!(rest.len(), 3);
    assert!(
        rest.windows(2).all(|p| p[1] == p[0] + 1),
        "one span: {rest:?} (kept from {start})"
    );
    assert!(mask_tokens(&ids, 1.5, 103, &special, &mut rng(0)).is_err());
}

#[test]
fn mixup_and_noise_on_embeddings() {
    use burn::tensor::Tensor;
    use kiln::backend::{cpu_device, Cpu};
    use kiln_augment::embedding::{gaussian_noise, mixup, mixup_lambda};
    let device = cpu_device();
    let a = Tensor::<Cpu, 2>::from_floats([[1.0, 0.0], [2.0, 2.0]], &device);
    let b = Tensor::<Cpu, 2>::from_floats([[0.0, 1.0], [0.0, 0.0]], &device);
    let m = mixup(a.clone(), b, 0.25)
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(m, [0.25, 0.75, 0.5, 0.5]);
    let l = mixup_lambda(0.4, &mut rng(0)).unwrap();
    assert!((0.0..=1.0).contains(&l));
    assert_eq!(l, mixup_lambda(0.4, &mut rng(0)).unwrap());
    let big = Tensor::<Cpu, 2>::zeros([200, 50], &device);
    let noisy = gaussian_noise(big, 0.5)
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let var = noisy.iter().map(|v| v * v).sum::<f32>() / noisy.len() as f32;
    assert!((var.sqrt() - 0.5).abs() < 0.02, "std {}", var.sqrt());
}

/// A test double that "translates" by reversing word order: back-translation must call it
/// there and back, in order, once each.
struct Reverser(std::cell::RefCell<Vec<(String, String)>>);

impl Translator for Reverser {
    fn translate(
        &self,
        texts: &[String],
        from: &str,
        to: &str,
    ) -> kiln_augment::Result<Vec<String>> {
        self.0.borrow_mut().push((from.into(), to.into()));
        Ok(texts
            .iter()
            .map(|t| t.split(' ').rev().collect::<Vec<_>>().join(" "))
            .collect())
    }
}

#[test]
fn back_translation_goes_through_the_pivot_and_back() {
    let translator = Reverser(Default::default());
    let texts = vec!["a b c".to_string(), "d e".to_string()];
    let out = back_translate(&translator, &texts, "en", "de").unwrap();
    assert_eq!(out, texts);
    assert_eq!(
        *translator.0.borrow(),
        [("en".into(), "de".into()), ("de".into(), "en".into())]
    );
}

// Apertium (scripts/install_apertium.sh; CI installs it): these tests fail, never skip, when it
// or its English-Spanish / English-Catalan pairs are missing. Exact translations are those of
// Debian 12's apertium-eng-spa 0.8.1 and apertium-eng-cat 1.0.1.

/// Apertium with the pairs the tests use, or a failure that says how to install them.
fn apertium() -> Apertium {
    let apertium = Apertium::new();
    for (from, to) in [
        ("eng", "spa"),
        ("spa", "eng"),
        ("eng", "cat"),
        ("cat", "eng"),
    ] {
        if let Err(e) = apertium.mode(from, to) {
            panic!("{e} (bash scripts/install_apertium.sh installs what these tests need)");
        }
    }
    apertium
}

fn lines(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| t.to_string()).collect()
}

#[test]
fn apertium_translates_fixed_sentences_there_and_back() {
    let apertium = apertium();
    let texts = lines(&["The dog is small.", "I love my cat.", "It runs."]);
    let spanish = apertium.translate(&texts, "eng", "spa").unwrap();
    assert_eq!(
        spanish,
        ["El perro es pequeño.", "Quiero mi gato.", "Corre."],
        "the final full stop survives (Apertium drops one right before a NUL)"
    );
    let back = back_translate(&apertium, &texts, "eng", "spa").unwrap();
    assert_eq!(back, ["The dog is small.", "I want my cat.", "It runs."]);
    // ISO 639-1 codes name the same pair; Catalan is another pivot.
    assert_eq!(
        apertium.translate(&texts[..1], "en", "es").unwrap(),
        spanish[..1]
    );
    assert_eq!(
        apertium.translate(&texts[..1], "eng", "cat").unwrap(),
        ["El gos és petit."]
    );
}

#[test]
fn apertium_keeps_lines_aligned_through_markup_and_empty_lines() {
    let reserved = [
        '\\', '[', ']', '^', '$', '/', '<', '>', '{', '}', '@', '*', '#', '~',
    ];
    let mut texts = Vec::new();
    for i in 0..40 {
        texts.push(match i % 5 {
            0 => String::new(),
            1 => format!("Line {i}: <b>bold</b> a*b #tag @user ^x$ [y] {{z}} \\ ~ end."),
            2 => format!("Line {i} has xqzzyfoo words."),
            3 => "   ".to_string(),
            _ => format!("Line {i}: 50% of *everything* is {{fine}}/[ok].\ttab\r"),
        });
    }
    let apertium = apertium().with_batch_lines(7);
    let spanish = apertium.translate(&texts, "eng", "spa").unwrap();
    let back = apertium.translate(&spanish, "spa", "eng").unwrap();
    assert_eq!((spanish.len(), back.len()), (texts.len(), texts.len()));
    for (i, (text, out)) in texts.iter().zip(&back).enumerate() {
        if text.trim().is_empty() {
            assert_eq!(out, "", "line {i}: blank in, empty out");
            continue;
        }
        // Numbers pass through Apertium untranslated: each line still holds its own.
        assert!(
            out.split(|c: char| !c.is_ascii_digit())
                .any(|n| n == i.to_string()),
            "line {i}: {out:?} from {text:?}"
        );
        for c in reserved {
            let count = |s: &str| s.chars().filter(|&x| x == c).count();
            assert_eq!(
                count(out.as_str()),
                count(text.as_str()),
                "line {i}, {c:?}: {out:?} from {text:?}"
            );
        }
        assert!(!out.contains('\t') && !out.contains('\r'), "{out:?}");
    }
    assert_eq!(
        back[2], "Line 2 has xqzzyfoo words.",
        "unknown-word markers (*xqzzyfoo) removed, the word kept"
    );
    assert_eq!(
        back[1],
        "Line 1: <b>bold</b> a*b #user @of label ^x$ [and] {z} \\ ~ end."
    );
    // The batch size does not change a line's translation.
    let one_batch = Apertium::new().translate(&texts, "eng", "spa").unwrap();
    assert_eq!(one_batch, spanish);
}

#[test]
fn apertium_missing_or_without_the_pair_is_a_clear_error() {
    let err = Apertium::new()
        .with_program("/nonexistent/apertium")
        .translate(&lines(&["a"]), "eng", "spa")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("apertium is not installed")
            && err.contains("apt-get install apertium apertium-eng-spa"),
        "{err}"
    );
    // A data directory without modes: every pair is missing.
    let dir = std::env::temp_dir().join(format!("kiln-apertium-empty-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("modes")).unwrap();
    let empty = apertium().with_data_dir(&dir);
    let err = empty.mode("eng", "cat").unwrap_err().to_string();
    assert!(
        err.contains("English -> Catalan is not installed")
            && err.contains("eng-cat or en-ca")
            && err.contains("apt-get install apertium-eng-cat"),
        "{err}"
    );
    let err = empty
        .translate(&lines(&["a"]), "en", "gl")
        .unwrap_err()
        .to_string();
    assert!(err.contains("apt-get install apertium-en-gl"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn back_translated_variants_are_deterministic_and_varied() {
    let apertium = apertium();
    let texts = lines(&[
        "A man is playing a guitar on the stage.",
        "",
        "The dog is small.",
    ]);
    let pivots = vec!["spa".to_string(), "cat".to_string()];
    let bt = BackTranslation {
        translator: &apertium,
        source: "eng",
        pivots: &pivots,
        eda: EdaConfig::default(),
        wordnet: Some(wordnet()),
    };
    let variants = bt.variants(&texts, 4, 3, 0).unwrap();
    assert_eq!(variants.texts.len(), 3);
    assert!(variants.texts.iter().all(|v| v.len() == 4));
    assert_eq!(
        variants.texts[1],
        ["", "", "", ""],
        "a blank line stays blank"
    );
    // One round trip per pivot first, then a round trip plus one EDA operation.
    assert_eq!(
        variants.texts[0][0],
        "A man is touching a guitar in the phase."
    );
    assert_eq!(
        variants.texts[0][1],
        "A man is touching a guitar at the stage."
    );
    assert_eq!((variants.round_trips, variants.unchanged), (4, 2));
    assert_eq!(
        variants.texts[2][..2],
        ["The dog is small.", "The dog is small."]
    );
    for v in &variants.texts[0][2..] {
        assert_eq!(v, &v.to_lowercase(), "EDA's cleaning: {v}");
    }
    assert_eq!(
        variants,
        bt.variants(&texts, 4, 3, 0).unwrap(),
        "deterministic"
    );
    let other = bt.variants(&texts, 4, 4, 0).unwrap();
    assert_eq!(
        other.texts[0][..2],
        variants.texts[0][..2],
        "round trips need no seed"
    );
    assert!(
        (5..25)
            .any(|s| bt.variants(&texts, 4, s, 0).unwrap().texts[0][2..] != variants.texts[0][2..]),
        "other seeds draw other EDA operations"
    );
    // Without WordNet, no more variants than pivots.
    let err = BackTranslation {
        wordnet: None,
        ..bt
    }
    .variants(&texts, 3, 0, 0)
    .unwrap_err()
    .to_string();
    assert!(err.contains("WordNet"), "{err}");
    let two = BackTranslation {
        wordnet: None,
        ..bt
    }
    .variants(&texts, 2, 0, 0)
    .unwrap();
    assert_eq!(two.texts[0], variants.texts[0][..2]);
}

//! kiln-augment: WordNet lookups, EDA's operations as specified, determinism under a seed,
//! token- and embedding-level ops, back-translation through a Translator.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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

//! The augmented views of each text: EDA copies ([`EdaViews`]), back-translations
//! ([`BackTranslationViews`]), or both, drawn before training and embedded with the originals.

use kiln_augment::back_translation::BackTranslation;
use kiln_augment::eda::EdaConfig;
use kiln_augment::translate::Translator;

use crate::error::Result;
use crate::features::EdaViews;

/// Back-translated views: one round trip per pivot (a rule-based translator such as Apertium
/// gives one translation per text). A view that comes back empty is dropped; a text left with
/// no view keeps itself as its view. Wrap the translator in a
/// [`crate::translation_cache::TranslationCache`] to translate each text once across runs.
#[derive(Clone, Copy)]
pub struct BackTranslationViews<'a> {
    /// The translator.
    pub translator: &'a dyn Translator,
    /// Language of the texts (`eng`).
    pub source: &'a str,
    /// Pivot languages, one view each.
    pub pivots: &'a [String],
}

impl BackTranslationViews<'_> {
    /// The views of each text.
    pub fn views(&self, texts: &[String]) -> Result<Vec<Vec<String>>> {
        let round_trips = BackTranslation {
            translator: self.translator,
            source: self.source,
            pivots: self.pivots,
            eda: EdaConfig::default(),
            wordnet: None,
        }
        .round_trips(texts)?;
        Ok(texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let mut views: Vec<String> = round_trips
                    .iter()
                    .map(|trip| trip[i].clone())
                    .filter(|v| !v.trim().is_empty())
                    .collect();
                if views.is_empty() {
                    views.push(text.clone());
                }
                views
            })
            .collect())
    }
}

/// One way of making views.
#[derive(Clone, Copy)]
pub enum Augmentation<'a> {
    /// EDA copies.
    Eda(EdaViews<'a>),
    /// Back-translations.
    BackTranslation(BackTranslationViews<'a>),
}

impl Augmentation<'_> {
    /// The views of each text; `offset` is the position of the first text among all the texts
    /// augmented (EDA's generators are seeded by position).
    pub fn views(&self, texts: &[String], offset: usize) -> Result<Vec<Vec<String>>> {
        match self {
            Self::Eda(eda) => eda.views(texts, offset),
            Self::BackTranslation(bt) => bt.views(texts),
        }
    }
}

/// Every augmentation's views of each text, one augmentation after the other (no augmentation:
/// no views).
pub fn views(
    augmentations: &[Augmentation<'_>],
    texts: &[String],
    offset: usize,
) -> Result<Vec<Vec<String>>> {
    let mut all: Vec<Vec<String>> = vec![Vec::new(); texts.len()];
    for augmentation in augmentations {
        for (views, more) in all.iter_mut().zip(augmentation.views(texts, offset)?) {
            views.extend(more);
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends the target language; a text holding `drop` (or empty) translates to nothing.
    struct Tag;

    impl Translator for Tag {
        fn translate(
            &self,
            texts: &[String],
            _from: &str,
            to: &str,
        ) -> kiln_augment::Result<Vec<String>> {
            Ok(texts
                .iter()
                .map(|t| {
                    if t.is_empty() || t.contains("drop") {
                        String::new()
                    } else {
                        format!("{t} {to}")
                    }
                })
                .collect())
        }
    }

    #[test]
    fn one_back_translated_view_per_pivot_and_none_empty() {
        let pivots = vec!["spa".to_string(), "cat".to_string()];
        let bt = BackTranslationViews {
            translator: &Tag,
            source: "eng",
            pivots: &pivots,
        };
        let texts: Vec<String> = ["a", "drop"].iter().map(|t| t.to_string()).collect();
        let views = views(&[Augmentation::BackTranslation(bt)], &texts, 0).unwrap();
        assert_eq!(views[0], ["a spa eng", "a cat eng"]);
        assert_eq!(views[1], ["drop"], "a text with no view keeps itself");
        assert_eq!(
            super::views(&[], &texts, 0).unwrap(),
            [Vec::<String>::new(), Vec::new()]
        );
    }
}

//! Back-translation (Sennrich et al. 2016; UDA's main augmentation): translate to a pivot
//! language and back. A translator plugs in through [`Translator`]: kiln ships
//! [`crate::apertium::Apertium`] (offline, rule-based); a wrapper around a Marian/NLLB model
//! served locally, or a translation API client, would implement it the same way.

use crate::error::Result;

/// A machine translation system.
pub trait Translator {
    /// Translates `texts` from language `from` to `to` (ISO 639 codes, e.g. `en`, `de`;
    /// Apertium also takes 639-3 codes such as `eng`, `spa`), one output per input, in order.
    fn translate(&self, texts: &[String], from: &str, to: &str) -> Result<Vec<String>>;
}

/// `texts` translated from `source` to `pivot` and back: paraphrases for augmentation.
pub fn back_translate(
    translator: &dyn Translator,
    texts: &[String],
    source: &str,
    pivot: &str,
) -> Result<Vec<String>> {
    let there = translator.translate(texts, source, pivot)?;
    let back = translator.translate(&there, pivot, source)?;
    if back.len() != texts.len() {
        return Err(crate::error::AugmentError::Translation(format!(
            "{} texts in, {} out",
            texts.len(),
            back.len()
        )));
    }
    Ok(back)
}

//! The languages kiln knows Apertium pairs for: their codes, names, the mode names a pair's
//! directions go by, and the Debian package that holds the pair.

/// A language Apertium translates from or to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Language {
    /// ISO 639-3 code (`spa`), as newer Apertium pairs name their modes.
    pub code: &'static str,
    /// ISO 639-1 code (`es`), as older pairs name their modes.
    pub short: &'static str,
    /// English name.
    pub name: &'static str,
    /// The Debian package of its pair with English (`None` for English itself).
    pub package: Option<&'static str>,
}

/// English, the source language of back-translation.
pub const ENGLISH: Language = Language {
    code: "eng",
    short: "en",
    name: "English",
    package: None,
};

/// The pivot languages: each has a pair with English packaged by Debian. Debian's Basque pair
/// (`apertium-eu-en`) translates Basque to English only, so Basque works as a pivot only with
/// an English -> Basque mode installed some other way.
pub const PIVOTS: [Language; 5] = [
    Language {
        code: "spa",
        short: "es",
        name: "Spanish",
        package: Some("apertium-eng-spa"),
    },
    Language {
        code: "cat",
        short: "ca",
        name: "Catalan",
        package: Some("apertium-eng-cat"),
    },
    Language {
        code: "glg",
        short: "gl",
        name: "Galician",
        package: Some("apertium-en-gl"),
    },
    Language {
        code: "epo",
        short: "eo",
        name: "Esperanto",
        package: Some("apertium-eo-en"),
    },
    Language {
        code: "eus",
        short: "eu",
        name: "Basque",
        package: Some("apertium-eu-en"),
    },
];

/// The language of an ISO 639-3 or 639-1 code (`spa` or `es`), if kiln knows it.
pub fn language(code: &str) -> Option<Language> {
    std::iter::once(ENGLISH)
        .chain(PIVOTS)
        .find(|l| l.code == code || l.short == code)
}

/// The name of `code`'s language, or the code itself.
pub fn name(code: &str) -> String {
    language(code).map_or_else(|| code.to_string(), |l| l.name.to_string())
}

/// The mode names the direction `from -> to` may have: `eng-spa`, then `en-es` (Debian's pairs
/// use both styles). Unknown codes are used as given.
pub fn mode_names(from: &str, to: &str) -> Vec<String> {
    match (language(from), language(to)) {
        (Some(f), Some(t)) => vec![
            format!("{}-{}", f.code, t.code),
            format!("{}-{}", f.short, t.short),
        ],
        _ => vec![format!("{from}-{to}")],
    }
}

/// The Debian package that holds the pair of `from` and `to`: the pivot's pair with English,
/// else Apertium's usual name for a pair.
pub fn package(from: &str, to: &str) -> String {
    let (f, t) = (language(from), language(to));
    [f, t]
        .into_iter()
        .flatten()
        .filter(|l| *l != ENGLISH)
        .find_map(|l| l.package)
        .filter(|_| f.is_some_and(|l| l == ENGLISH) || t.is_some_and(|l| l == ENGLISH))
        .map_or_else(
            || {
                let code =
                    |c: &str, l: Option<Language>| l.map_or(c.to_string(), |l| l.code.into());
                format!("apertium-{}-{}", code(from, f), code(to, t))
            },
            str::to_string,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_modes_and_packages() {
        assert_eq!(language("es").unwrap().code, "spa");
        assert_eq!(language("eng"), Some(ENGLISH));
        assert_eq!(language("xx"), None);
        assert_eq!(mode_names("en", "spa"), ["eng-spa", "en-es"]);
        assert_eq!(mode_names("glg", "eng"), ["glg-eng", "gl-en"]);
        assert_eq!(mode_names("xx", "yy"), ["xx-yy"]);
        assert_eq!(package("eng", "spa"), "apertium-eng-spa");
        assert_eq!(package("gl", "en"), "apertium-en-gl");
        assert_eq!(package("spa", "cat"), "apertium-spa-cat");
        assert_eq!(package("xx", "en"), "apertium-xx-eng");
        assert_eq!(name("epo"), "Esperanto");
    }
}

//! Plain text lines in and out of Apertium's stream format, one line per null-flushed chunk.
//!
//! Apertium reads a stream in which `\ [ ] ^ $ / < > { } @` have a meaning, and it marks words
//! it could not translate with `*` (unknown to the analyser), `@` (missing from the bilingual
//! dictionary) or `#` (not generated). A literal text therefore goes in with every such
//! character, and `*`, `#`, `~` too, inside a *superblank* (`[\*]`): formatting that Apertium
//! passes through untouched and in place. Coming out, superblanks give their characters back,
//! and a `*`, `@` or `#` outside one can only be a marker, which is dropped (the word stays).
//!
//! In null-flush mode (`apertium -z -f none`) each chunk ends with a NUL and is translated on
//! its own, with its own NUL in the output: one chunk per line keeps lines aligned whatever they
//! hold. A chunk ends with a space because Apertium drops a final punctuation mark that directly
//! precedes the NUL (`It runs.` would come back as `Corre`).

/// Characters a literal text may not pass to Apertium as they are.
pub const RESERVED: [char; 14] = [
    '\\', '[', ']', '^', '$', '/', '<', '>', '{', '}', '@', '*', '#', '~',
];

/// The unknown-word markers Apertium puts before a word: `*` (unknown to the analyser), `@`
/// (missing from the bilingual dictionary), `#` (could not be generated).
pub const MARKERS: [char; 3] = ['*', '@', '#'];

/// Appends `line` to `out` as one null-flush chunk: reserved characters inside superblanks,
/// control characters (a NUL would end the chunk; tabs, carriage returns) as spaces, then a
/// space and the NUL.
pub fn encode_line(line: &str, out: &mut Vec<u8>) {
    let mut chunk = String::with_capacity(line.len() + 8);
    let mut in_superblank = false;
    for c in line.chars() {
        if RESERVED.contains(&c) {
            if !in_superblank {
                chunk.push('[');
                in_superblank = true;
            }
            chunk.push('\\');
            chunk.push(c);
        } else {
            if in_superblank {
                chunk.push(']');
                in_superblank = false;
            }
            chunk.push(if c.is_control() { ' ' } else { c });
        }
    }
    if in_superblank {
        chunk.push(']');
    }
    chunk.push(' ');
    out.extend_from_slice(chunk.as_bytes());
    out.push(0);
}

/// One output chunk as plain text: superblanks give back their characters, escapes are
/// resolved, unknown-word markers are dropped, and runs of whitespace become one space (no
/// space at either end).
pub fn decode_chunk(chunk: &str) -> String {
    let mut text = String::with_capacity(chunk.len());
    let mut chars = chunk.chars();
    let mut in_superblank = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(escaped) = chars.next() {
                    text.push(escaped);
                }
            }
            '[' if !in_superblank => in_superblank = true,
            ']' if in_superblank => in_superblank = false,
            c if !in_superblank && MARKERS.contains(&c) => {}
            c => text.push(c),
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Splits Apertium's null-flush output into the first `lines` chunks, decoded. `None` when the
/// output holds fewer chunks, or text after them (Apertium adds only NULs when its input ends):
/// either means the lines would not line up.
pub fn decode_output(output: &[u8], lines: usize) -> Option<Vec<String>> {
    let mut chunks = output.split(|&b| b == 0);
    let mut texts = Vec::with_capacity(lines);
    for _ in 0..lines {
        let chunk = chunks.next()?;
        texts.push(decode_chunk(&String::from_utf8_lossy(chunk)));
    }
    // `split` yields the bytes after the last NUL too: one NUL fewer than `lines` leaves the
    // last line unterminated.
    let nuls = output.iter().filter(|&&b| b == 0).count();
    if nuls < lines {
        return None;
    }
    let rest_is_blank = chunks.all(|rest| rest.iter().all(|b| b.is_ascii_whitespace()));
    rest_is_blank.then_some(texts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(line: &str) -> String {
        let mut out = Vec::new();
        encode_line(line, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn reserved_characters_go_in_superblanks() {
        assert_eq!(encoded("It runs."), "It runs. \0");
        assert_eq!(encoded("a*b"), "a[\\*]b \0");
        assert_eq!(encoded("<b>x</b>"), "[\\<]b[\\>]x[\\<\\/]b[\\>] \0");
        assert_eq!(encoded("tab\there\0"), "tab here  \0");
        assert_eq!(encoded(""), " \0");
    }

    #[test]
    fn decoding_gives_back_literals_and_drops_markers() {
        assert_eq!(
            decode_chunk(" Quiero *xqzzy y #foo @bar. "),
            "Quiero xqzzy y foo bar."
        );
        assert_eq!(decode_chunk("Un[\\*]*b [\\[]i[\\]]"), "Un*b [i]");
        assert_eq!(decode_chunk("a\\@b  c\n"), "a@b c");
        for line in ["a*b #c @d ^e$ f/g <h> [i] \\j {k} ~n", "[\\]", "***"] {
            let chunk = encoded(line);
            assert_eq!(decode_chunk(chunk.trim_end_matches('\0')), line, "{chunk}");
        }
    }

    #[test]
    fn output_must_hold_every_line_and_nothing_after() {
        assert_eq!(
            decode_output(b"Hola \0\0 Corre.\0\0\0", 3),
            Some(vec![
                "Hola".to_string(),
                String::new(),
                "Corre.".to_string()
            ])
        );
        assert_eq!(decode_output(b"Hola \0", 2), None);
        assert_eq!(decode_output(b"Hola \0Corre", 2), None, "unterminated");
        assert_eq!(decode_output(b"Hola \0Corre\0", 1), None, "text after");
        assert_eq!(decode_output(b"", 0), Some(Vec::new()));
    }
}

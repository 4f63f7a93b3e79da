//! Word tokens for vocabularies: lowercased words, punctuation as tokens of its own (no
//! lemmatising, as milan-reference.md §3), and the inverse that joins tokens back into text.
//!
//! A word is a run of letters and digits; an apostrophe between letters stays inside the word
//! (`dog's`), a point between digits stays inside the number (`3.5`). Every other visible character
//! is a token by itself, so `black-and-white` is five tokens and joins back without spaces.

/// Splits `text` into lowercased tokens.
pub fn tokenize(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1).copied();
        let joins_word = match c {
            c if c.is_alphanumeric() => true,
            '\'' | '\u{2019}' => {
                prev.is_some_and(char::is_alphabetic) && next.is_some_and(char::is_alphabetic)
            }
            '.' => {
                prev.is_some_and(|p| p.is_ascii_digit()) && next.is_some_and(|n| n.is_ascii_digit())
            }
            _ => false,
        };
        if joins_word {
            // Curly apostrophes become straight ones so both spellings share a vocabulary entry.
            let c = if c == '\u{2019}' { '\'' } else { c };
            word.extend(c.to_lowercase());
            continue;
        }
        if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
        if !c.is_whitespace() {
            tokens.push(c.to_lowercase().collect());
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

fn attaches_left(token: &str) -> bool {
    matches!(
        token,
        "." | "," | ";" | ":" | "!" | "?" | ")" | "]" | "}" | "%" | "-" | "/"
    )
}

fn attaches_right(token: &str) -> bool {
    matches!(token, "(" | "[" | "{" | "-" | "/" | "#" | "$")
}

/// Joins tokens into text: words separated by single spaces, punctuation attached where
/// English writes it (`red, round`, `(left)`, `black-and-white`).
pub fn detokenize<S: AsRef<str>>(tokens: &[S]) -> String {
    let mut text = String::new();
    let mut previous: Option<&str> = None;
    for token in tokens {
        let token = token.as_ref();
        if let Some(prev) = previous
            && !attaches_left(token)
            && !attaches_right(prev)
        {
            text.push(' ');
        }
        text.push_str(token);
        previous = Some(token);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: &[&str]) {
        assert_eq!(tokenize(text), expected, "tokenize({text:?})");
    }

    #[test]
    fn tokenizes_words_and_punctuation() {
        check("Red circles.", &["red", "circles", "."]);
        check("  dogs,  cats ", &["dogs", ",", "cats"]);
        check("black-and-white", &["black", "-", "and", "-", "white"]);
        check("the dog's nose", &["the", "dog's", "nose"]);
        check("the dog\u{2019}s nose", &["the", "dog's", "nose"]);
        check("'quoted'", &["'", "quoted", "'"]);
        check("3.5 stripes.", &["3.5", "stripes", "."]);
        check("cars (left)", &["cars", "(", "left", ")"]);
        check("ÉCOLE café", &["école", "café"]);
        check("", &[]);
        check("...", &[".", ".", "."]);
    }

    #[test]
    fn detokenize_inverts_tokenize_on_normal_text() {
        for text in [
            "red circles on the left",
            "vertical stripes.",
            "dogs, cats and birds",
            "black-and-white patterns",
            "text (letters) on signs",
            "the dog's nose",
            "3.5 stripes",
            "a/b tests",
            "50% of the sky",
        ] {
            assert_eq!(detokenize(&tokenize(text)), text);
        }
    }

    #[test]
    fn tokenize_inverts_detokenize() {
        let tokens = ["blue", "squares", ",", "green", "triangles", "."];
        assert_eq!(tokenize(&detokenize(&tokens)), tokens);
    }
}

//! The captioner's vocabulary: every token of the training descriptions ordered by frequency, plus
//! the four special tokens (milan-reference.md section 3), and the token sequences the models read.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub const PAD: &str = "<pad>";
pub const START: &str = "<start>";
pub const STOP: &str = "<stop>";
pub const UNK: &str = "<unk>";

pub const PAD_ID: usize = 0;
pub const START_ID: usize = 1;
pub const STOP_ID: usize = 2;
pub const UNK_ID: usize = 3;

/// Token ids by position; the specials take ids 0..4 so a sequence of zeros is all padding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vocabulary {
    tokens: Vec<String>,
    #[serde(skip)]
    ids: HashMap<String, usize>,
}

impl Vocabulary {
    /// From tokenized training descriptions: most frequent first, ties in alphabetical order so
    /// the same data always gives the same ids.
    pub fn build<'a>(descriptions: impl IntoIterator<Item = &'a [String]>) -> Vocabulary {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for tokens in descriptions {
            for t in tokens {
                *counts.entry(t.as_str()).or_default() += 1;
            }
        }
        let mut words: Vec<(&str, usize)> = counts.into_iter().collect();
        words.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let tokens = [PAD, START, STOP, UNK]
            .into_iter()
            .chain(words.into_iter().map(|(w, _)| w))
            .map(str::to_owned)
            .collect();
        Vocabulary::from_tokens(tokens)
    }

    /// From a saved token list (checkpoint's `vocab.json`).
    pub fn from_tokens(tokens: Vec<String>) -> Vocabulary {
        let ids = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i))
            .collect();
        Vocabulary { tokens, ids }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn id(&self, token: &str) -> usize {
        self.ids.get(token).copied().unwrap_or(UNK_ID)
    }

    pub fn token(&self, id: usize) -> &str {
        self.tokens.get(id).map_or(UNK, String::as_str)
    }

    /// `[start, w1, .., wn, stop]` with at most `max_tokens` tokens after start (the words are
    /// cut so the stop token always fits).
    pub fn encode(&self, tokens: &[String], max_tokens: usize) -> Vec<usize> {
        let words = tokens.len().min(max_tokens.saturating_sub(1));
        std::iter::once(START_ID)
            .chain(tokens[..words].iter().map(|t| self.id(t)))
            .chain(std::iter::once(STOP_ID))
            .collect()
    }

    /// The text of generated ids (no start token), up to the first stop or padding.
    pub fn decode(&self, ids: &[usize]) -> String {
        let words: Vec<&str> = ids
            .iter()
            .take_while(|&&i| i != STOP_ID && i != PAD_ID)
            .filter(|&&i| i != START_ID)
            .map(|&i| self.token(i))
            .collect();
        milan_shared::tokenize::detokenize(&words)
    }
}

/// A padded batch of encoded sequences: `inputs[b][t]` is the token read at step t and
/// `targets[b][t]` the one to predict (PAD where the sequence has ended).
#[derive(Debug, Clone, PartialEq)]
pub struct Padded {
    pub inputs: Vec<i64>,
    pub targets: Vec<i64>,
    pub batch: usize,
    pub steps: usize,
}

pub fn pad(sequences: &[&[usize]]) -> Padded {
    let steps = sequences
        .iter()
        .map(|s| s.len().saturating_sub(1))
        .max()
        .unwrap_or(0);
    let batch = sequences.len();
    let mut inputs = vec![PAD_ID as i64; batch * steps];
    let mut targets = vec![PAD_ID as i64; batch * steps];
    for (b, s) in sequences.iter().enumerate() {
        for t in 0..s.len().saturating_sub(1) {
            inputs[b * steps + t] = s[t] as i64;
            targets[b * steps + t] = s[t + 1] as i64;
        }
    }
    Padded {
        inputs,
        targets,
        batch,
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        milan_shared::tokenize::tokenize(s)
    }

    #[test]
    fn frequency_order_with_specials_first() {
        let d = [
            toks("red circles"),
            toks("red squares"),
            toks("blue circles"),
        ];
        let v = Vocabulary::build(d.iter().map(Vec::as_slice));
        let order: Vec<&str> = (0..v.len()).map(|i| v.token(i)).collect();
        assert_eq!(
            order,
            [PAD, START, STOP, UNK, "circles", "red", "blue", "squares"]
        );
        assert_eq!(v.id("green"), UNK_ID);
    }

    #[test]
    fn encode_caps_length_and_decode_inverts() {
        let d = [toks("red circles on the left")];
        let v = Vocabulary::build(d.iter().map(Vec::as_slice));
        let ids = v.encode(&d[0], 15);
        assert_eq!(ids.first(), Some(&START_ID));
        assert_eq!(ids.last(), Some(&STOP_ID));
        assert_eq!(v.decode(&ids[1..]), "red circles on the left");
        let short = v.encode(&d[0], 3);
        assert_eq!(short.len(), 4, "start + 2 words + stop");
        assert_eq!(v.decode(&short[1..]), "red circles");
    }

    #[test]
    fn padding_shifts_targets() {
        let p = pad(&[&[1, 5, 6, 2], &[1, 7, 2]]);
        assert_eq!(p.steps, 3);
        assert_eq!(p.inputs, [1, 5, 6, 1, 7, 0]);
        assert_eq!(p.targets, [5, 6, 2, 7, 2, 0]);
    }
}

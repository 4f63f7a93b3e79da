//! Cleaning raw crowd descriptions the way the reference cleaned MILANNOTATIONS
//! (milan-reference.md §2): lowercase; fix words run together; strip boilerplate openings
//! ("these regions are", "all images contain", ...) and endings (".", " in them", ...);
//! "none of the above" becomes "nothing"; spell-correct unknown words through a
//! [`SpellCorrector`]; collapse whitespace.
//!
//! The phrase lists are ours, written from what crowd workers type; they are data, easy to extend.
//!
//! ```
//! use milan_shared::cleaning::clean;
//! assert_eq!(clean("These regions are: Red licenseplates in them."), "red license plates");
//! ```

use std::collections::HashMap;

use crate::tokenize::tokenize;

/// Openings that say nothing about the neuron; stripped repeatedly, longest first.
const OPENINGS: &[&str] = &[
    "the highlighted regions are",
    "the highlighted regions show",
    "the highlighted regions contain",
    "highlighted regions are",
    "highlighted regions show",
    "highlighted regions contain",
    "the highlighted areas are",
    "highlighted areas are",
    "the highlighted parts are",
    "these regions are",
    "these regions show",
    "these regions contain",
    "these regions have",
    "the regions are",
    "the regions show",
    "the regions contain",
    "regions are",
    "regions show",
    "regions contain",
    "regions of",
    "all the images contain",
    "all of the images contain",
    "all of the images have",
    "all images contain",
    "all images have",
    "all images show",
    "all the images have",
    "all the images show",
    "all images are",
    "all pictures contain",
    "all pictures have",
    "the images contain",
    "the images show",
    "the images have",
    "images contain",
    "images show",
    "images have",
    "the common theme is",
    "the common element is",
    "the common feature is",
    "what they have in common is",
    "they all contain",
    "they all have",
    "they all show",
    "they are all",
    "they all are",
    "they are",
    "these are all",
    "these are",
    "these all contain",
    "these all have",
    "these show",
    "these contain",
    "this is",
    "it is",
    "all are",
    "all have",
    "all contain",
    "there are",
    "there is",
    "i can see",
    "i see",
    "i think it is",
    "i think",
    "images of",
    "pictures of",
    "photos of",
    "photographs of",
    "contains",
    "contain",
    "shows",
];

/// Endings that say nothing about the neuron; stripped repeatedly, longest first. Punctuation
/// endings are handled separately.
const ENDINGS: &[&str] = &[
    "in all of the images",
    "in all the images",
    "in all images",
    "in each image",
    "in every image",
    "in the images",
    "in the image",
    "in the pictures",
    "in the picture",
    "in these images",
    "in the regions",
    "in each region",
    "in them",
    "in it",
    "is shown",
    "are shown",
    "is visible",
    "are visible",
    "are present",
    "is present",
    "are highlighted",
    "is highlighted",
];

/// Words typed without their space, as crowd workers often do.
const JOINED: &[(&str, &str)] = &[
    ("licenseplate", "license plate"),
    ("licenseplates", "license plates"),
    ("blackandwhite", "black and white"),
    ("blackwhite", "black white"),
    ("redandwhite", "red and white"),
    ("polkadots", "polka dots"),
    ("polkadot", "polka dot"),
    ("traffilight", "traffic light"),
    ("trafficlight", "traffic light"),
    ("trafficlights", "traffic lights"),
    ("streetlight", "street light"),
    ("streetlights", "street lights"),
    ("waterbottle", "water bottle"),
    ("dogface", "dog face"),
    ("dogfaces", "dog faces"),
    ("humanface", "human face"),
    ("humanfaces", "human faces"),
    ("animalfaces", "animal faces"),
    ("animalface", "animal face"),
    ("bluesky", "blue sky"),
];

/// What maps to "nothing": the multiple-choice escape of the annotation form.
const NOTHING: &[&str] = &["none of the above", "none of these", "none of above"];

/// The seam for spell correction: given one lowercased word token, the word it should be, or
/// `None` to keep it. The reference spell-corrected tokens unknown to its vocabulary.
pub trait SpellCorrector {
    fn correct(&self, word: &str) -> Option<String>;
}

/// Keeps every word as typed.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSpellCorrection;

impl SpellCorrector for NoSpellCorrection {
    fn correct(&self, _word: &str) -> Option<String> {
        None
    }
}

/// Corrects words unknown to a vocabulary to the most frequent known word one edit away
/// (a deletion, insertion, substitution or swap of neighbours). Words shorter than four letters and
/// words with digits are left alone: too many short words are one edit from each other.
#[derive(Debug, Clone, Default)]
pub struct VocabularyCorrector {
    counts: HashMap<String, u64>,
}

impl VocabularyCorrector {
    pub fn new<I, S>(words: I) -> Self
    where
        I: IntoIterator<Item = (S, u64)>,
        S: Into<String>,
    {
        let mut counts = HashMap::new();
        for (word, count) in words {
            *counts.entry(word.into()).or_insert(0) += count;
        }
        VocabularyCorrector { counts }
    }

    /// A vocabulary counted from texts, e.g. all descriptions of a corpus.
    pub fn from_texts<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        Self::new(
            texts
                .into_iter()
                .flat_map(tokenize)
                .filter(|t| t.chars().all(char::is_alphabetic))
                .map(|t| (t, 1)),
        )
    }
}

impl SpellCorrector for VocabularyCorrector {
    fn correct(&self, word: &str) -> Option<String> {
        let letters: Vec<char> = word.chars().collect();
        if self.counts.contains_key(word)
            || letters.len() < 4
            || !letters.iter().all(|c| c.is_alphabetic())
        {
            return None;
        }
        let mut best: Option<(u64, String)> = None;
        let mut consider = |candidate: String| {
            if let Some(&count) = self.counts.get(&candidate) {
                // Ties go to the alphabetically first word so that the result is deterministic.
                let better = match &best {
                    None => true,
                    Some((c, w)) => count > *c || (count == *c && candidate < *w),
                };
                if better {
                    best = Some((count, candidate));
                }
            }
        };
        let alphabet: Vec<char> = ('a'..='z').collect();
        for i in 0..=letters.len() {
            if i < letters.len() {
                let mut deleted = letters.clone();
                deleted.remove(i);
                consider(deleted.iter().collect());
                for &c in &alphabet {
                    let mut substituted = letters.clone();
                    substituted[i] = c;
                    consider(substituted.iter().collect());
                }
            }
            if i + 1 < letters.len() {
                let mut swapped = letters.clone();
                swapped.swap(i, i + 1);
                consider(swapped.iter().collect());
            }
            for &c in &alphabet {
                let mut inserted = letters.clone();
                inserted.insert(i, c);
                consider(inserted.iter().collect());
            }
        }
        best.map(|(_, w)| w)
    }
}

/// Cleans descriptions with a chosen [`SpellCorrector`].
#[derive(Debug, Clone, Default)]
pub struct Cleaner<S = NoSpellCorrection> {
    speller: S,
}

/// Cleans one description with no spell correction.
pub fn clean(raw: &str) -> String {
    Cleaner::<NoSpellCorrection>::default().clean(raw)
}

fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `s` without the phrase `prefix` at its start, if the phrase ends at a word boundary.
fn strip_phrase_start<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = s.strip_prefix(prefix)?;
    match rest.chars().next() {
        None => Some(rest),
        Some(c) if !c.is_alphanumeric() => Some(rest),
        _ => None,
    }
}

fn strip_phrase_end<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let rest = s.strip_suffix(suffix)?;
    match rest.chars().next_back() {
        None => Some(rest),
        Some(c) if !c.is_alphanumeric() => Some(rest),
        _ => None,
    }
}

const EDGE_PUNCTUATION: &[char] = &['.', ',', ';', ':', '!', '?', '-', '"', '\'', '*', ' '];

impl<S: SpellCorrector> Cleaner<S> {
    pub fn new(speller: S) -> Self {
        Cleaner { speller }
    }

    pub fn clean(&self, raw: &str) -> String {
        let mut text = collapse_whitespace(&raw.to_lowercase());
        for phrase in NOTHING {
            text = text.replace(phrase, "nothing");
        }
        text = self.fix_words(&text);
        // Strip openings and endings until neither changes the text, keeping a description that
        // is nothing but boilerplate rather than emptying it.
        loop {
            let before = text.clone();
            let trimmed = text.trim_matches(EDGE_PUNCTUATION);
            let mut next = trimmed;
            if let Some(rest) = OPENINGS
                .iter()
                .find_map(|p| strip_phrase_start(next, p))
                .filter(|rest| !rest.trim_matches(EDGE_PUNCTUATION).is_empty())
            {
                next = rest;
            }
            let next_trimmed = next.trim_matches(EDGE_PUNCTUATION);
            next = next_trimmed;
            if let Some(rest) = ENDINGS
                .iter()
                .find_map(|p| strip_phrase_end(next, p))
                .filter(|rest| !rest.trim_matches(EDGE_PUNCTUATION).is_empty())
            {
                next = rest;
            }
            text = next.trim_matches(EDGE_PUNCTUATION).to_owned();
            if text == before {
                break;
            }
        }
        collapse_whitespace(&text)
    }

    /// Splits joined words and spell-corrects, word by word; punctuation and spacing stay as typed.
    fn fix_words(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut word = String::new();
        let flush = |word: &mut String, out: &mut String| {
            if word.is_empty() {
                return;
            }
            if let Some((_, split)) = JOINED.iter().find(|(joined, _)| *joined == word) {
                out.push_str(split);
            } else if let Some(fixed) = self.speller.correct(word) {
                out.push_str(&fixed);
            } else {
                out.push_str(word);
            }
            word.clear();
        };
        for c in text.chars() {
            if c.is_alphanumeric() || c == '\'' {
                word.push(c);
            } else {
                flush(&mut word, &mut out);
                out.push(c);
            }
        }
        flush(&mut word, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (raw, cleaned) pairs: each a habit seen in crowd text.
    const CASES: &[(&str, &str)] = &[
        // case and whitespace
        ("Red Circles", "red circles"),
        ("  dogs  ", "dogs"),
        ("blue\tsky\n", "blue sky"),
        ("DOG   FACES", "dog faces"),
        // endings
        ("vertical stripes.", "vertical stripes"),
        ("vertical stripes...", "vertical stripes"),
        ("cars,", "cars"),
        ("wheels!", "wheels"),
        ("text in them", "text"),
        ("a dog is shown", "a dog"),
        ("faces are shown.", "faces"),
        ("grass in the images", "grass"),
        ("water in each image.", "water"),
        ("red things are visible", "red things"),
        ("windows in all of the images", "windows"),
        // openings
        ("these regions are red circles", "red circles"),
        ("These regions are: blue squares.", "blue squares"),
        ("all images contain text", "text"),
        ("All of the images contain dogs", "dogs"),
        ("there are wheels", "wheels"),
        ("There is a face", "a face"),
        ("i see stripes", "stripes"),
        ("I can see the sky", "the sky"),
        ("images of dogs", "dogs"),
        ("pictures of cats.", "cats"),
        ("the highlighted regions show grass", "grass"),
        ("the common theme is water", "water"),
        ("they are all animals", "animals"),
        ("these are buildings", "buildings"),
        ("it is the sky", "the sky"),
        // openings and endings together, and stacked
        ("These regions are images of dogs in them.", "dogs"),
        ("all images contain pictures of cars in the images.", "cars"),
        (
            "there are red circles on the left in them.",
            "red circles on the left",
        ),
        // boundaries: phrases only match whole words
        ("iceberg", "iceberg"),
        ("theres a dog", "theres a dog"),
        ("images", "images"),
        ("regions of the sky", "the sky"),
        ("shows", "shows"),
        ("there are", "there are"),
        ("contains text", "text"),
        ("text in items", "text in items"),
        ("the sky in itself", "the sky in itself"),
        // joined words
        ("licenseplate", "license plate"),
        ("Red licenseplates on cars.", "red license plates on cars"),
        ("blackandwhite stripes", "black and white stripes"),
        ("polkadots", "polka dots"),
        // nothing
        ("None of the above", "nothing"),
        ("none of the above.", "nothing"),
        ("None of these", "nothing"),
        // inner punctuation is kept
        ("dogs, cats and birds.", "dogs, cats and birds"),
        ("black-and-white patterns", "black-and-white patterns"),
        ("\"quoted text\"", "quoted text"),
        ("", ""),
        ("...", ""),
    ];

    #[test]
    fn cleans_like_the_reference() {
        assert!(CASES.len() >= 40);
        let failures: Vec<String> = CASES
            .iter()
            .filter_map(|(raw, expected)| {
                let got = clean(raw);
                (got != *expected).then(|| format!("{raw:?}: got {got:?}, expected {expected:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn cleaning_is_idempotent() {
        for (raw, _) in CASES {
            let once = clean(raw);
            assert_eq!(clean(&once), once, "{raw:?}");
        }
    }

    #[test]
    fn spell_correction_goes_through_the_seam() {
        let speller = VocabularyCorrector::from_texts([
            "red circles",
            "red circles",
            "blue stripes",
            "circled",
        ]);
        let cleaner = Cleaner::new(speller);
        assert_eq!(
            cleaner.clean("These regions are red cirlces."),
            "red circles"
        );
        assert_eq!(cleaner.clean("blue strpes"), "blue stripes");
        assert_eq!(cleaner.clean("blue stripess"), "blue stripes");
        assert_eq!(
            cleaner.clean("xyzzy circles"),
            "xyzzy circles",
            "unknown, far from every word"
        );
        assert_eq!(cleaner.clean("rde"), "rde", "short words are left alone");
    }

    #[test]
    fn correction_prefers_the_most_frequent_candidate() {
        let speller = VocabularyCorrector::new([("cart", 1), ("card", 5)]);
        assert_eq!(speller.correct("carx").as_deref(), Some("card"));
        assert_eq!(speller.correct("card"), None);
    }
}

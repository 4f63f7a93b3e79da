//! What descriptions say, counted: the first of the paper's uses of descriptions (analysing what
//! kinds of features networks learn across layers and models), for `trainer analyze` and the catalog's charts.
//!
//! spaCy is not available here (no tagger or lemmatiser from the registries we can use), so
//! words are classed by a lexicon ([`LEXICON`], data at the top of this file) with three rules:
//!
//! 1. A description is tokenized as the vocabulary is (`milan_shared::tokenize`: lowercased words,
//!    punctuation apart).
//! 2. A token matches an entry written the same, or written the same once a plural ending is
//!    taken off (`-s`, `-es`, `-ies` → `-y`): "circles", "boxes" and "bodies" match "circle",
//!    "box" and "body". Entries of several words ("in front of") match consecutive tokens.
//! 3. Every entry belongs to exactly one class (a test holds the classes disjoint), so a word is
//!    never counted twice; a description may name several classes ("red circles next to dogs"
//!    names colours, shapes, spatial relations and objects).
//!
//! A class's share in a group of descriptions is the fraction of descriptions that name it at
//! least once, with a 95% Wilson interval.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::tokenize::tokenize;

/// The classes, in the order tables and plots show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Objects,
    Parts,
    Colours,
    Textures,
    Shapes,
    Spatial,
    Abstract,
}

impl Class {
    pub const ALL: [Class; 7] = [
        Class::Objects,
        Class::Parts,
        Class::Colours,
        Class::Textures,
        Class::Shapes,
        Class::Spatial,
        Class::Abstract,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::Objects => "objects",
            Class::Parts => "parts",
            Class::Colours => "colours",
            Class::Textures => "textures",
            Class::Shapes => "shapes",
            Class::Spatial => "spatial relations",
            Class::Abstract => "abstract concepts",
        }
    }
}

/// The lexicon: each class's words and phrases, singular.
#[rustfmt::skip]
pub const LEXICON: [(Class, &[&str]); 7] = [
    (Class::Objects, &[
        "animal", "dog", "cat", "bird", "fish", "insect", "horse", "cow", "sheep", "snake",
        "monkey", "bear", "person", "people", "man", "woman", "child", "baby", "car", "truck",
        "bus", "bike", "bicycle", "boat", "ship", "plane", "airplane", "train", "vehicle",
        "building", "house", "tower", "bridge", "road", "street", "tree", "flower", "plant",
        "grass", "leaf", "leaves", "water", "sky", "cloud", "mountain", "rock", "sand", "snow",
        "food", "fruit", "table", "chair", "bed", "bottle", "cup", "ball", "book", "sign", "text",
        "letter", "word", "number", "screen", "computer", "phone", "clock", "lamp", "light bulb",
        "shelf", "box", "bag", "shoe", "hat", "shirt", "clothing", "dress", "instrument", "tool",
        "wall", "floor", "ceiling", "fence", "field", "ocean", "sea", "lake", "river", "beach",
        "forest", "object", "thing", "human",
    ]),
    (Class::Parts, &[
        "eye", "face", "head", "nose", "mouth", "ear", "teeth", "tooth", "hair", "fur", "feather",
        "beak", "wing", "tail", "leg", "foot", "feet", "paw", "hand", "finger", "arm", "body",
        "neck", "skin", "wheel", "tire", "window", "door", "roof", "handle", "trunk", "branch",
        "petal", "stem", "horn", "claw", "scale", "shell", "windshield", "headlight", "lid",
        "label", "keyboard",
    ]),
    (Class::Colours, &[
        "red", "orange", "yellow", "green", "blue", "purple", "violet", "pink", "brown", "black",
        "white", "gray", "grey", "teal", "turquoise", "gold", "golden", "silver", "colour",
        "color", "colourful", "colorful", "bright", "dark", "pale", "beige", "tan", "cyan",
        "magenta", "maroon",
    ]),
    (Class::Textures, &[
        "stripe", "striped", "stripy", "dot", "dotted", "spot", "spotted", "checkered",
        "checkerboard", "plaid", "grid", "mesh", "net", "pattern", "patterned", "texture",
        "textured", "fuzzy", "furry", "rough", "smooth", "shiny", "glossy", "metallic", "wooden",
        "woven", "knit", "wavy", "rippled", "bumpy", "grainy", "speckled", "honeycomb", "zigzag",
        "plain", "solid color", "solid colour", "fabric", "lattice", "wood",
    ]),
    (Class::Shapes, &[
        "circle", "circular", "round", "ring", "oval", "square", "rectangle", "rectangular",
        "triangle", "triangular", "star", "cross", "diamond", "bar", "line", "curve", "curved",
        "edge", "corner", "arc", "spiral", "cylinder", "sphere", "cone", "blob", "shape", "point",
        "pointy", "angle", "vertical", "horizontal", "diagonal", "straight", "tube", "disk",
        "rounded", "parallel", "arch",
    ]),
    (Class::Spatial, &[
        "next to", "beside", "above", "below", "under", "underneath", "over", "on top of",
        "in front of", "behind", "between", "inside", "outside", "around", "surrounding", "near",
        "left", "right", "top", "bottom", "center", "centre", "middle", "background", "foreground",
        "upper", "lower", "against", "along", "across",
    ]),
    (Class::Abstract, &[
        "scene", "indoor", "indoors", "outdoor", "outdoors", "nature", "natural", "urban", "rural",
        "crowd", "crowded", "motion", "movement", "shadow", "reflection", "light", "darkness",
        "contrast", "sport", "game", "music", "transportation", "weather", "danger", "close-up",
        "empty", "busy",
    ]),
];

/// Words and phrases, each with a tag, found in descriptions by the rules of the module
/// documentation: phrases (longest first) before single words, a token as written or singular.
#[derive(Debug, Clone)]
pub struct Matcher<T> {
    words: BTreeMap<String, T>,
    phrases: Vec<(Vec<String>, T)>,
}

impl<T: Copy> Default for Matcher<T> {
    fn default() -> Self {
        Matcher::new()
    }
}

impl<T: Copy> Matcher<T> {
    pub fn new() -> Self {
        Matcher {
            words: BTreeMap::new(),
            phrases: Vec::new(),
        }
    }

    pub fn insert(&mut self, tokens: Vec<String>, tag: T) {
        match <[String; 1]>::try_from(tokens) {
            Ok([word]) => {
                self.words.insert(word, tag);
            }
            Err(tokens) => {
                if !self.phrases.iter().any(|(p, _)| *p == tokens) {
                    self.phrases.push((tokens, tag));
                }
                // Longest phrases first, so "on top of" wins over a shorter phrase inside it.
                self.phrases
                    .sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
            }
        }
    }

    /// Every match in `description`: its token range and tag.
    pub fn find(&self, description: &str) -> Vec<(std::ops::Range<usize>, T)> {
        let tokens = tokenize(description);
        let singulars: Vec<Option<String>> = tokens.iter().map(|t| singular(t)).collect();
        let is = |i: usize, p: &String| tokens[i] == *p || singulars[i].as_ref() == Some(p);
        let mut found = Vec::new();
        let mut i = 0;
        'tokens: while i < tokens.len() {
            for (phrase, tag) in &self.phrases {
                let end = i + phrase.len();
                if end <= tokens.len() && phrase.iter().enumerate().all(|(j, p)| is(i + j, p)) {
                    found.push((i..end, *tag));
                    i = end;
                    continue 'tokens;
                }
            }
            let word = self
                .words
                .get(&tokens[i])
                .or_else(|| singulars[i].as_ref().and_then(|s| self.words.get(s)));
            if let Some(tag) = word {
                found.push((i..i + 1, *tag));
            }
            i += 1;
        }
        found
    }

    /// Every word and phrase, sorted.
    pub fn entries(&self) -> Vec<String> {
        let mut all: Vec<String> = self.words.keys().cloned().collect();
        all.extend(self.phrases.iter().map(|(p, _)| p.join(" ")));
        all.sort();
        all
    }
}

/// A lexicon ready to match: words and phrases by class.
#[derive(Debug, Clone)]
pub struct Lexicon {
    matcher: Matcher<Class>,
}

impl Default for Lexicon {
    fn default() -> Self {
        Lexicon::new(
            LEXICON.iter().flat_map(|(class, entries)| {
                entries.iter().map(move |e| (*class, (*e).to_owned()))
            }),
        )
        .expect("the built-in lexicon's classes are disjoint")
    }
}

impl Lexicon {
    /// A lexicon of `(class, entry)` pairs; an entry in two classes is an error naming it.
    pub fn new(entries: impl IntoIterator<Item = (Class, String)>) -> Result<Lexicon, String> {
        let mut matcher = Matcher::new();
        let mut seen: BTreeMap<Vec<String>, Class> = BTreeMap::new();
        for (class, entry) in entries {
            let tokens = tokenize(&entry);
            if tokens.is_empty() {
                continue;
            }
            if let Some(other) = seen.insert(tokens.clone(), class)
                && other != class
            {
                return Err(format!(
                    "lexicon entry {entry:?} is in two classes: {} and {}",
                    other.name(),
                    class.name()
                ));
            }
            matcher.insert(tokens, class);
        }
        Ok(Lexicon { matcher })
    }

    /// The classes `description` names.
    pub fn classes(&self, description: &str) -> BTreeSet<Class> {
        self.matcher
            .find(description)
            .into_iter()
            .map(|(_, class)| class)
            .collect()
    }
}

/// The singular of a plural-looking word (rule 2 of the module documentation), if it has one.
pub fn singular(word: &str) -> Option<String> {
    if word.len() > 4
        && let Some(stem) = word.strip_suffix("ies")
    {
        return Some(format!("{stem}y"));
    }
    if word.len() > 3
        && let Some(stem) = word.strip_suffix("es")
        && (stem.ends_with('x')
            || stem.ends_with("ch")
            || stem.ends_with("sh")
            || stem.ends_with('s'))
    {
        return Some(stem.to_owned());
    }
    if word.len() > 2 && !word.ends_with("ss") {
        return word.strip_suffix('s').map(str::to_owned);
    }
    None
}

/// A class's share of a group of descriptions, with its 95% Wilson interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Share {
    pub naming: usize,
    pub of: usize,
    pub share: f64,
    pub low: f64,
    pub high: f64,
}

impl Share {
    pub fn new(naming: usize, of: usize) -> Share {
        let (low, high) = wilson(naming, of);
        Share {
            naming,
            of,
            share: if of == 0 {
                0.0
            } else {
                naming as f64 / of as f64
            },
            low,
            high,
        }
    }
}

/// The 95% Wilson score interval of `k` successes in `n` trials ((0, 1) for none).
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    const Z: f64 = 1.959_963_984_540_054;
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z * ((p * (1.0 - p) + z2 / (4.0 * n)) / n).sqrt() / (1.0 + z2 / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// What a group of descriptions (a layer, or a whole model) says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub descriptions: usize,
    /// Per class, in [`Class::ALL`] order.
    pub shares: Vec<(Class, Share)>,
    /// Mean words per description (punctuation not counted).
    pub mean_words: f64,
    /// Distinct words over the group.
    pub vocabulary: usize,
}

impl Profile {
    pub fn of<'a>(lexicon: &Lexicon, descriptions: impl IntoIterator<Item = &'a str>) -> Profile {
        let mut count = 0usize;
        let mut naming: BTreeMap<Class, usize> = BTreeMap::new();
        let mut words = 0usize;
        let mut vocabulary = BTreeSet::new();
        for d in descriptions {
            count += 1;
            for class in lexicon.classes(d) {
                *naming.entry(class).or_default() += 1;
            }
            for token in tokenize(d) {
                if token.chars().any(char::is_alphanumeric) {
                    words += 1;
                    vocabulary.insert(token);
                }
            }
        }
        Profile {
            descriptions: count,
            shares: Class::ALL
                .iter()
                .map(|&c| (c, Share::new(naming.get(&c).copied().unwrap_or(0), count)))
                .collect(),
            mean_words: if count == 0 {
                0.0
            } else {
                words as f64 / count as f64
            },
            vocabulary: vocabulary.len(),
        }
    }

    pub fn share(&self, class: Class) -> Share {
        self.shares
            .iter()
            .find(|(c, _)| *c == class)
            .map(|(_, s)| *s)
            .expect("every class has a share")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lexicon_classes_known_phrases() {
        let lexicon = Lexicon::default();
        let classes = |d: &str| lexicon.classes(d).into_iter().collect::<Vec<_>>();
        use Class::*;
        assert_eq!(classes("red circles"), [Colours, Shapes]);
        assert_eq!(classes("dog faces"), [Objects, Parts]);
        assert_eq!(
            classes("vertical stripes on buildings"),
            [Objects, Textures, Shapes]
        );
        assert_eq!(classes("text on signs and labels"), [Objects, Parts]);
        assert_eq!(
            classes("blue squares next to yellow stars"),
            [Colours, Shapes, Spatial]
        );
        assert_eq!(
            classes("a checkerboard pattern in the center"),
            [Textures, Spatial]
        );
        assert_eq!(classes("boxes on top of bodies"), [Objects, Parts, Spatial]);
        assert_eq!(classes("crowded indoor scenes"), [Abstract]);
        assert_eq!(classes("the"), []);
        assert_eq!(classes("glass"), [], "'glass' is not the plural of 'glas'");
    }

    #[test]
    fn the_classes_are_disjoint_and_a_clash_is_named() {
        let _ = Lexicon::default();
        let err = Lexicon::new([
            (Class::Colours, "orange".to_owned()),
            (Class::Objects, "Orange".to_owned()),
        ])
        .unwrap_err();
        assert!(
            err.contains("\"Orange\" is in two classes: colours and objects"),
            "{err}"
        );
    }

    #[test]
    fn profiles_count_descriptions_words_and_shares() {
        let lexicon = Lexicon::default();
        let p = Profile::of(&lexicon, ["red circles", "red dogs", "stuff"]);
        assert_eq!(p.descriptions, 3);
        assert_eq!(p.share(Class::Colours).naming, 2);
        assert!((p.share(Class::Colours).share - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(p.share(Class::Objects).naming, 1);
        assert_eq!(p.share(Class::Textures).naming, 0);
        assert!((p.mean_words - 5.0 / 3.0).abs() < 1e-12);
        assert_eq!(p.vocabulary, 4, "red, circles, dogs, stuff");
    }

    #[test]
    fn wilson_intervals_match_the_formula() {
        // Known values: 2 of 3 -> (0.2077, 0.9385); 0 of 10 -> (0, 0.2775).
        let (l, h) = wilson(2, 3);
        assert!(
            (l - 0.2077).abs() < 1e-4 && (h - 0.9385).abs() < 1e-4,
            "{l} {h}"
        );
        let (l, h) = wilson(0, 10);
        assert!(l.abs() < 1e-9 && (h - 0.2775).abs() < 1e-4, "{l} {h}");
    }
}

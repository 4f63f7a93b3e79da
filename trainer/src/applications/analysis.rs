//! What descriptions say, counted: the first of the paper's uses of descriptions (analysing what
//! kinds of features networks learn across layers and models), for `trainer analyze`.
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

use std::path::Path;

use anyhow::{Context, Result, bail};
pub use milan_shared::lexicon::{Class, LEXICON, Lexicon, Profile, Share, wilson};
use milan_shared::lexicon::{Matcher, singular};
use milan_shared::tokenize::tokenize;
use serde::Serialize;

/// Words that stand for a concept in an audit besides its own name (`trainer audit --concept`;
/// `--lexicon FILE` adds more).
pub const CONCEPTS: [(&str, &[&str]); 3] = [
    (
        "faces",
        &[
            "face", "head", "eye", "nose", "mouth", "portrait", "person", "people", "human",
        ],
    ),
    (
        "text",
        &[
            "text",
            "letter",
            "word",
            "writing",
            "sign",
            "label",
            "number",
            "digit",
            "character",
            "font",
            "caption",
        ],
    ),
    (
        "animals",
        &[
            "animal", "dog", "cat", "bird", "fish", "insect", "horse", "fur", "paw",
        ],
    ),
];

/// A concept to look for in descriptions: its name, and the words and phrases that mention it.
#[derive(Debug, Clone)]
pub struct Concept {
    pub name: String,
    matcher: Matcher<()>,
}

impl Concept {
    /// `name` (comma-separated names are several concepts' words together), the built-in words
    /// of a known concept ([`CONCEPTS`]), and `extra` words.
    pub fn new(name: &str, extra: &[String]) -> Concept {
        let mut entries: Vec<String> = Vec::new();
        for part in name.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            entries.push(part.to_owned());
            if let Some((_, words)) = CONCEPTS.iter().find(|(n, _)| *n == part.to_lowercase()) {
                entries.extend(words.iter().map(|w| (*w).to_owned()));
            }
        }
        entries.extend(extra.iter().cloned());
        Concept::of_entries(name, entries)
    }

    /// Exactly `words` (no built-in list), matched the same way: plural endings, phrases.
    pub fn exactly(words: &[String]) -> Concept {
        Concept::of_entries(&words.join(","), words.to_vec())
    }

    fn of_entries(name: &str, entries: Vec<String>) -> Concept {
        let mut matcher = Matcher::new();
        for entry in entries {
            let tokens = tokenize(&entry);
            // "faces" as a name must find "face" too: the singular of a one-word entry.
            if let [word] = tokens.as_slice()
                && let Some(s) = singular(word)
            {
                matcher.insert(vec![s], ());
            }
            if !tokens.is_empty() {
                matcher.insert(tokens, ());
            }
        }
        Concept {
            name: name.to_owned(),
            matcher,
        }
    }

    /// Reads extra words for a concept: one word or phrase per line; `#` starts a comment.
    pub fn read_words(path: &Path) -> Result<Vec<String>> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// The words and phrases that count, sorted.
    pub fn words(&self) -> Vec<String> {
        self.matcher.entries()
    }

    /// The token ranges of `description` that mention the concept (empty: it does not).
    pub fn mentions(&self, description: &str) -> Vec<std::ops::Range<usize>> {
        self.matcher
            .find(description)
            .into_iter()
            .map(|(range, ())| range)
            .collect()
    }
}

/// One described unit of a descriptions file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub model: String,
    pub layer: String,
    pub unit: u32,
    pub description: String,
}

/// The descriptions of a CSV file: what `trainer describe` writes (`layer,unit,description`), a
/// MILANNOTATIONS annotations.csv (`layer,unit,summary`) or `fit`'s predictions.csv
/// (`model,layer,unit,prediction,...`: MILAN-PMI's), with an optional `model` column.
/// Without one, the model is `<arch>/<dataset>` for an annotations.csv in a model folder, else
/// the file's name without `.csv`. Layers keep the order they first appear in (network order,
/// as both writers write them).
pub fn read_descriptions(path: &Path) -> Result<Vec<Described>> {
    Ok(read_lines(path)?.into_iter().map(|(_, d)| d).collect())
}

/// [`read_descriptions`] with each description's line in the file, for errors that name it.
pub fn read_lines(path: &Path) -> Result<Vec<(u64, Described)>> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    read_lines_from(file, path)
}

/// [`read_lines`] of CSV text from `input`; `path` names it in errors (and gives the model when
/// there is no model column).
pub fn read_lines_from(input: impl std::io::Read, path: &Path) -> Result<Vec<(u64, Described)>> {
    let mut reader = csv::Reader::from_reader(input);
    let headers = reader
        .headers()
        .with_context(|| format!("{}: line 1", path.display()))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(layer), Some(unit)) = (column("layer"), column("unit")) else {
        bail!(
            "{}:1: the header needs layer and unit columns (found {:?})",
            path.display(),
            headers.iter().collect::<Vec<_>>().join(",")
        );
    };
    let Some(text) = column("description")
        .or_else(|| column("summary"))
        .or_else(|| column("prediction"))
    else {
        bail!(
            "{}:1: the header needs a description (or summary, or prediction) column",
            path.display()
        );
    };
    let model_column = column("model");
    let file_model = model_of(path);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("reading {}", path.display()))?;
        let line = record.position().map_or(0, csv::Position::line);
        let field = |i: usize| record.get(i).unwrap_or("").trim();
        let unit: u32 = field(unit).parse().with_context(|| {
            format!(
                "{}:{line}: field unit: {:?} is not a unit number",
                path.display(),
                field(unit)
            )
        })?;
        let description = field(text);
        if description.is_empty() {
            continue;
        }
        rows.push((
            line,
            Described {
                model: model_column.map_or(file_model.clone(), |m| field(m).to_owned()),
                layer: field(layer).to_owned(),
                unit,
                description: description.to_owned(),
            },
        ));
    }
    if rows.is_empty() {
        bail!("{}: no descriptions", path.display());
    }
    Ok(rows)
}

fn model_of(path: &Path) -> String {
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
    };
    if path.file_name().is_some_and(|n| n == "annotations.csv") {
        let dataset = path.parent();
        if let (Some(arch), Some(dataset)) = (name(dataset.and_then(Path::parent)), name(dataset)) {
            return format!("{arch}/{dataset}");
        }
    }
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// One model's layers (in order) with their profiles, and the whole model's.
#[derive(Debug, Clone, Serialize)]
pub struct ModelProfile {
    pub model: String,
    pub layers: Vec<(String, Profile)>,
    pub all: Profile,
}

/// A layer's name and its descriptions.
type LayerTexts<'a> = (String, Vec<&'a str>);

/// Profiles by model (in the order models first appear) and layer.
pub fn profile(lexicon: &Lexicon, described: &[Described]) -> Vec<ModelProfile> {
    let mut models: Vec<(String, Vec<LayerTexts>)> = Vec::new();
    for d in described {
        let at = match models.iter().position(|(m, _)| *m == d.model) {
            Some(i) => i,
            None => {
                models.push((d.model.clone(), Vec::new()));
                models.len() - 1
            }
        };
        let layers = &mut models[at].1;
        match layers.iter_mut().find(|(l, _)| *l == d.layer) {
            Some((_, texts)) => texts.push(&d.description),
            None => layers.push((d.layer.clone(), vec![d.description.as_str()])),
        }
    }
    models
        .into_iter()
        .map(|(model, layers)| ModelProfile {
            all: Profile::of(lexicon, layers.iter().flat_map(|(_, t)| t.iter().copied())),
            layers: layers
                .iter()
                .map(|(l, t)| (l.clone(), Profile::of(lexicon, t.iter().copied())))
                .collect(),
            model,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_concept_finds_its_words_plurals_and_phrases() {
        let spans = |c: &Concept, d: &str| -> Vec<(usize, usize)> {
            c.mentions(d)
                .into_iter()
                .map(|r| (r.start, r.end))
                .collect()
        };
        let faces = Concept::new("faces", &["dog muzzle".to_owned()]);
        assert_eq!(spans(&faces, "a dog's face"), [(2, 3)]);
        assert_eq!(spans(&faces, "Faces of people"), [(0, 1), (2, 3)]);
        assert_eq!(spans(&faces, "dog muzzles"), [(0, 2)]);
        assert!(faces.mentions("red circles").is_empty());
        let text = Concept::new("text", &[]);
        assert_eq!(text.mentions("letters and words on signs").len(), 3);
        let unknown = Concept::new("umbrellas", &[]);
        assert_eq!(spans(&unknown, "an umbrella"), [(1, 2)]);
        // Exactly the words given: no built-in list, so street signs are not text.
        let exactly = Concept::exactly(&["text".to_owned(), "letters".to_owned()]);
        assert_eq!(spans(&exactly, "letters and words on signs"), [(0, 1)]);
        assert_eq!(spans(&exactly, "a letter of text"), [(1, 2), (3, 4)]);
    }

    /// Real crowd phrases of AlexNet's units (Zhou et al. 2015): colours fade and objects and
    /// parts grow from the first layer to the last, beyond the intervals, as Zhou et al. found
    /// from the categories their workers chose.
    #[test]
    fn real_phrases_show_colours_fading_and_objects_growing_with_depth() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../shared/tests/fixtures/zhou2015-alexnet-units/imagenet-alexnet_unit_annotations.csv",
        );
        let described = read_descriptions(&path).unwrap();
        assert_eq!(described.len(), 4128);
        let models = profile(&Lexicon::default(), &described);
        let layers = &models[0].layers;
        let names: Vec<&str> = layers.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(names, ["pool1", "pool2", "conv3", "conv4", "pool5"]);
        let (first, last) = (&layers[0].1, &layers[4].1);
        let apart = |low: Share, high: Share| low.high < high.low;
        assert!(apart(
            last.share(Class::Colours),
            first.share(Class::Colours)
        ));
        assert!(apart(
            first.share(Class::Objects),
            last.share(Class::Objects)
        ));
        assert!(apart(first.share(Class::Parts), last.share(Class::Parts)));
        let classed = described
            .iter()
            .filter(|d| !Lexicon::default().classes(&d.description).is_empty())
            .count();
        assert!(
            classed * 100 / described.len() >= 85,
            "the lexicon classes {classed} of {} phrases",
            described.len()
        );
    }
}

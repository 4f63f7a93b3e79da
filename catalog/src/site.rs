//! What a catalog shows: models, their layers, each layer's units with their descriptions by
//! source. Builders (the trainer's `catalog` command, the annotator's live catalog) fill it in;
//! `pages` renders it, `search` indexes it.

use std::collections::BTreeSet;

use milan_shared::lexicon::{Lexicon, Profile};

/// Units per layer page: a 4,000-unit layer is 40 pages, each quick to load.
pub const UNITS_PER_PAGE: usize = 100;

/// Where descriptions come from ("human", "MILAN base", "NetDissect", ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    /// Human descriptions: their agreement is shown; a model's never counts in it.
    pub human: bool,
}

/// One description of a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    /// Index into [`Catalog::sources`].
    pub source: usize,
    pub text: String,
}

/// A unit: its number, how many exemplar images it shows (0: none), its descriptions.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub unit: u32,
    pub exemplars: usize,
    pub texts: Vec<Text>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub name: String,
    /// File-safe and unique within its model: the layer's folder in the site.
    pub slug: String,
    /// Sorted by unit number.
    pub units: Vec<Unit>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// `arch/dataset`, or any name a descriptions file gives.
    pub name: String,
    /// File-safe and unique within the catalog: the model's folder in the site.
    pub slug: String,
    pub layers: Vec<Layer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    pub title: String,
    pub sources: Vec<Source>,
    pub models: Vec<Model>,
}

/// A unit's place: model, layer and position in the layer's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct At {
    pub model: usize,
    pub layer: usize,
    pub index: usize,
}

impl Catalog {
    /// An empty catalog with these sources.
    pub fn new(title: &str, sources: Vec<Source>) -> Catalog {
        Catalog {
            title: title.to_owned(),
            sources,
            models: Vec::new(),
        }
    }

    /// The source of this name, added (as a model's, or human) when new.
    pub fn source(&mut self, name: &str, human: bool) -> usize {
        match self.sources.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                self.sources.push(Source {
                    name: name.to_owned(),
                    human,
                });
                self.sources.len() - 1
            }
        }
    }

    /// The model of this name, added at the end when new.
    pub fn model(&mut self, name: &str) -> usize {
        match self.models.iter().position(|m| m.name == name) {
            Some(i) => i,
            None => {
                let taken: BTreeSet<String> = self.models.iter().map(|m| m.slug.clone()).collect();
                self.models.push(Model {
                    name: name.to_owned(),
                    slug: slug(name, &taken),
                    layers: Vec::new(),
                });
                self.models.len() - 1
            }
        }
    }

    /// The layer of this name in model `m`, added at the end when new.
    pub fn layer(&mut self, m: usize, name: &str) -> usize {
        let model = &mut self.models[m];
        match model.layers.iter().position(|l| l.name == name) {
            Some(i) => i,
            None => {
                let taken: BTreeSet<String> = model.layers.iter().map(|l| l.slug.clone()).collect();
                model.layers.push(Layer {
                    name: name.to_owned(),
                    slug: slug(name, &taken),
                    units: Vec::new(),
                });
                model.layers.len() - 1
            }
        }
    }

    /// Unit `unit` of layer `l` of model `m`, added when new (units kept sorted).
    pub fn unit(&mut self, m: usize, l: usize, unit: u32) -> &mut Unit {
        let units = &mut self.models[m].layers[l].units;
        let i = match units.binary_search_by_key(&unit, |u| u.unit) {
            Ok(i) => i,
            Err(i) => {
                units.insert(
                    i,
                    Unit {
                        unit,
                        exemplars: 0,
                        texts: Vec::new(),
                    },
                );
                i
            }
        };
        &mut units[i]
    }

    /// Every unit's place, model by model, layer by layer, unit by unit.
    pub fn places(&self) -> impl Iterator<Item = At> + '_ {
        self.models.iter().enumerate().flat_map(|(m, model)| {
            model.layers.iter().enumerate().flat_map(move |(l, layer)| {
                (0..layer.units.len()).map(move |index| At {
                    model: m,
                    layer: l,
                    index,
                })
            })
        })
    }

    pub fn get(&self, at: At) -> (&Model, &Layer, &Unit) {
        let model = &self.models[at.model];
        let layer = &model.layers[at.layer];
        (model, layer, &layer.units[at.index])
    }

    pub fn unit_count(&self) -> usize {
        self.models
            .iter()
            .flat_map(|m| &m.layers)
            .map(|l| l.units.len())
            .sum()
    }

    pub fn text_count(&self) -> usize {
        self.models
            .iter()
            .flat_map(|m| &m.layers)
            .flat_map(|l| &l.units)
            .map(|u| u.texts.len())
            .sum()
    }

    /// Drops layers without units and models without layers (a filter that left them empty).
    pub fn prune(&mut self) {
        for model in &mut self.models {
            model.layers.retain(|l| !l.units.is_empty());
        }
        self.models.retain(|m| !m.layers.is_empty());
    }
}

impl Layer {
    /// How many pages the layer's grid takes (at least one).
    pub fn pages(&self) -> usize {
        self.units.len().div_ceil(UNITS_PER_PAGE).max(1)
    }

    /// The lexicon's profile of every description of the layer, all sources together.
    pub fn profile(&self, lexicon: &Lexicon) -> Profile {
        Profile::of(
            lexicon,
            self.units
                .iter()
                .flat_map(|u| u.texts.iter().map(|t| t.text.as_str())),
        )
    }
}

impl Unit {
    /// Agreement among the unit's human descriptions (mean pairwise sentence BLEU, 0-100, as
    /// the annotator's review page computes it); `None` with fewer than two.
    pub fn agreement(&self, sources: &[Source]) -> Option<f64> {
        let human: Vec<String> = self
            .texts
            .iter()
            .filter(|t| sources[t.source].human)
            .map(|t| t.text.clone())
            .collect();
        (human.len() >= 2).then(|| milan_metrics::bleu::agreement(&human).0)
    }
}

/// Names of the site's own files and folders, which no model or layer folder may take.
const RESERVED: [&str; 6] = [
    "img",
    "index.html",
    "search.html",
    "search-index.js",
    "catalog.css",
    "catalog.js",
];

/// A file-safe name for `name`: ASCII letters, digits, `-`, `_` and `.` kept (a leading `.` is
/// not), anything else `-`; `-2`, `-3`, ... when it is taken.
pub fn slug(name: &str, taken: &BTreeSet<String>) -> String {
    let mut base: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    base = base.trim_start_matches('.').to_owned();
    // Never empty, never a name the site's own files take.
    if base.is_empty() || RESERVED.contains(&base.as_str()) {
        base = format!("x{base}");
    }
    let mut candidate = base.clone();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{base}-{n}");
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_safe_and_unique() {
        let mut taken = BTreeSet::new();
        for (name, want) in [
            ("alexnet/imagenet", "alexnet-imagenet"),
            ("alexnet-imagenet", "alexnet-imagenet-2"),
            ("/features/Conv_3", "-features-Conv_3"),
            ("../etc", "-etc"),
            ("..", "x"),
            ("img", "ximg"),
            ("12", "12"),
            ("index.html", "xindex.html"),
            ("layer é", "layer--"),
        ] {
            let s = slug(name, &taken);
            assert_eq!(s, want, "{name}");
            taken.insert(s);
        }
    }

    #[test]
    fn units_stay_sorted_and_agreement_counts_humans_only() {
        let mut c = Catalog::new("t", Vec::new());
        let human = c.source("human", true);
        let milan = c.source("MILAN", false);
        let m = c.model("a/b");
        let l = c.layer(m, "conv1");
        for u in [5, 1, 3, 1] {
            c.unit(m, l, u);
        }
        let units: Vec<u32> = c.models[m].layers[l].units.iter().map(|u| u.unit).collect();
        assert_eq!(units, [1, 3, 5]);
        let unit = c.unit(m, l, 3);
        unit.texts.push(Text {
            source: milan,
            text: "red circles".into(),
        });
        assert_eq!(c.models[m].layers[l].units[1].agreement(&c.sources), None);
        for t in ["red circles on the left", "red circles on the left side"] {
            c.unit(m, l, 3).texts.push(Text {
                source: human,
                text: t.into(),
            });
        }
        let a = c.models[m].layers[l].units[1]
            .agreement(&c.sources)
            .unwrap();
        assert!(a > 50.0 && a < 100.0, "{a}");
    }
}

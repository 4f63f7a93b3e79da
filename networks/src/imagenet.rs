//! The 1000 ImageNet classes in the order classifiers number them, with readable names (the
//! `imagenet-classes` asset: WordNet ids and their lemmas).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, ensure};

/// Class names by index: the first lemma of each WordNet synset ("bull mastiff").
#[derive(Debug, Clone)]
pub struct Classes {
    pub ids: Vec<String>,
    pub names: Vec<String>,
}

impl Classes {
    /// Reads `imagenet_synsets.txt` (1000 ids in order) and `imagenet_synset_to_lemma.txt`
    /// (`id<TAB>lemma, lemma, ...`) from the asset folder.
    pub fn load(dir: &Path) -> Result<Classes> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "reading {}: run `trainer assets fetch imagenet-classes`",
                    path.display()
                )
            })
        };
        let ids: Vec<String> = read("imagenet_synsets.txt")?
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        ensure!(
            ids.len() == 1000,
            "imagenet_synsets.txt: {} ids, expected 1000",
            ids.len()
        );
        let lemmas: HashMap<String, String> = read("imagenet_synset_to_lemma.txt")?
            .lines()
            .filter_map(|l| {
                let (id, lemma) = l.split_once('\t')?;
                Some((id.to_owned(), lemma.split(',').next()?.trim().to_owned()))
            })
            .collect();
        let names = ids
            .iter()
            .map(|id| lemmas.get(id).cloned().unwrap_or_else(|| id.clone()))
            .collect();
        Ok(Classes { ids, names })
    }
}

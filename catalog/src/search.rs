//! The search index: every description with its words, as a script (`search-index.js`) that
//! sets `window.MILAN_CATALOG`. A script, not JSON, because pages opened from `file://` may not
//! fetch files but may load scripts.
//!
//! Words are the vocabulary's tokens (`milan_shared::tokenize`) that hold a letter or digit; each
//! is listed once with its singular as `trainer analyze` folds plurals
//! (`milan_shared::lexicon::singular`), so the page matches "circles" to "circle" exactly as the
//! analysis does. The page's own tokenizer, for the query only, follows the same rules; a browser
//! test holds the two equal on tricky inputs.

use std::collections::HashMap;

use milan_shared::lexicon::singular;
use milan_shared::tokenize::tokenize;
use serde::Serialize;

use crate::site::Catalog;

#[derive(Serialize)]
struct Index<'a> {
    title: &'a str,
    models: Vec<ModelEntry<'a>>,
    sources: Vec<SourceEntry<'a>>,
    /// `[word, singular or null]`.
    words: Vec<(String, Option<String>)>,
    /// `[model, layer, unit number, exemplar count]`.
    units: Vec<(usize, usize, u32, usize)>,
    /// `[unit index, source, text, word ids in order]`.
    texts: Vec<(usize, usize, &'a str, Vec<u32>)>,
}

#[derive(Serialize)]
struct ModelEntry<'a> {
    name: &'a str,
    slug: &'a str,
    layers: Vec<LayerEntry<'a>>,
}

#[derive(Serialize)]
struct LayerEntry<'a> {
    name: &'a str,
    slug: &'a str,
}

#[derive(Serialize)]
struct SourceEntry<'a> {
    name: &'a str,
    human: bool,
}

/// The words of a description as the index holds them: tokens with a letter or digit.
pub fn words(text: &str) -> Vec<String> {
    tokenize(text)
        .into_iter()
        .filter(|t| t.chars().any(char::is_alphanumeric))
        .collect()
}

/// `search-index.js` for the catalog.
pub fn index_script(catalog: &Catalog) -> String {
    let mut vocabulary: HashMap<String, u32> = HashMap::new();
    let mut words_list: Vec<(String, Option<String>)> = Vec::new();
    let mut units = Vec::new();
    let mut texts = Vec::new();
    for at in catalog.places() {
        let (_, _, unit) = catalog.get(at);
        let index = units.len();
        units.push((at.model, at.layer, unit.unit, unit.exemplars));
        for t in &unit.texts {
            let ids = words(&t.text)
                .into_iter()
                .map(|w| {
                    *vocabulary.entry(w.clone()).or_insert_with(|| {
                        let s = singular(&w);
                        words_list.push((w, s));
                        (words_list.len() - 1) as u32
                    })
                })
                .collect();
            texts.push((index, t.source, t.text.as_str(), ids));
        }
    }
    let index = Index {
        title: &catalog.title,
        models: catalog
            .models
            .iter()
            .map(|m| ModelEntry {
                name: &m.name,
                slug: &m.slug,
                layers: m
                    .layers
                    .iter()
                    .map(|l| LayerEntry {
                        name: &l.name,
                        slug: &l.slug,
                    })
                    .collect(),
            })
            .collect(),
        sources: catalog
            .sources
            .iter()
            .map(|s| SourceEntry {
                name: &s.name,
                human: s.human,
            })
            .collect(),
        words: words_list,
        units,
        texts,
    };
    let json = serde_json::to_string(&index).expect("the index serializes");
    // `<`, `>` and `&` only occur inside JSON strings; as escapes there, no crowd text can read as
    // markup even if the script is ever inlined into a page.
    let json = json
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    format!("window.MILAN_CATALOG = {json};\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::Text;

    #[test]
    fn the_index_lists_words_once_with_their_singulars() {
        let mut c = Catalog::new("t", Vec::new());
        let s = c.source("human", true);
        let m = c.model("a/b");
        let l = c.layer(m, "conv1");
        c.unit(m, l, 4).texts.push(Text {
            source: s,
            text: "Red circles, red boxes </script>".into(),
        });
        let js = index_script(&c);
        let json = js
            .strip_prefix("window.MILAN_CATALOG = ")
            .and_then(|j| j.strip_suffix(";\n"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(
            v["words"],
            serde_json::json!([
                ["red", null],
                ["circles", "circle"],
                ["boxes", "box"],
                ["script", null]
            ])
        );
        assert_eq!(v["texts"][0][3], serde_json::json!([0, 1, 0, 2, 3]));
        assert_eq!(v["texts"][0][2], "Red circles, red boxes </script>");
        assert!(!js.contains("</script>"));
        assert_eq!(v["units"][0], serde_json::json!([0, 0, 4, 0]));
    }
}

//! The Neuron Catalog: every described neuron, browsable and searchable — a home page of models
//! and layers with what their descriptions name, a page per layer (a grid of units, paged), a
//! page per unit (its exemplars and every description with its source), and a search over every
//! description.
//!
//! - [`site`]: what a catalog holds (`Catalog`: models, layers, units, descriptions by source);
//! - [`sheet`]: a unit's exemplars drawn as JPEG sheets, as a worker sees them, region outlined;
//! - [`pages`]: the HTML of every page, with relative links only;
//! - [`search`]: the search index (`search-index.js`);
//! - [`write`]: a whole catalog written as a static site, atomically.
//!
//! The trainer's `catalog` command builds one from MILANNOTATIONS and description files; the
//! annotator serves the same pages live from its database at `/catalog/{project}/`. This crate
//! depends on `shared` and `metrics` only (no web server, no tensors).

pub mod pages;
pub mod search;
pub mod sheet;
pub mod site;
pub mod write;

pub use site::{At, Catalog, Source, Text, Unit};

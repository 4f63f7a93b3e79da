//! MILANNOTATIONS on disk: the layout researchers already have (milan-reference.md §2).
//!
//! ```text
//! <root>/<arch>/<dataset>/annotations.csv        layer,unit,summary; 3 rows per unit
//! <root>/<arch>/<dataset>/<layer>/masks.npy      uint8 {0,1}, (units, k, 1, H, W)
//! <root>/<arch>/<dataset>/<layer>/images.npy     uint8, (units, k, 3, H, W), optional
//! <root>/<arch>/<dataset>/<layer>/ids.csv        one row per unit: k source-image indices
//! <root>/<arch>/<dataset>/<layer>/omitted.csv    optional: `unit` rows whose arrays are zero
//! ```
//!
//! omitted.csv is ours, not the reference's: an export of only the described units keeps every
//! row (a row's index is its unit number) but leaves the others' rows zero, and names them there.
//! The reference's loaders ignore the file and see zero images for those units.
//!
//! [`Dataset::open`] reads a model folder; arrays are memory-mapped and never read whole.
//! [`DatasetWriter`] writes one into a hidden temporary folder and renames it into place, so a
//! reader never sees half a dataset; [`ArchiveWriter`] writes the same files as a tar stream.

mod archive;
mod error;
mod npy;
mod reader;
mod writer;

pub use archive::{ArchiveWriter, ArchivedLayer, Array, Rows};
pub use error::FormatError;
pub use npy::{LayerShape, U8Array};
pub use reader::{AnnotatedUnit, Dataset, ExemplarIter, Exemplars, Layer, SkippedUnit, discover};
pub use writer::{DatasetWriter, LayerWriter, npy_header_for};

pub const ANNOTATIONS_FILE: &str = "annotations.csv";
pub const MASKS_FILE: &str = "masks.npy";
pub const IMAGES_FILE: &str = "images.npy";
pub const IDS_FILE: &str = "ids.csv";
pub const OMITTED_FILE: &str = "omitted.csv";
/// Descriptions a unit needs to be used, and how many of them are used (the reference loaders).
pub const DESCRIPTIONS_PER_UNIT: usize = 3;
/// Exemplars per unit in MILANNOTATIONS.
pub const EXEMPLARS_PER_UNIT: usize = 15;
/// Side of the square exemplar images in MILANNOTATIONS.
pub const IMAGE_SIZE: usize = 224;

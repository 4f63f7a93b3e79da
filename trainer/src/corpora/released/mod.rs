//! The MILAN authors' released material, usable as it is: their MILANNOTATIONS zips
//! ([`milannotations`]) and their pretrained decoders ([`checkpoint`]) decoded exactly as their
//! library decodes ([`decode`]). Downloads go through [`crate::assets::download`].

#[cfg(feature = "train")]
pub mod checkpoint;
#[cfg(feature = "train")]
pub mod decode;
pub mod milannotations;

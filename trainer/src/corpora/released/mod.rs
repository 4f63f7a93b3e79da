//! The MILAN authors' released material, usable as it is: their MILANNOTATIONS zips
//! ([`milannotations`]) and their pretrained decoders ([`checkpoint`]) decoded exactly as their
//! library decodes ([`decode`]). Downloads go through [`crate::assets::download`].

pub mod checkpoint;
pub mod decode;
pub mod milannotations;

//! The MILAN authors' released material, usable as it is: their MILANNOTATIONS zips
//! ([`data`]), their pretrained decoders ([`checkpoint`]) decoded exactly as their library
//! decodes ([`decode`]), and the downloads both need ([`download`]).

pub mod checkpoint;
pub mod data;
pub mod decode;
pub mod download;

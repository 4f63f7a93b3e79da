//! Small utilities every stage may use: the tensor backend chosen at run time ([`backend`]),
//! file checksums ([`checksum`]) and plots ([`plot`]). They depend on no other module of the
//! trainer. (Atomic files and seeded shuffles are `milan_shared::atomic` and `random`.)

pub mod backend;
pub mod checksum;
pub mod plot;

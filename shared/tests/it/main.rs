//! The integration tests of milan-shared, one binary (`cargo test -p milan-shared --test it`), a
//! module per area.

mod large_layer;
mod milannotations;
mod real_phrases;

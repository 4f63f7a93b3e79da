//! The integration tests of milan-metrics, one binary, a module per area.

mod reference;
mod rouge;

//! The integration tests of milan-synth, one binary, a module per area.

mod corpus;

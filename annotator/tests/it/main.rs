//! The integration tests of the annotator, one binary (`cargo test -p milan-annotator --test it`),
//! a module per area; `common` starts servers and databases for them.

mod api;
mod backup;
mod browser;
mod cli;
mod common;
mod crash;
mod engine;
mod full_disk;
mod group_commit;
mod import_export;
mod load;
mod ops;
mod power_cut;
mod sim_disk;
mod upgrade;
mod web;

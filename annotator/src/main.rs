//! `annotator`: the task server where crowd workers describe neurons. Its commands (serve,
//! import, export, migrate) arrive with the annotator issues; for now it prints its usage.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "annotator",
    version,
    about = "A Mechanical-Turk-style task server for describing the neurons of vision networks",
    long_about = "A Mechanical-Turk-style task server for describing the neurons of vision \
                  networks. Commands (serve, import, export, migrate) are not built yet."
)]
struct Cli {}

fn main() {
    Cli::parse();
    println!("annotator: no commands yet; see `annotator --help`");
}

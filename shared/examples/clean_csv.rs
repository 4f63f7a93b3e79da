//! Cleans the `summary` column of a CSV and prints `raw -> cleaned` for every description the
//! cleaning changed beyond lowercasing: a quick way to review the rules on real crowd text.
//!
//!     cargo run -p milan-shared --example clean_csv -- FILE.csv

use milan_shared::cleaning::clean;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: clean_csv FILE.csv (with a summary column)")?;
    let mut reader = csv::Reader::from_path(&path)?;
    let column = reader
        .headers()?
        .iter()
        .position(|h| h == "summary")
        .ok_or_else(|| format!("{path}: no summary column"))?;
    let (mut total, mut changed) = (0, 0);
    for record in reader.records() {
        let raw = record?[column].to_owned();
        let cleaned = clean(&raw);
        total += 1;
        if cleaned != raw.trim().to_lowercase() {
            changed += 1;
            println!("{raw:?} -> {cleaned:?}");
        }
    }
    println!("{changed} of {total} changed beyond lowercasing");
    Ok(())
}

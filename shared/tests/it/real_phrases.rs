//! Cleaning and tokenization on real crowd descriptions: 4,128 phrases that Mechanical Turk
//! workers wrote for AlexNet units (Zhou et al. 2015; see the fixture's README for the licence).

use std::path::Path;

use milan_shared::cleaning::clean;
use milan_shared::tokenize::{detokenize, tokenize};

fn phrases() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/zhou2015-alexnet-units/imagenet-alexnet_unit_annotations.csv");
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let phrases: Vec<String> = reader.records().map(|r| r.unwrap()[2].to_owned()).collect();
    assert!(phrases.len() > 4000, "{} phrases", phrases.len());
    phrases
}

#[test]
fn cleaning_real_phrases_is_stable_and_keeps_their_content() {
    for raw in phrases() {
        let cleaned = clean(&raw);
        assert_eq!(clean(&cleaned), cleaned, "not idempotent on {raw:?}");
        assert_eq!(cleaned, cleaned.to_lowercase(), "{raw:?}");
        if raw.chars().any(char::is_alphanumeric) {
            assert!(!cleaned.is_empty(), "{raw:?} cleaned to nothing");
        }
        assert!(
            !cleaned.ends_with('.') && !cleaned.starts_with(' '),
            "{raw:?} -> {cleaned:?}"
        );
    }
}

#[test]
fn tokens_of_real_phrases_join_back_to_the_cleaned_text() {
    let mut mismatches = Vec::new();
    let phrases = phrases();
    for raw in &phrases {
        let cleaned = clean(raw);
        let joined = detokenize(&tokenize(&cleaned));
        if joined != cleaned {
            mismatches.push(format!("{cleaned:?} -> {joined:?}"));
        }
    }
    // Spacing around some punctuation is not recoverable from tokens ("a , b"); it must be rare.
    assert!(
        mismatches.len() * 100 < phrases.len(),
        "{} of {} do not round-trip:\n{}",
        mismatches.len(),
        phrases.len(),
        mismatches.join("\n")
    );
}

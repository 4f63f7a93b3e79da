//! BLEU exactly as sacrebleu 2.x computes it with its defaults.
//!
//! What sacrebleu does, reimplemented: the 13a tokenizer of mteval-v13a; n-gram precisions up to
//! 4 clipped by the maximum count in any reference; the brevity penalty against, per sentence, the
//! reference length closest to the hypothesis length (ties to the shorter); exponential smoothing
//! (each zero-match order gets 1/(2^k * total)); the score as the geometric mean times the penalty.
//! Sentence BLEU uses the effective order, as `sacrebleu.sentence_bleu` does.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

pub const MAX_ORDER: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Smoothing {
    /// Exponential decay (sacrebleu's default).
    Exp,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BleuConfig {
    pub smoothing: Smoothing,
    /// Scale the maximum order down to the longest order the hypotheses have (sentence BLEU).
    pub effective_order: bool,
    /// Apply the 13a tokenizer; off to score pre-tokenised text as it is (`tok:none`).
    pub tokenize_13a: bool,
}

impl Default for BleuConfig {
    fn default() -> Self {
        BleuConfig {
            smoothing: Smoothing::Exp,
            effective_order: false,
            tokenize_13a: true,
        }
    }
}

/// A BLEU score and the statistics behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BleuScore {
    pub score: f64,
    pub correct: [u64; MAX_ORDER],
    pub total: [u64; MAX_ORDER],
    /// Per-order precisions in percent.
    pub precisions: [f64; MAX_ORDER],
    pub bp: f64,
    pub sys_len: u64,
    pub ref_len: u64,
    pub nrefs: usize,
}

impl BleuScore {
    pub fn ratio(&self) -> f64 {
        if self.ref_len == 0 {
            0.0
        } else {
            self.sys_len as f64 / self.ref_len as f64
        }
    }

    /// The line sacrebleu prints: `BLEU = 16.52 42.9/11.1/12.5/12.5 (BP = 1.000 ratio = 1.167
    /// hyp_len = 14 ref_len = 12)`.
    pub fn line(&self) -> String {
        let precisions = self
            .precisions
            .iter()
            .map(|p| format!("{p:.1}"))
            .collect::<Vec<_>>()
            .join("/");
        format!(
            "BLEU = {:.2} {precisions} (BP = {:.3} ratio = {:.3} hyp_len = {} ref_len = {})",
            self.score,
            self.bp,
            self.ratio(),
            self.sys_len,
            self.ref_len
        )
    }
}

/// sacrebleu's signature of the settings, e.g. `nrefs:3|case:mixed|eff:no|tok:13a|smooth:exp|
/// version:2.6.0`; the version names the sacrebleu release whose numbers these are.
pub fn signature(config: &BleuConfig, nrefs: usize) -> String {
    format!(
        "nrefs:{nrefs}|case:mixed|eff:{}|tok:{}|smooth:{}|version:2.6.0",
        if config.effective_order { "yes" } else { "no" },
        if config.tokenize_13a { "13a" } else { "none" },
        match config.smoothing {
            Smoothing::Exp => "exp",
            Smoothing::None => "none",
        }
    )
}

static PUNCT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"([\{-\~\[-` -&\(-\+:-@/])").expect("valid regex"));
static PERIOD_COMMA_AFTER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"([^0-9])([\.,])").expect("valid regex"));
static PERIOD_COMMA_BEFORE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"([\.,])([^0-9])").expect("valid regex"));
static DASH_AFTER_DIGIT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"([0-9])(-)").expect("valid regex"));

/// The 13a tokenizer (mteval-v13a.pl's rules, as sacrebleu's `TokenizerV13a`).
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let line = format!(" {line} ");
    let line = PUNCT.replace_all(&line, " $1 ");
    let line = PERIOD_COMMA_AFTER.replace_all(&line, "$1 $2 ");
    let line = PERIOD_COMMA_BEFORE.replace_all(&line, " $1 $2");
    let line = DASH_AFTER_DIGIT.replace_all(&line, "$1 $2 ");
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn tokens(text: &str, config: &BleuConfig) -> Vec<String> {
    let text = if config.tokenize_13a {
        tokenize_13a(text)
    } else {
        text.to_owned()
    };
    text.split_whitespace().map(str::to_owned).collect()
}

fn ngrams(words: &[String]) -> HashMap<&[String], u64> {
    let mut counts = HashMap::new();
    for n in 1..=MAX_ORDER {
        for gram in words.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

/// Sufficient statistics of one hypothesis against its references.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SentenceStats {
    pub correct: [u64; MAX_ORDER],
    pub total: [u64; MAX_ORDER],
    pub sys_len: u64,
    pub ref_len: u64,
}

impl std::ops::AddAssign for SentenceStats {
    fn add_assign(&mut self, other: Self) {
        for n in 0..MAX_ORDER {
            self.correct[n] += other.correct[n];
            self.total[n] += other.total[n];
        }
        self.sys_len += other.sys_len;
        self.ref_len += other.ref_len;
    }
}

/// Statistics of one hypothesis against its references (empty references are skipped, as
/// sacrebleu skips missing ones).
pub fn sentence_stats<S: AsRef<str>>(hyp: &str, refs: &[S], config: &BleuConfig) -> SentenceStats {
    let hyp = tokens(hyp, config);
    let mut max_ref: HashMap<Vec<String>, u64> = HashMap::new();
    let mut closest: Option<(u64, u64)> = None; // (|diff|, length)
    let hyp_len = hyp.len() as u64;
    for r in refs {
        let r = tokens(r.as_ref(), config);
        let len = r.len() as u64;
        let diff = len.abs_diff(hyp_len);
        if closest.is_none_or(|best| (diff, len) < best) {
            closest = Some((diff, len));
        }
        for (gram, count) in ngrams(&r) {
            let entry = max_ref.entry(gram.to_vec()).or_insert(0);
            *entry = (*entry).max(count);
        }
    }
    let mut stats = SentenceStats {
        sys_len: hyp_len,
        ref_len: closest.map_or(0, |(_, len)| len),
        ..SentenceStats::default()
    };
    for (gram, count) in ngrams(&hyp) {
        let n = gram.len() - 1;
        stats.total[n] += count;
        if let Some(max) = max_ref.get(gram) {
            stats.correct[n] += count.min(*max);
        }
    }
    stats
}

fn my_log(x: f64) -> f64 {
    if x == 0.0 { -9_999_999_999.0 } else { x.ln() }
}

/// The score from summed statistics (sacrebleu's `compute_bleu`).
pub fn compute(stats: &SentenceStats, nrefs: usize, config: &BleuConfig) -> BleuScore {
    let (sys_len, ref_len) = (stats.sys_len, stats.ref_len);
    let bp = if sys_len < ref_len {
        if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    let mut precisions = [0.0; MAX_ORDER];
    let mut result = BleuScore {
        score: 0.0,
        correct: stats.correct,
        total: stats.total,
        precisions,
        bp,
        sys_len,
        ref_len,
        nrefs,
    };
    if stats.correct.iter().all(|&c| c == 0) {
        return result;
    }
    let mut smooth = 1.0;
    let mut eff_order = MAX_ORDER;
    // One index over three parallel arrays, in sacrebleu's order of operations.
    #[allow(clippy::needless_range_loop)]
    for n in 0..MAX_ORDER {
        if stats.total[n] == 0 {
            break;
        }
        if config.effective_order {
            eff_order = n + 1;
        }
        if stats.correct[n] == 0 {
            if config.smoothing == Smoothing::Exp {
                smooth *= 2.0;
                precisions[n] = 100.0 / (smooth * stats.total[n] as f64);
            }
        } else {
            precisions[n] = 100.0 * stats.correct[n] as f64 / stats.total[n] as f64;
        }
    }
    let mean = precisions[..eff_order]
        .iter()
        .map(|&p| my_log(p))
        .sum::<f64>()
        / eff_order as f64;
    result.precisions = precisions;
    result.score = bp * mean.exp();
    result
}

/// Corpus BLEU: `refs[i]` holds the references of `hyps[i]` (one per annotator; sacrebleu calls
/// the transposed lists reference streams).
pub fn corpus_bleu<H: AsRef<str>, R: AsRef<str>>(
    hyps: &[H],
    refs: &[Vec<R>],
    config: &BleuConfig,
) -> BleuScore {
    assert_eq!(
        hyps.len(),
        refs.len(),
        "one list of references per hypothesis"
    );
    let mut total = SentenceStats::default();
    for (h, r) in hyps.iter().zip(refs) {
        total += sentence_stats(h.as_ref(), r, config);
    }
    let nrefs = refs.iter().map(Vec::len).max().unwrap_or(0);
    compute(&total, nrefs, config)
}

/// Sentence BLEU as `sacrebleu.sentence_bleu` computes it (exp smoothing, effective order).
pub fn sentence_bleu<R: AsRef<str>>(hyp: &str, refs: &[R]) -> BleuScore {
    let config = BleuConfig {
        effective_order: true,
        ..BleuConfig::default()
    };
    compute(&sentence_stats(hyp, refs, &config), refs.len(), &config)
}

/// Mean pairwise sentence BLEU (0-100) of several descriptions of one thing (the annotator's review, the catalog's units), and of each description
/// against the others (symmetric: BLEU both ways, averaged).
pub fn agreement(texts: &[String]) -> (f64, Vec<f64>) {
    let n = texts.len();
    if n < 2 {
        return (100.0, vec![100.0; n]);
    }
    let mut each = vec![0.0; n];
    for i in 0..n {
        let mut sum = 0.0;
        for j in 0..n {
            if i != j {
                let ab = sentence_bleu(&texts[i], &[&texts[j]]).score;
                let ba = sentence_bleu(&texts[j], &[&texts[i]]).score;
                sum += (ab + ba) / 2.0;
            }
        }
        each[i] = sum / (n - 1) as f64;
    }
    (each.iter().sum::<f64>() / n as f64, each)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_13a() {
        for (text, expected) in [
            ("Hello, world.", "Hello , world ."),
            ("3.5 and 1,000", "3.5 and 1,000"),
            (
                "it's a test-case (really)!",
                "it's a test-case ( really ) !",
            ),
            ("1990-1995", "1990 - 1995"),
            ("&quot;quoted&quot; &amp; more", "\" quoted \" & more"),
            ("a<skipped>b", "ab"),
        ] {
            assert_eq!(tokenize_13a(text), expected, "{text:?}");
        }
    }

    #[test]
    fn perfect_and_empty() {
        let refs = [vec!["the cat sat on the mat"]];
        let s = corpus_bleu(&["the cat sat on the mat"], &refs, &BleuConfig::default());
        assert!((s.score - 100.0).abs() < 1e-12);
        let s = corpus_bleu(&["dog"], &refs, &BleuConfig::default());
        assert_eq!(s.score, 0.0);
        assert!(s.bp < 1.0);
    }

    #[test]
    fn closest_reference_length_ties_to_the_shorter() {
        let stats = sentence_stats("a b c", &["a b", "a b c d"], &BleuConfig::default());
        assert_eq!(stats.ref_len, 2);
    }
}

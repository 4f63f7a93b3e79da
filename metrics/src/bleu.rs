//! BLEU exactly as sacrebleu 2.x computes it with its defaults.
//!
//! What sacrebleu does, reimplemented: the 13a tokenizer of mteval-v13a; n-gram precisions up to
//! 4 clipped by the maximum count in any reference; the brevity penalty against, per sentence, the
//! reference length closest to the hypothesis length (ties to the shorter); exponential smoothing
//! (each zero-match order gets 1/(2^k * total)); the score as the geometric mean times the penalty.
//! Sentence BLEU uses the effective order, as `sacrebleu.sentence_bleu` does.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use rustc_hash::FxHasher;
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

/// Characters mteval-v13a pads with spaces: `{|}~`, `[\]^_` and the backtick, space to `&`,
/// `(` to `+`, `:` to `@`, and `/` (its first rule, `([\{-\~\[-\` -\&\(-\+\:-\@\/])`).
fn is_padded(c: u8) -> bool {
    matches!(c, b'{'..=b'~' | b'['..=b'`' | b' '..=b'&' | b'('..=b'+' | b':'..=b'@' | b'/')
}

/// The 13a tokenizer (mteval-v13a.pl's rules, as sacrebleu's `TokenizerV13a`), as one string.
pub fn tokenize_13a(line: &str) -> String {
    let mut scratch = Tokenizer13a::default();
    scratch.tokenize(line).join(" ")
}

/// The 13a tokenizer with its buffers, reused from line to line. Each rule of mteval-v13a (a
/// regex substitution in sacrebleu) is one pass over the bytes, matching as the regex does:
/// leftmost first, never overlapping. Bytes, not characters, give the same text: every rule
/// names ASCII characters only, the bytes of a multi-byte character are never one of them and are
/// never split by an inserted space. Written out rather than run as four regexes because scoring
/// tokenizes every reference of every unit; `tests::the_passes_are_the_regexes` checks it
/// against sacrebleu's regexes on generated text, non-ASCII included.
#[derive(Debug, Default)]
pub struct Tokenizer13a {
    a: Vec<u8>,
    b: Vec<u8>,
}

impl Tokenizer13a {
    /// The tokens of `line`, valid until the next call.
    pub fn tokenize(&mut self, line: &str) -> Vec<&str> {
        self.pass(line).split_whitespace().collect()
    }

    /// Appends the tokens of `line` to `out`, each after one space.
    pub fn tokenize_into(&mut self, line: &str, out: &mut String) {
        for word in self.pass(line).split_whitespace() {
            out.push(' ');
            out.push_str(word);
        }
    }

    /// The four rules; the text they leave.
    fn pass(&mut self, line: &str) -> &str {
        let line = unescape(line);
        let (a, b) = (&mut self.a, &mut self.b);
        // ' ' + line + ' ', punctuation padded: ([{-~[-` -&(-+:-@/]) -> " $1 ".
        a.clear();
        a.push(b' ');
        for &c in line.as_bytes() {
            if is_padded(c) {
                a.extend([b' ', c, b' ']);
            } else {
                a.push(c);
            }
        }
        a.push(b' ');
        let digit = |c: u8| c.is_ascii_digit();
        let period_comma = |c: u8| c == b'.' || c == b',';
        // The next three rules change nothing in a text without their characters (most
        // descriptions), so they are skipped there; each leaves its result in `a`.
        if a.iter().any(|&c| period_comma(c)) {
            // ([^0-9])([\.,]) -> "$1 $2 "
            substitute(
                a,
                b,
                |x, y| !digit(x) && period_comma(y),
                |x, y| [x, b' ', y, b' '],
            );
            // ([\.,])([^0-9]) -> " $1 $2"
            substitute(
                b,
                a,
                |x, y| period_comma(x) && !digit(y),
                |x, y| [b' ', x, b' ', y],
            );
        }
        if a.contains(&b'-') {
            // ([0-9])(-) -> "$1 $2 "
            substitute(
                a,
                b,
                |x, y| digit(x) && y == b'-',
                |x, y| [x, b' ', y, b' '],
            );
            std::mem::swap(a, b);
        }
        std::str::from_utf8(a).expect("spaces are only inserted between characters")
    }
}

/// mteval-v13a's first steps: `<skipped>` and line breaks out, four XML entities decoded.
fn unescape(line: &str) -> std::borrow::Cow<'_, str> {
    // One scan for the three rare cases before any of their substitutions.
    if !line.bytes().any(|b| matches!(b, b'<' | b'\n' | b'&')) {
        return line.into();
    }
    let mut l = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if l.contains('&') {
        l = l
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    l.into()
}

/// One regex substitution of a two-character pattern: `from` into `to`, each non-overlapping
/// match (leftmost first) of `matches` replaced by `by`.
fn substitute(
    from: &[u8],
    to: &mut Vec<u8>,
    matches: impl Fn(u8, u8) -> bool,
    by: impl Fn(u8, u8) -> [u8; 4],
) {
    to.clear();
    let mut i = 0;
    while i < from.len() {
        if i + 1 < from.len() && matches(from[i], from[i + 1]) {
            to.extend(by(from[i], from[i + 1]));
            i += 2;
        } else {
            to.push(from[i]);
            i += 1;
        }
    }
}

/// An n-gram of a sentence, its words as ids (id + 1, so an unused place is 0) packed 32 bits
/// each: n-grams of different orders never share a key.
type Gram = u128;

fn order(gram: Gram) -> usize {
    (0..MAX_ORDER)
        .filter(|j| (gram >> (32 * j)) as u32 != 0)
        .count()
}

/// The sorted (n-gram, count) pairs of a sentence's word ids, orders 1 to 4, into `out`.
fn count_grams(ids: &[u32], keys: &mut Vec<Gram>, out: &mut Vec<(Gram, u64)>) {
    keys.clear();
    for start in 0..ids.len() {
        let mut key: Gram = 0;
        for (j, &id) in ids[start..].iter().take(MAX_ORDER).enumerate() {
            key |= Gram::from(id + 1) << (32 * j);
            keys.push(key);
        }
    }
    keys.sort_unstable();
    out.clear();
    for &k in keys.iter() {
        match out.last_mut() {
            Some((last, n)) if *last == k => *n += 1,
            _ => out.push((k, 1)),
        }
    }
}

/// Sufficient statistics of one hypothesis against its references (empty references are skipped, as
/// sacrebleu skips missing ones).
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

/// What scoring one sentence after another reuses: the tokenizer's buffers, the words' ids and
/// the n-gram counts.
#[derive(Debug, Default)]
pub struct Scratch {
    tokenizer: Tokenizer13a,
    text: String,
    spans: Vec<(usize, usize)>,
    ids: Vec<u32>,
    keys: Vec<Gram>,
    grams: Vec<(Gram, u64)>,
    refs: Vec<(Gram, u64)>,
    one: Vec<(Gram, u64)>,
}

/// Statistics of one hypothesis against its references (empty references are skipped, as
/// sacrebleu skips missing ones).
pub fn sentence_stats<S: AsRef<str>>(hyp: &str, refs: &[S], config: &BleuConfig) -> SentenceStats {
    sentence_stats_with(&mut Scratch::default(), hyp, refs, config)
}

/// [`sentence_stats`] with buffers kept from sentence to sentence.
pub fn sentence_stats_with<S: AsRef<str>>(
    scratch: &mut Scratch,
    hyp: &str,
    refs: &[S],
    config: &BleuConfig,
) -> SentenceStats {
    let Scratch {
        tokenizer,
        text,
        spans,
        ids,
        keys,
        grams,
        refs: ref_grams,
        one,
    } = scratch;
    // Every text's tokens, each after one space, in one string: the hypothesis, then each
    // reference. Words get ids in order of first sight, shared by them all.
    text.clear();
    spans.clear();
    for t in std::iter::once(hyp).chain(refs.iter().map(AsRef::as_ref)) {
        let start = text.len();
        if config.tokenize_13a {
            tokenizer.tokenize_into(t, text);
        } else {
            for w in t.split_whitespace() {
                text.push(' ');
                text.push_str(w);
            }
        }
        spans.push((start, text.len()));
    }
    let mut vocab: HashMap<&str, u32, BuildHasherDefault<FxHasher>> =
        HashMap::with_capacity_and_hasher(64, BuildHasherDefault::default());
    let mut ids_of = |(start, end): (usize, usize), ids: &mut Vec<u32>| {
        ids.clear();
        for w in text[start..end].split(' ').filter(|w| !w.is_empty()) {
            let next = vocab.len() as u32;
            ids.push(*vocab.entry(w).or_insert(next));
        }
    };
    ids_of(spans[0], ids);
    let hyp_len = ids.len() as u64;
    count_grams(ids, keys, grams);
    // Each reference's counts, then the largest count of each n-gram over the references.
    ref_grams.clear();
    let mut closest: Option<(u64, u64)> = None; // (|diff|, length)
    for &span in &spans[1..] {
        ids_of(span, ids);
        let len = ids.len() as u64;
        let diff = len.abs_diff(hyp_len);
        if closest.is_none_or(|best| (diff, len) < best) {
            closest = Some((diff, len));
        }
        count_grams(ids, keys, one);
        ref_grams.extend_from_slice(one);
    }
    ref_grams.sort_unstable();
    let mut stats = SentenceStats {
        sys_len: hyp_len,
        ref_len: closest.map_or(0, |(_, len)| len),
        ..SentenceStats::default()
    };
    // Both lists sorted by n-gram: one merge, each hypothesis n-gram clipped by the largest
    // count of its reference entries.
    let mut r = 0;
    for &(gram, count) in grams.iter() {
        let n = order(gram) - 1;
        stats.total[n] += count;
        while r < ref_grams.len() && ref_grams[r].0 < gram {
            r += 1;
        }
        let mut max = 0;
        while r < ref_grams.len() && ref_grams[r].0 == gram {
            max = max.max(ref_grams[r].1);
            r += 1;
        }
        stats.correct[n] += count.min(max);
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
    let mut scratch = Scratch::default();
    for (h, r) in hyps.iter().zip(refs) {
        total += sentence_stats_with(&mut scratch, h.as_ref(), r, config);
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

    /// sacrebleu's `TokenizerV13a`, as its four regexes (the oracle of the written-out passes).
    fn tokenize_13a_regex(line: &str) -> String {
        use regex::Regex;
        let line = format!(" {} ", unescape(line));
        let replacements = [" $1 ", "$1 $2 ", " $1 $2", "$1 $2 "];
        static COMPILED: std::sync::LazyLock<Vec<Regex>> = std::sync::LazyLock::new(|| {
            [
                r"([\{-\~\[-` -&\(-\+:-@/])",
                r"([^0-9])([\.,])",
                r"([\.,])([^0-9])",
                r"([0-9])(-)",
            ]
            .iter()
            .map(|p| Regex::new(p).unwrap())
            .collect()
        });
        let mut line = line;
        for (regex, by) in COMPILED.iter().zip(replacements) {
            line = regex.replace_all(&line, by).into_owned();
        }
        line.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn the_passes_are_the_regexes() {
        // Text drawn from the characters the rules turn on (digits, periods, commas, dashes,
        // every padded class, entities, newlines) and others (letters, apostrophes, non-ASCII).
        let pieces = [
            "a",
            "Z",
            "0",
            "7",
            ".",
            ",",
            "-",
            "'",
            " ",
            "  ",
            "\n",
            "-\n",
            "{",
            "~",
            "[",
            "`",
            "!",
            "&",
            "(",
            "+",
            ":",
            "@",
            "/",
            "é",
            "—",
            "中",
            "&amp;",
            "&quot;",
            "&lt;",
            "&gt;",
            "<skipped>",
            "1.5",
            "3,000",
            "1990-1995",
            "e.g.",
            "U.S.",
            "x,.y",
            "9.,",
            ".9",
            ",-",
            "\u{a0}",
            "\u{3000}",
            "é.",
            ".é",
            "9-é",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut scratch = Tokenizer13a::default();
        for _ in 0..20_000 {
            let len = (next() % 12) as usize;
            let text: String = (0..len)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect();
            let ours = scratch.tokenize(&text).join(" ");
            assert_eq!(ours, tokenize_13a_regex(&text), "{text:?}");
            let mut appended = String::from("x");
            scratch.tokenize_into(&text, &mut appended);
            let expected = if ours.is_empty() {
                "x".to_owned()
            } else {
                format!("x {ours}")
            };
            assert_eq!(appended, expected, "{text:?}");
        }
    }

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

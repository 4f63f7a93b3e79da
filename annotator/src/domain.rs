//! The annotator's vocabulary, as types that can only hold valid values: project settings,
//! assignment states, and the rules a description must pass.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch: the one time unit of the database and the engine.
pub type Millis = i64;

pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub const MINUTE_MS: Millis = 60_000;
pub const DAY_MS: Millis = 24 * 60 * MINUTE_MS;

/// What a requester sets for a project (MTurk: a HIT type). A field this does not know is
/// refused by name (a typo must not silently become a default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSettings {
    /// A URL-safe name: lowercase letters, digits, '-' and '_', 1 to 64 of them.
    pub name: String,
    pub title: String,
    pub instructions: String,
    #[serde(default)]
    pub reward_cents: i64,
    #[serde(default = "default_assignments")]
    pub assignments_per_set: i32,
    #[serde(default = "default_lease")]
    pub lease_ms: Millis,
    #[serde(default = "default_auto_approve")]
    pub auto_approve_ms: Millis,
    #[serde(default)]
    pub qualification_required: bool,
    /// Prolific studies only: the completion code participants are sent back with.
    #[serde(default)]
    pub prolific_completion_code: Option<String>,
    /// Put on MTurk: its ExternalQuestion page (`/mturk/<name>`) answers. Off, that page is 404,
    /// so MTurk-style URL parameters cannot open the project.
    #[serde(default)]
    pub mturk: bool,
    /// How many live leases one worker may hold at once in this project (accepting again beyond
    /// it returns a live one).
    #[serde(default = "default_max_live")]
    pub max_live_per_worker: i32,
    /// The largest single bonus, in cents.
    #[serde(default = "default_max_bonus")]
    pub max_bonus_cents: i64,
    /// Anyone may read the project's catalog (`/catalog/<name>/`); off, only the requester.
    #[serde(default)]
    pub catalog_public: bool,
}

fn default_assignments() -> i32 {
    3
}
fn default_lease() -> Millis {
    30 * MINUTE_MS
}
fn default_auto_approve() -> Millis {
    3 * DAY_MS
}
fn default_max_live() -> i32 {
    1
}
fn default_max_bonus() -> i64 {
    DEFAULT_MAX_BONUS_CENTS
}

/// Bounds on money and durations, so that no sum and no `now + duration` can overflow anywhere
/// (the database holds the same bounds: `migrations/*/000004_identity`).
pub const MAX_REWARD_CENTS: i64 = 100_000;
/// The largest single payment of any kind: $10,000.
pub const MAX_BONUS_CENTS: i64 = 1_000_000;
pub const DEFAULT_MAX_BONUS_CENTS: i64 = 2_000;
pub const MAX_LEASE_MS: Millis = 7 * DAY_MS;
/// MTurk's own limit on the auto-approval delay.
pub const MAX_AUTO_APPROVE_MS: Millis = 30 * DAY_MS;
pub const MAX_LIVE_PER_WORKER: i32 = 100;

pub const DEFAULT_INSTRUCTIONS: &str = "Each image shows, at full brightness, the regions where one \
neuron of a vision network fires most; the rest of the image is dimmed. Write one short phrase \
describing what the highlighted regions have in common (for example \"red circles on the left\" or \
\"vertical stripes\"). Describe the highlighted regions, not the whole images.";

impl ProjectSettings {
    /// Defaults as MILANNOTATIONS was collected: 3 assignments per set, 30-minute leases,
    /// auto-approval after 3 days.
    pub fn new(name: &str, title: &str) -> Self {
        ProjectSettings {
            name: name.to_owned(),
            title: title.to_owned(),
            instructions: DEFAULT_INSTRUCTIONS.to_owned(),
            reward_cents: 0,
            assignments_per_set: default_assignments(),
            lease_ms: default_lease(),
            auto_approve_ms: default_auto_approve(),
            qualification_required: false,
            prolific_completion_code: None,
            mturk: false,
            max_live_per_worker: default_max_live(),
            max_bonus_cents: default_max_bonus(),
            catalog_public: false,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        validate_project_name(&self.name)?;
        if self.title.trim().is_empty() {
            return Err("title: must not be empty".into());
        }
        if !(0..=MAX_REWARD_CENTS).contains(&self.reward_cents) {
            return Err(format!(
                "reward_cents: must be 0 to {MAX_REWARD_CENTS} (${})",
                MAX_REWARD_CENTS / 100
            ));
        }
        if !(1..=20).contains(&self.assignments_per_set) {
            return Err("assignments_per_set: must be 1 to 20".into());
        }
        if !(1000..=MAX_LEASE_MS).contains(&self.lease_ms) {
            return Err(format!(
                "lease_ms: must be 1000 (one second) to {MAX_LEASE_MS} (7 days)"
            ));
        }
        if !(0..=MAX_AUTO_APPROVE_MS).contains(&self.auto_approve_ms) {
            return Err(format!(
                "auto_approve_ms: must be 0 to {MAX_AUTO_APPROVE_MS} (30 days)"
            ));
        }
        if !(1..=MAX_LIVE_PER_WORKER).contains(&self.max_live_per_worker) {
            return Err(format!(
                "max_live_per_worker: must be 1 to {MAX_LIVE_PER_WORKER}"
            ));
        }
        if !(0..=MAX_BONUS_CENTS).contains(&self.max_bonus_cents) {
            return Err(format!(
                "max_bonus_cents: must be 0 to {MAX_BONUS_CENTS} (${})",
                MAX_BONUS_CENTS / 100
            ));
        }
        if let Some(code) = &self.prolific_completion_code
            && (code.is_empty()
                || code.len() > 64
                || !code.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err("prolific_completion_code: use 1 to 64 letters and digits".into());
        }
        Ok(())
    }
}

pub fn validate_project_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "project name {name:?}: use 1 to 64 lowercase letters, digits, '-' or '_'"
        ))
    }
}

/// Where an assignment is in its life. accepted -> submitted -> approved | rejected; returned
/// (the worker gave up) and abandoned (the lease ran out) end an accepted assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Accepted,
    Submitted,
    Approved,
    Rejected,
    Returned,
    Abandoned,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Accepted => "accepted",
            State::Submitted => "submitted",
            State::Approved => "approved",
            State::Rejected => "rejected",
            State::Returned => "returned",
            State::Abandoned => "abandoned",
        }
    }

    /// Whether the assignment holds one of its set's slots.
    pub fn holds_slot(self) -> bool {
        matches!(self, State::Accepted | State::Submitted | State::Approved)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "accepted" => State::Accepted,
            "submitted" => State::Submitted,
            "approved" => State::Approved,
            "rejected" => State::Rejected,
            "returned" => State::Returned,
            "abandoned" => State::Abandoned,
            other => return Err(format!("unknown assignment state {other:?}")),
        })
    }
}

/// The limits a description must keep; the web page's live validation reads the same numbers.
pub const DESCRIPTION_MIN_CHARS: usize = 3;
pub const DESCRIPTION_MAX_CHARS: usize = 500;
pub const DESCRIPTION_MIN_WORDS: usize = 2;
pub const FEEDBACK_MAX_CHARS: usize = 1024;

/// A description that passed every rule: trimmed, 3 to 500 characters of plain text (no control,
/// invisible or text-direction characters, nothing that looks like HTML), two words or more, not
/// the worker's previous description, not copied from the instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

/// Why a character may not appear in a description, if it may not: characters a reader cannot
/// see, or that reorder what is shown (a U+202E makes "gnp.exe" read "exe.png"), would make the
/// stored text differ from what the requester reviews.
pub fn forbidden_char(c: char) -> Option<&'static str> {
    match c {
        '\n' | '\t' => None,
        '\u{061C}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}' => Some("a character that changes the direction of the text"),
        '\u{00AD}'
        | '\u{034F}'
        | '\u{115F}'
        | '\u{1160}'
        | '\u{17B4}'
        | '\u{17B5}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200D}'
        | '\u{2060}'..='\u{2064}'
        | '\u{3164}'
        | '\u{FEFF}'
        | '\u{FFA0}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E007F}' => Some("an invisible character"),
        '\u{2028}' | '\u{2029}' => Some("a line or paragraph separator"),
        c if c.is_control() => Some("a control character"),
        _ => None,
    }
}

/// The first piece of HTML-looking markup in a text: a tag (`<b>`, `</div>`, `<!--`, `<?xml`) or
/// a character reference (`&amp;`, `&#60;`). A `<` followed by a space or a digit ("a < b",
/// "<3") is plain text.
pub fn markup_in(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied();
        let tag = c == '<'
            && next.is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!' | '?'));
        let reference = c == '&' && {
            let rest: String = chars[i + 1..].iter().take(40).collect();
            let body = rest.split(';').next().unwrap_or("");
            rest.contains(';')
                && !body.is_empty()
                && (body.chars().all(|b| b.is_ascii_alphanumeric())
                    && body.chars().next().is_some_and(|b| b.is_ascii_alphabetic())
                    || body.strip_prefix('#').is_some_and(|n| {
                        let n = n.strip_prefix(['x', 'X']).unwrap_or(n);
                        !n.is_empty() && n.chars().all(|d| d.is_ascii_hexdigit())
                    }))
        };
        if tag || reference {
            let end = chars[i..]
                .iter()
                .position(|&e| e == if tag { '>' } else { ';' })
                .map_or((i + 12).min(chars.len()), |p| (i + p + 1).min(i + 40));
            return Some(chars[i..end].iter().collect());
        }
    }
    None
}

fn normalise(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
        .trim_end_matches(['.', '!', '?'])
        .to_owned()
}

/// A description that passed every check of its own text ([`Description::draft`]); what is left
/// needs the database: that it repeats neither the worker's previous description nor the
/// instructions ([`Draft::finish`]). Split so that the server checks the text before it takes
/// the one writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    text: String,
    normal: String,
}

impl Draft {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The checks against the project's instructions and the worker's previous description.
    pub fn finish(self, instructions: &str, previous: Option<&str>) -> Result<Description, String> {
        let normal = &self.normal;
        if previous.is_some_and(|p| normalise(p) == *normal) {
            return Err("description repeats your previous one: describe this set".into());
        }
        let instructions = normalise(instructions);
        if *normal == instructions || (normal.len() >= 20 && instructions.contains(normal.as_str()))
        {
            return Err("description copies the instructions: describe the regions".into());
        }
        Ok(Description(self.text))
    }
}

impl Description {
    pub fn parse(raw: &str, instructions: &str, previous: Option<&str>) -> Result<Self, String> {
        Description::draft(raw)?.finish(instructions, previous)
    }

    /// The checks of the text alone: length, characters, markup, words.
    pub fn draft(raw: &str) -> Result<Draft, String> {
        let text = raw.trim();
        let chars = text.chars().count();
        if chars < DESCRIPTION_MIN_CHARS {
            return Err(format!(
                "description too short: {chars} characters, at least {DESCRIPTION_MIN_CHARS}"
            ));
        }
        if chars > DESCRIPTION_MAX_CHARS {
            return Err(format!(
                "description too long: {chars} characters, at most {DESCRIPTION_MAX_CHARS}"
            ));
        }
        if let Some((c, why)) = text.chars().find_map(|c| forbidden_char(c).map(|w| (c, w))) {
            return Err(format!(
                "description contains {why} (U+{:04X}): delete it, or type the description again \
                 instead of pasting it",
                u32::from(c)
            ));
        }
        if let Some(markup) = markup_in(text) {
            return Err(format!(
                "descriptions are plain text: remove {markup:?} (no HTML tags or codes such as &amp;)"
            ));
        }
        let words = text
            .split_whitespace()
            .filter(|w| w.chars().any(char::is_alphanumeric))
            .count();
        if words < DESCRIPTION_MIN_WORDS {
            return Err(format!(
                "description needs at least {DESCRIPTION_MIN_WORDS} words, found {words}"
            ));
        }
        Ok(Draft {
            text: text.to_owned(),
            normal: normalise(text),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Worker ids that MTurk and Prolific entry make (`mturk:<WorkerId>`, `prolific:<PID>`): they come
/// from URL parameters, so no password, code or requester-minted session may claim them.
pub const URL_NAMESPACES: [&str; 2] = ["mturk:", "prolific:"];

/// Whether a worker id belongs to MTurk's or Prolific's namespace (of its canonical spelling:
/// `MTURK:A1` and full-width `ｍturk:A1` are MTurk's too).
pub fn is_url_identity(worker: &str) -> bool {
    let worker = canonical_worker_id(worker).unwrap_or_else(|_| worker.to_owned());
    URL_NAMESPACES.iter().any(|ns| worker.starts_with(ns))
}

/// The longest worker id, in bytes.
pub const WORKER_ID_MAX_BYTES: usize = 128;

/// The one spelling of a worker id, so that ids which read the same are the same worker (the
/// crowd guarantee counts distinct workers): Unicode NFKC (full-width and other compatibility
/// forms become their plain letters), the platform namespaces in lowercase, MTurk's ids in
/// uppercase and Prolific's in lowercase as the platforms issue them. Refused, naming the code
/// point: what a description refuses (invisible, direction and control characters), variation
/// selectors, and any space. Local ids keep their case: a requester may mean `Ann` and `ann`.
pub fn canonical_worker_id(raw: &str) -> Result<String, String> {
    use unicode_normalization::UnicodeNormalization;
    let check = |text: &str| -> Result<(), String> {
        for c in text.chars() {
            let why = forbidden_char(c)
                .or_else(|| c.is_whitespace().then_some("a space"))
                .or_else(|| {
                    matches!(c, '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}')
                        .then_some("an invisible character")
                });
            if let Some(why) = why {
                return Err(format!(
                    "worker id {raw:?}: {why} (U+{:04X}) may not appear in a worker id",
                    c as u32
                ));
            }
        }
        Ok(())
    };
    check(raw)?;
    let id: String = raw.nfkc().collect();
    check(&id)?;
    if id.is_empty() || id.len() > WORKER_ID_MAX_BYTES {
        return Err(format!(
            "worker id {raw:?}: use 1 to {WORKER_ID_MAX_BYTES} bytes of visible characters"
        ));
    }
    let lower = id.to_lowercase();
    for (ns, upper) in [(URL_NAMESPACES[0], true), (URL_NAMESPACES[1], false)] {
        if lower.starts_with(ns) && id.is_char_boundary(ns.len()) {
            let rest = &id[ns.len()..];
            let rest = if upper {
                rest.to_uppercase()
            } else {
                rest.to_lowercase()
            };
            return Ok(format!("{ns}{rest}"));
        }
    }
    Ok(id)
}

/// A time as MTurk's CSV writes it: `Thu Nov 26 00:58:16 UTC 2026`.
pub fn mturk_time(ms: i64) -> String {
    let t = civil_utc(ms);
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[t.weekday as usize],
        MONTHS[(t.month - 1) as usize],
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.year
    )
}

/// A time in UTC, by calendar fields (`weekday`: 0 is Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    pub millisecond: i64,
    pub weekday: i64,
}

/// Unix milliseconds as a UTC calendar time. Hand-written (Howard Hinnant's days-to-civil
/// algorithm) to avoid a date crate for two formats.
pub fn civil_utc(ms: i64) -> Civil {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    Civil {
        year: yoe + era * 400 + i64::from(month <= 2),
        month,
        day: doy - (153 * mp + 2) / 5 + 1,
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        second: rem % 60,
        millisecond: ms.rem_euclid(1000),
        weekday: (days + 4).rem_euclid(7), // 1970-01-01 was a Thursday
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn worker_ids_that_read_the_same_are_one_id() {
        for (raw, canonical) in [
            ("w1", "w1"),
            ("Ann", "Ann"),
            ("\u{FF4D}turk:A1B2", "mturk:A1B2"),
            ("MTURK:a1b2", "mturk:A1B2"),
            ("Prolific:5F3A", "prolific:5f3a"),
            ("\u{FF57}\u{FF11}", "w1"),
        ] {
            assert_eq!(canonical_worker_id(raw).unwrap(), canonical, "{raw:?}");
        }
        for (raw, code) in [
            ("w1\u{200B}", "U+200B"),
            ("\u{202E}evil1w", "U+202E"),
            ("w1\u{2060}", "U+2060"),
            ("w1\u{E0041}", "U+E0041"),
            ("w1\u{FE0F}", "U+FE0F"),
            ("w 1", "U+0020"),
            ("w\u{00A0}1", "U+00A0"),
            ("w1\u{7}", "U+0007"),
        ] {
            let e = canonical_worker_id(raw).unwrap_err();
            assert!(e.contains(code), "{raw:?}: {e}");
        }
        assert!(canonical_worker_id("").is_err());
        assert!(canonical_worker_id(&"x".repeat(129)).is_err());
        assert!(is_url_identity("\u{FF4D}turk:A1B2") && is_url_identity("PROLIFIC:x"));
    }

    #[test]
    fn mturk_times() {
        assert_eq!(mturk_time(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(
            mturk_time(1_795_654_696_000),
            "Thu Nov 26 00:58:16 UTC 2026"
        );
        assert_eq!(mturk_time(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
    }

    use super::*;

    #[test]
    fn description_rules() {
        let ok = |s: &str| Description::parse(s, DEFAULT_INSTRUCTIONS, Some("blue squares"));
        assert_eq!(ok("  red circles  ").unwrap().as_str(), "red circles");
        for (text, expected) in [
            ("", "too short"),
            ("ab", "too short"),
            ("dogs", "at least 2 words"),
            ("dogs !!", "at least 2 words"),
            (&"a ".repeat(300), "too long"),
            ("Blue  squares.", "repeats your previous one"),
            ("red\u{0}circles here", "a control character"),
            ("red circles\u{202E}gnp", "direction of the text (U+202E)"),
            ("red\u{200B} circles", "an invisible character (U+200B)"),
            ("red <b>circles</b>", "plain text: remove \"<b>\""),
            ("red circles &amp; squares", "plain text: remove \"&amp;\""),
            ("a < b and <3 hearts", ""),
            ("salt & pepper; tasty", ""),
            ("vertical stripes", ""),
            (
                "write one short phrase describing what the highlighted regions have in common",
                "copies the instructions",
            ),
        ] {
            match ok(text) {
                Ok(_) => assert!(expected.is_empty(), "{text:?} passed"),
                Err(e) => assert!(
                    !expected.is_empty() && e.contains(expected),
                    "{text:?}: {e}"
                ),
            }
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Text with the characters that matter here mixed in: letters, spaces, markup signs,
        /// controls, invisible and direction characters.
        fn text() -> impl Strategy<Value = String> {
            let c = prop_oneof![
                6 => proptest::char::range('a', 'z'),
                3 => Just(' '),
                1 => prop::sample::select(vec!['<', '>', '&', ';', '#', '/', '!', '?', '\n', '\t']),
                1 => prop::sample::select(vec![
                    '\u{0}', '\u{7}', '\u{1B}', '\u{7F}', '\u{85}', '\u{AD}', '\u{200B}', '\u{200D}',
                    '\u{200E}', '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{2028}',
                    '\u{FEFF}', '\u{E0041}',
                ]),
                1 => any::<char>(),
            ];
            prop::collection::vec(c, 0..80).prop_map(|v| v.into_iter().collect())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Whatever comes in, a description that passes is plain visible text within the
            /// limits, and passes again unchanged (the live check and the submit agree).
            #[test]
            fn what_passes_is_plain_text_and_passes_again(raw in text()) {
                if let Ok(d) = Description::parse(&raw, DEFAULT_INSTRUCTIONS, None) {
                    let s = d.as_str();
                    prop_assert_eq!(s, s.trim());
                    let n = s.chars().count();
                    prop_assert!((DESCRIPTION_MIN_CHARS..=DESCRIPTION_MAX_CHARS).contains(&n));
                    prop_assert!(s.chars().all(|c| forbidden_char(c).is_none()), "{:?}", s);
                    prop_assert!(markup_in(s).is_none(), "{:?}", s);
                    prop_assert_eq!(
                        Description::parse(s, DEFAULT_INSTRUCTIONS, None).map(|d| d.as_str().to_owned()),
                        Ok(s.to_owned())
                    );
                }
            }

            /// A forbidden character or a tag anywhere in a good description makes it fail, with
            /// a message that names the character's code point or the markup.
            #[test]
            fn one_bad_character_or_tag_is_enough(
                at in 0usize..20,
                bad in prop::sample::select(vec!['\u{202E}', '\u{200B}', '\u{2066}', '\u{FEFF}', '\u{1}', '\u{E0001}']),
                tag in prop::sample::select(vec!["<b>", "</i>", "<!--", "<?x", "&amp;", "&#60;", "&#x3C;", "<img src=x>"]),
            ) {
                let good = "red circles on a blue background";
                let at = at.min(good.len());
                let with_char = format!("{}{bad}{}", &good[..at], &good[at..]);
                let e = Description::parse(&with_char, "", None).unwrap_err();
                let code = format!("U+{:04X}", u32::from(bad));
                prop_assert!(e.contains(&code), "{} should name {}", e, code);
                let with_tag = format!("{}{tag}{}", &good[..at], &good[at..]);
                let e = Description::parse(&with_tag, "", None).unwrap_err();
                prop_assert!(e.contains("plain text"), "{}", e);
            }
        }
    }

    #[test]
    fn project_settings_are_checked() {
        let mut s = ProjectSettings::new("milan-demo", "Describe neurons");
        assert!(s.validate().is_ok());
        assert_eq!((s.assignments_per_set, s.lease_ms), (3, 30 * MINUTE_MS));
        s.name = "Bad Name".into();
        assert!(s.validate().unwrap_err().contains("project name"));
        s.name = "ok".into();
        s.assignments_per_set = 0;
        assert!(s.validate().is_err());
    }
}

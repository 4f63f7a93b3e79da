//! The qualification test, as MILAN ran it: multiple-choice questions over exemplar sets of neurons
//! outside the project ("pick the best description"), graded here, with a pass mark, a retry delay
//! and a time limit. A project that requires it refuses accept-next to workers who have not passed
//! (the check is in the engine's accept).
//!
//! The requester writes the test as TOML (see `docs/qualification.md`); each question names an
//! exemplar set already imported into another project, so its images are the stored ones.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::db::queries::{self as q, QualificationRow};
use crate::db::{Database, Db};
use crate::domain::Millis;
use crate::engine::{EngineError, Result, worker_in};
use crate::import::StoredExemplar;

pub const DEFAULT_RETRY_DELAY_S: i64 = 120;
pub const DEFAULT_TIME_LIMIT_S: i64 = 30 * 60;
pub const MAX_QUESTIONS: usize = 50;
const MAX_CHOICES: usize = 8;
const MAX_SOURCE_BYTES: usize = 64 * 1024;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TestSpec {
    /// Correct answers needed to pass; default: all of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pass_mark: Option<i64>,
    #[serde(default = "default_retry")]
    retry_delay_s: i64,
    #[serde(default = "default_limit")]
    time_limit_s: i64,
    #[serde(default)]
    question: Vec<toml::Spanned<QuestionSpec>>,
}

fn default_retry() -> i64 {
    DEFAULT_RETRY_DELAY_S
}
fn default_limit() -> i64 {
    DEFAULT_TIME_LIMIT_S
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct QuestionSpec {
    /// The project the exemplar set was imported into (not the one being qualified for).
    project: String,
    model: String,
    layer: String,
    unit: i32,
    #[serde(default = "default_prompt")]
    prompt: String,
    choices: Vec<String>,
    /// The text of the right choice.
    answer: String,
}

fn default_prompt() -> String {
    "Which description fits the highlighted regions best?".into()
}

/// A test as the requester's form holds it: the same fields as the TOML, as typed (numbers stay
/// text until the test is built, so a bad one comes back as it was typed, with its error).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TestForm {
    pub pass_mark: String,
    pub retry_delay_s: String,
    pub time_limit_s: String,
    pub questions: Vec<QuestionForm>,
}

/// One question of [`TestForm`]; `choices` one per line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QuestionForm {
    pub project: String,
    pub model: String,
    pub layer: String,
    pub unit: String,
    pub prompt: String,
    pub choices: String,
    pub answer: String,
}

impl QuestionForm {
    pub fn is_blank(&self) -> bool {
        [
            &self.project,
            &self.model,
            &self.layer,
            &self.unit,
            &self.prompt,
            &self.choices,
            &self.answer,
        ]
        .iter()
        .all(|f| f.trim().is_empty())
    }
}

/// What the form's fields must be before a test can be built: the question and field, as the
/// TOML's errors name them.
fn form_error(question: Option<usize>, field: &str, msg: &str) -> EngineError {
    EngineError::Invalid(match question {
        Some(i) => format!("qualification test: question {}, {field}: {msg}", i + 1),
        None => format!("qualification test: {field}: {msg}"),
    })
}

impl TestForm {
    /// The form of a stored test (its TOML), for editing; `None` when the TOML does not parse.
    pub fn of_source(source: &str) -> Option<TestForm> {
        let spec: TestSpec = toml::from_str(source).ok()?;
        Some(TestForm {
            pass_mark: spec.pass_mark.map(|p| p.to_string()).unwrap_or_default(),
            retry_delay_s: spec.retry_delay_s.to_string(),
            time_limit_s: spec.time_limit_s.to_string(),
            questions: spec
                .question
                .into_iter()
                .map(|q| {
                    let q = q.into_inner();
                    QuestionForm {
                        project: q.project,
                        model: q.model,
                        layer: q.layer,
                        unit: q.unit.to_string(),
                        prompt: q.prompt,
                        choices: q.choices.join("\n"),
                        answer: q.answer,
                    }
                })
                .collect(),
        })
    }

    /// The TOML this form stands for (blank questions left out), or an error naming the question
    /// and field of a number that is not one. Everything else is checked by [`Qualifications::set_test`]
    /// on the TOML, as for a file.
    pub fn to_toml(&self) -> Result<String> {
        let number = |q: Option<usize>, field: &str, text: &str| -> Result<Option<i64>> {
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            text.parse::<i64>()
                .map(Some)
                .map_err(|_| form_error(q, field, &format!("{text:?} is not a whole number")))
        };
        let mut question = Vec::new();
        for (i, qf) in self.questions.iter().enumerate() {
            if qf.is_blank() {
                continue;
            }
            let unit = number(Some(i), "unit", &qf.unit)?
                .ok_or_else(|| form_error(Some(i), "unit", "give the unit's number"))?;
            let unit = i32::try_from(unit)
                .map_err(|_| form_error(Some(i), "unit", &format!("{unit} is out of range")))?;
            question.push(toml::Spanned::new(
                0..0,
                QuestionSpec {
                    project: qf.project.trim().to_owned(),
                    model: qf.model.trim().to_owned(),
                    layer: qf.layer.trim().to_owned(),
                    unit,
                    prompt: match qf.prompt.trim() {
                        "" => default_prompt(),
                        p => p.to_owned(),
                    },
                    choices: qf
                        .choices
                        .lines()
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    answer: qf.answer.trim().to_owned(),
                },
            ));
        }
        let spec = TestSpec {
            pass_mark: number(None, "pass mark", &self.pass_mark)?,
            retry_delay_s: number(None, "retry delay", &self.retry_delay_s)?
                .unwrap_or(DEFAULT_RETRY_DELAY_S),
            time_limit_s: number(None, "time limit", &self.time_limit_s)?
                .unwrap_or(DEFAULT_TIME_LIMIT_S),
            question,
        };
        toml::to_string(&spec).map_err(|e| EngineError::Invalid(format!("qualification test: {e}")))
    }
}

/// A question as stored: the exemplar images resolved to content hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    pub prompt: String,
    /// `model/layer/unit` of the exemplar set, for the requester.
    pub neuron: String,
    /// Worker views (masked images) by content hash.
    pub images: Vec<String>,
    pub choices: Vec<String>,
    pub answer: usize,
}

/// A project's test, ready to show.
#[derive(Debug, Clone)]
pub struct Test {
    pub questions: Vec<Question>,
    pub pass_mark: i32,
    pub retry_delay_ms: Millis,
    pub time_limit_ms: Millis,
    pub source: String,
}

/// The values a worker's form gives a test's choices: a keyed hash of (project, worker, attempt,
/// question, choice), so that neither the values nor their order (sorted by them) tell the
/// choice's place in the test, where the right answer may always come first; and so that values
/// noted in one attempt mean nothing in the next.
#[derive(Debug, Clone, Copy)]
pub struct ChoiceKey<'a> {
    auth: &'a crate::auth::Auth,
    project: &'a str,
    worker: &'a str,
    /// When the attempt began ([`Opening::started_at`]).
    attempt: Millis,
}

impl<'a> ChoiceKey<'a> {
    pub fn new(
        auth: &'a crate::auth::Auth,
        project: &'a str,
        worker: &'a str,
        attempt: Millis,
    ) -> Self {
        ChoiceKey {
            auth,
            project,
            worker,
            attempt,
        }
    }

    fn token(&self, question: usize, choice: usize) -> String {
        let full = self.auth.derive(
            "qualification-choice",
            &format!(
                "{}\u{1f}{}\u{1f}{}\u{1f}{question}\u{1f}{choice}",
                self.project, self.worker, self.attempt
            ),
        );
        full[..20].to_owned()
    }

    /// A question's choices in this worker's order: (opaque value, text).
    pub fn shuffled<'c>(&self, question: usize, choices: &'c [String]) -> Vec<(String, &'c str)> {
        let mut order: Vec<(String, usize)> = (0..choices.len())
            .map(|i| (self.token(question, i), i))
            .collect();
        order.sort();
        order
            .into_iter()
            .map(|(token, i)| (token, choices[i].as_str()))
            .collect()
    }

    /// Which of a question's `n` choices the value a form sent stands for (compared in constant
    /// time), if any.
    pub fn chosen(&self, question: usize, n: usize, given: &str) -> Option<usize> {
        (0..n).find(|&c| crate::auth::constant_time_eq(&self.token(question, c), given))
    }
}

/// Where a worker stands with a project's qualification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The project does not require one.
    NotRequired,
    /// Required, but the requester has not uploaded a test yet.
    NoTest,
    Passed,
    /// May take the test now.
    Open,
    /// Failed; may retry from this time.
    RetryAt(Millis),
}

/// A graded attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grade {
    pub correct: i32,
    pub total: i32,
    pub passed: bool,
    /// The answers came after the time limit: recorded as a failed attempt, none counted.
    pub timed_out: bool,
}

/// A worker's view of the test on opening it: where they stand and, when they may take it, the
/// attempt's clock (kept in the database from the first opening; reopening finds the same one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opening {
    pub standing: Standing,
    /// When the open attempt began, if one is open.
    pub started_at: Option<Millis>,
    pub time_limit_ms: Millis,
}

impl Opening {
    /// Milliseconds left of the open attempt.
    pub fn left_ms(&self, now: Millis) -> Option<Millis> {
        self.started_at
            .map(|s| (s + self.time_limit_ms - now).max(0))
    }
}

/// A duration as people read it: "10 s", "2 min", "1 min 30 s", "1 h 5 min".
pub fn duration_text(ms: Millis) -> String {
    let s = (ms.max(0) + 999) / 1000;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s} s"),
        (0, m, 0) => format!("{m} min"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())].matches('\n').count() + 1
}

/// Parses and checks a test; every error names the line and field.
fn parse(source: &str, project_id: i64, c: &mut Db) -> Result<Test> {
    let invalid = |msg: String| EngineError::Invalid(format!("qualification test: {msg}"));
    if source.len() > MAX_SOURCE_BYTES {
        return Err(invalid(format!(
            "{} bytes; at most {MAX_SOURCE_BYTES}",
            source.len()
        )));
    }
    let spec: TestSpec = toml::from_str(source).map_err(|e| {
        let line = e.span().map(|s| line_of(source, s.start));
        match line {
            Some(l) => invalid(format!("line {l}: {}", e.message())),
            None => invalid(e.message().to_owned()),
        }
    })?;
    if spec.question.is_empty() {
        return Err(invalid("no [[question]]: add at least one".into()));
    }
    if spec.question.len() > MAX_QUESTIONS {
        return Err(invalid(format!("at most {MAX_QUESTIONS} questions")));
    }
    let total = spec.question.len() as i64;
    let pass_mark = spec.pass_mark.unwrap_or(total);
    if !(1..=total).contains(&pass_mark) {
        return Err(invalid(format!(
            "pass_mark = {pass_mark}: must be 1 to the number of questions ({total})"
        )));
    }
    if !(0..=7 * 24 * 3600).contains(&spec.retry_delay_s) {
        return Err(invalid("retry_delay_s: 0 to 604800 seconds".into()));
    }
    if !(10..=24 * 3600).contains(&spec.time_limit_s) {
        return Err(invalid("time_limit_s: 10 to 86400 seconds".into()));
    }
    let mut questions = Vec::new();
    for (i, spanned) in spec.question.iter().enumerate() {
        let line = line_of(source, spanned.span().start);
        let at = |field: &str, msg: String| {
            invalid(format!("question {} (line {line}), {field}: {msg}", i + 1))
        };
        let qs = spanned.get_ref();
        let source_project = q::project_by_name(c, &qs.project)?.ok_or_else(|| {
            at(
                "project",
                format!(
                    "no project named {:?}; import its exemplar sets first",
                    qs.project
                ),
            )
        })?;
        if source_project.id == project_id {
            return Err(at(
                "project",
                "must be another project: qualification neurons come from outside the project"
                    .into(),
            ));
        }
        let set = q::set_by_key(c, source_project.id, &qs.model, &qs.layer, qs.unit)?.ok_or_else(
            || {
                at(
                    "unit",
                    format!(
                        "project {:?} has no exemplar set {}/{}/{}",
                        qs.project, qs.model, qs.layer, qs.unit
                    ),
                )
            },
        )?;
        let exemplars = StoredExemplar::of_set(&set)?;
        if exemplars.is_empty() {
            return Err(at("unit", "that set has no images".into()));
        }
        if !(2..=MAX_CHOICES).contains(&qs.choices.len()) {
            return Err(at("choices", format!("give 2 to {MAX_CHOICES}")));
        }
        for (k, choice) in qs.choices.iter().enumerate() {
            if choice.trim().is_empty() || choice.chars().count() > 200 {
                return Err(at(
                    "choices",
                    format!("choice {} must be 1 to 200 characters", k + 1),
                ));
            }
            if qs.choices[..k].contains(choice) {
                return Err(at("choices", format!("{choice:?} appears twice")));
            }
        }
        let answer = qs
            .choices
            .iter()
            .position(|c| c == &qs.answer)
            .ok_or_else(|| {
                at(
                    "answer",
                    format!("{:?} is not one of the choices", qs.answer),
                )
            })?;
        if qs.prompt.trim().is_empty() || qs.prompt.chars().count() > 300 {
            return Err(at("prompt", "1 to 300 characters".into()));
        }
        questions.push(Question {
            prompt: qs.prompt.clone(),
            neuron: format!("{}/{}/{}", qs.model, qs.layer, qs.unit),
            images: exemplars.iter().map(|e| e.view.clone()).collect(),
            choices: qs.choices.clone(),
            answer,
        });
    }
    Ok(Test {
        questions,
        pass_mark: pass_mark as i32,
        retry_delay_ms: spec.retry_delay_s * 1000,
        time_limit_ms: spec.time_limit_s * 1000,
        source: source.to_owned(),
    })
}

fn test_of(row: QualificationRow) -> Result<Test> {
    Ok(Test {
        questions: serde_json::from_str(&row.questions)
            .map_err(|e| EngineError::Invalid(format!("stored qualification: {e}")))?,
        pass_mark: row.pass_mark,
        retry_delay_ms: row.retry_delay_ms,
        time_limit_ms: row.time_limit_ms,
        source: row.source,
    })
}

fn project_in(c: &mut Db, name: &str) -> Result<q::ProjectRow> {
    q::project_by_name(c, name)?
        .ok_or_else(|| EngineError::NotFound(format!("no project named {name:?}")))
}

/// Qualification tests over the database.
#[derive(Debug, Clone)]
pub struct Qualifications {
    db: Database,
}

impl Qualifications {
    pub fn new(db: Database) -> Self {
        Qualifications { db }
    }

    /// Checks the TOML and makes it the project's test (replacing any earlier one), in one
    /// transaction. Earlier passes stay valid.
    pub fn set_test(&self, project: &str, source: &str, now: Millis) -> Result<Test> {
        self.db.write(|c| {
            let project = project_in(c, project)?;
            let test = parse(source, project.id, c)?;
            q::replace_qualification(
                c,
                &QualificationRow {
                    project_id: project.id,
                    source: test.source.clone(),
                    questions: serde_json::to_string(&test.questions).expect("questions serialise"),
                    pass_mark: test.pass_mark,
                    retry_delay_ms: test.retry_delay_ms,
                    time_limit_ms: test.time_limit_ms,
                    updated_at: now,
                },
            )?;
            q::log(
                c,
                &q::NewEvent {
                    at: now,
                    kind: "qualification_set",
                    project_id: Some(project.id),
                    detail:
                        json!({ "questions": test.questions.len(), "pass_mark": test.pass_mark })
                            .to_string(),
                    ..q::NewEvent::default()
                },
            )?;
            Ok(test)
        })
    }

    pub fn test(&self, project: &str) -> Result<Option<Test>> {
        self.db.read(|c| {
            let project = project_in(c, project)?;
            q::qualification_of(c, project.id)?.map(test_of).transpose()
        })
    }

    pub fn standing(&self, project: &str, worker: &str, now: Millis) -> Result<Standing> {
        self.db.read(|c| {
            let project = project_in(c, project)?;
            if !project.qualification_required {
                return Ok(Standing::NotRequired);
            }
            let Some(test) = q::qualification_of(c, project.id)? else {
                return Ok(Standing::NoTest);
            };
            let Some(w) = q::worker_by_external(c, worker)? else {
                return Ok(Standing::Open);
            };
            standing_in(c, project.id, w.id, test.retry_delay_ms, now)
        })
    }

    /// Opens the test for a worker: on the first opening (or the first after a finished
    /// attempt) the attempt's clock starts now, in the database; reopening finds the same
    /// attempt. An attempt whose time ran out unanswered counts as failed (at its deadline), so
    /// the retry delay applies as if it had been answered wrong.
    pub fn open(&self, project: &str, worker: &str, now: Millis) -> Result<Opening> {
        self.db.write(|c| {
            let (project, row, w) = test_taker(c, project, worker, now)?;
            let limit = row.time_limit_ms;
            let closed = |standing| Opening {
                standing,
                started_at: None,
                time_limit_ms: limit,
            };
            if let Some(started) = q::opening_of(c, project.id, w.id)? {
                if now <= started + limit {
                    return Ok(Opening {
                        standing: Standing::Open,
                        started_at: Some(started),
                        time_limit_ms: limit,
                    });
                }
                time_out(c, project.id, w.id, &row, started)?;
            }
            match standing_in(c, project.id, w.id, row.retry_delay_ms, now)? {
                Standing::Open => {
                    q::open_attempt(c, project.id, w.id, now)?;
                    Ok(Opening {
                        standing: Standing::Open,
                        started_at: Some(now),
                        time_limit_ms: limit,
                    })
                }
                other => Ok(closed(other)),
            }
        })
    }

    /// The worker's open attempt, if any (read only: what a submitted form is checked against).
    pub fn opening(&self, project: &str, worker: &str) -> Result<Option<Millis>> {
        self.db.read(|c| {
            let project = project_in(c, project)?;
            let Some(w) = q::worker_by_external(c, worker)? else {
                return Ok(None);
            };
            Ok(q::opening_of(c, project.id, w.id)?)
        })
    }

    /// Grades the worker's open attempt, which began at `attempt` (the form's choice values were
    /// made for it). `answers[i]` is the index of the choice picked for question i, if any. The
    /// clock is the database's: answers after the time limit are recorded as a failed attempt.
    pub fn grade(
        &self,
        project: &str,
        worker: &str,
        attempt: Millis,
        answers: &[Option<usize>],
        now: Millis,
    ) -> Result<Grade> {
        self.db.write(|c| {
            let (project, row, w) = test_taker(c, project, worker, now)?;
            match standing_in(c, project.id, w.id, row.retry_delay_ms, now)? {
                Standing::Passed => {
                    return Err(EngineError::Conflict("you already passed this test".into()));
                }
                Standing::RetryAt(at) => {
                    return Err(EngineError::Conflict(format!(
                        "you can retry the test in {}",
                        duration_text(at - now)
                    )));
                }
                _ => {}
            }
            let opened = q::opening_of(c, project.id, w.id)?;
            if opened != Some(attempt) {
                return Err(EngineError::Conflict(
                    "this test form is not your open attempt (it was graded, or replaced by a \
                     newer one); open the test again"
                        .into(),
                ));
            }
            let test = test_of(row.clone())?;
            let total = test.questions.len() as i32;
            if now > attempt + row.time_limit_ms {
                time_out(c, project.id, w.id, &row, attempt)?;
                return Ok(Grade {
                    correct: 0,
                    total,
                    passed: false,
                    timed_out: true,
                });
            }
            if answers.len() != test.questions.len() {
                return Err(EngineError::Invalid(format!(
                    "answer all {} questions",
                    test.questions.len()
                )));
            }
            let correct = test
                .questions
                .iter()
                .zip(answers)
                .filter(|(q, a)| **a == Some(q.answer))
                .count() as i32;
            let grade = Grade {
                correct,
                total,
                passed: correct >= test.pass_mark,
                timed_out: false,
            };
            q::close_attempt(c, project.id, w.id)?;
            record_attempt(
                c,
                project.id,
                w.id,
                &grade,
                &serde_json::to_string(answers).expect("answers serialise"),
                now,
            )?;
            Ok(grade)
        })
    }
}

/// The project, its test and the worker taking it (made on first sight).
fn test_taker(
    c: &mut Db,
    project: &str,
    worker: &str,
    now: Millis,
) -> Result<(q::ProjectRow, QualificationRow, q::WorkerRow)> {
    let project = project_in(c, project)?;
    let row = q::qualification_of(c, project.id)?
        .ok_or_else(|| EngineError::NotFound("this project has no qualification test".into()))?;
    let w = worker_in(c, worker, now)?;
    Ok((project, row, w))
}

/// Closes an attempt whose time ran out, as a failed attempt at its deadline.
fn time_out(
    c: &mut Db,
    project_id: i64,
    worker_id: i64,
    row: &QualificationRow,
    started: Millis,
) -> Result<()> {
    let total = serde_json::from_str::<Vec<Question>>(&row.questions)
        .map(|q| q.len() as i32)
        .unwrap_or(1)
        .max(1);
    q::close_attempt(c, project_id, worker_id)?;
    let grade = Grade {
        correct: 0,
        total,
        passed: false,
        timed_out: true,
    };
    record_attempt(
        c,
        project_id,
        worker_id,
        &grade,
        "null",
        started + row.time_limit_ms,
    )
}

/// Stores a graded attempt (`answers`: the chosen indices as JSON, `null` when none came).
fn record_attempt(
    c: &mut Db,
    project_id: i64,
    worker_id: i64,
    g: &Grade,
    answers: &str,
    at: Millis,
) -> Result<()> {
    q::insert_attempt(
        c,
        project_id,
        worker_id,
        (g.correct, g.total),
        g.passed,
        answers,
        at,
    )?;
    q::log(
        c,
        &q::NewEvent {
            at,
            kind: "qualification_attempt",
            project_id: Some(project_id),
            worker_id: Some(worker_id),
            detail: json!({ "correct": g.correct, "total": g.total, "passed": g.passed, "timed_out": g.timed_out })
                .to_string(),
            ..q::NewEvent::default()
        },
    )?;
    Ok(())
}

fn standing_in(
    c: &mut Db,
    project_id: i64,
    worker_id: i64,
    retry_delay_ms: Millis,
    now: Millis,
) -> Result<Standing> {
    let attempts = q::attempts_of(c, project_id, worker_id)?;
    if attempts.iter().any(|a| a.passed) {
        return Ok(Standing::Passed);
    }
    Ok(match attempts.last() {
        Some(last) if now < last.created_at + retry_delay_ms => {
            Standing::RetryAt(last.created_at + retry_delay_ms)
        }
        _ => Standing::Open,
    })
}

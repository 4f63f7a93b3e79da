//! The assignment engine's guarantees (docs: ../shared crowd-semantics, ARCHITECTURE.md), each on
//! SQLite and on PostgreSQL.

use crate::common;

use common::{TestDb, on_both};
use diesel::RunQueryDsl;
use milan_annotator::db::queries::{self as q, NewSet};
use milan_annotator::domain::{MINUTE_MS, ProjectSettings};
use milan_annotator::engine::{Bonus, Engine, EngineError, Paid};
use milan_annotator::reports::Reports;

const T0: i64 = 1_800_000_000_000;

/// A project with `sets` sets and `n` assignments per set.
fn project(db: &TestDb, sets: usize, n: i32) -> Engine {
    let engine = Engine::new(db.db.clone());
    let mut settings = ProjectSettings::new("p", "Describe neurons");
    settings.assignments_per_set = n;
    settings.reward_cents = 10;
    settings.auto_approve_ms = 60 * MINUTE_MS;
    settings.mturk = true;
    let project = engine.create_project(&settings, T0).unwrap();
    db.db
        .write(|c| -> Result<(), EngineError> {
            for unit in 0..sets {
                q::insert_set(
                    c,
                    &NewSet {
                        project_id: project.id,
                        model: "alexnet/imagenet",
                        layer: "conv1",
                        unit: unit as i32,
                        exemplars: "[]",
                        created_at: T0,
                    },
                    n,
                )?;
            }
            Ok(())
        })
        .unwrap();
    engine
}

fn accept(engine: &Engine, worker: &str, now: i64) -> Option<(String, i32)> {
    engine
        .accept_next("p", worker, now)
        .unwrap()
        .map(|a| (a.assignment.public_id, a.set.unit))
}

#[test]
fn accept_submit_approve_pays_and_counts() {
    on_both(|db| {
        let engine = project(db, 2, 3);
        let (id, unit) = accept(&engine, "alice", T0).unwrap();
        assert!((0..2).contains(&unit), "{}", db.name);
        let response = engine
            .submit(&id, "alice", "  Red circles. ", None, T0 + 1000)
            .unwrap();
        assert_eq!(response.status, "submitted");
        assert_eq!(response.description, "Red circles.");
        assert_eq!(response.cleaned, "red circles");
        engine.approve(&id, T0 + 2000).unwrap();
        assert_eq!(engine.earnings("alice").unwrap(), (10, 0));
        let progress = Reports::new(db.db.clone()).progress("p").unwrap();
        assert_eq!(
            (
                progress[0].approved,
                progress[0].in_progress,
                progress[0].left
            ),
            (1, 0, 5)
        );
        let kinds: Vec<String> = engine
            .events_of(&id)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["accepted", "submitted", "approved"], "{}", db.name);
    });
}

#[test]
fn sets_fill_evenly_and_never_twice_for_one_worker() {
    on_both(|db| {
        let engine = project(db, 2, 3);
        // Alice takes one set, returns it, and never sees it again.
        let (first, unit) = accept(&engine, "alice", T0).unwrap();
        engine.return_assignment(&first, "alice", T0 + 1).unwrap();
        let (second, other) = accept(&engine, "alice", T0 + 2).unwrap();
        assert_ne!(other, unit, "{}", db.name);
        engine
            .submit(&second, "alice", "red circles", None, T0 + 3)
            .unwrap();
        assert_eq!(
            accept(&engine, "alice", T0 + 3),
            None,
            "alice touched both sets"
        );
        // Bob gets the set with fewer live assignments.
        let (_, bob_unit) = accept(&engine, "bob", T0 + 4).unwrap();
        assert_eq!(bob_unit, unit);
    });
}

#[test]
fn a_set_takes_at_most_n_assignments() {
    on_both(|db| {
        let engine = project(db, 1, 3);
        for w in ["a", "b", "c"] {
            assert!(accept(&engine, w, T0).is_some());
        }
        assert_eq!(
            accept(&engine, "d", T0),
            None,
            "{}: the set is full",
            db.name
        );
    });
}

/// The database itself refuses a fourth live assignment or a second one by the same worker,
/// whatever the engine's code does.
#[test]
fn the_database_enforces_the_limits() {
    on_both(|db| {
        let engine = project(db, 1, 3);
        let (id, _) = accept(&engine, "a", T0).unwrap();
        let mut conn = db.db.conn().unwrap();
        let set_id: i64 = engine.assignment(&id).unwrap().set_id;
        let insert = |conn: &mut milan_annotator::db::Db, worker: &str, slot: i32| {
            let w = match q::worker_by_external(conn, worker).unwrap() {
                Some(w) => w,
                None => q::insert_worker(conn, worker, T0).unwrap(),
            };
            q::insert_assignment(
                conn,
                &q::NewAssignment {
                    public_id: &uuid::Uuid::new_v4().to_string(),
                    set_id,
                    slot,
                    worker_id: w.id,
                    state: "accepted",
                    accepted_at: T0,
                    expires_at: T0 + 1,
                    verified: true,
                },
            )
        };
        assert!(
            insert(&mut conn, "b", 0).is_err(),
            "{}: slot 0 is held",
            db.name
        );
        assert!(
            insert(&mut conn, "a", 1).is_err(),
            "{}: a holds this set",
            db.name
        );
        assert!(
            insert(&mut conn, "b", 3).is_err(),
            "{}: there is no slot 3",
            db.name
        );
        assert!(insert(&mut conn, "b", 1).is_ok());
        assert!(insert(&mut conn, "c", 2).is_ok());
        // Events are append-only.
        let update = diesel::sql_query("UPDATE events SET kind = 'x'").execute(&mut conn);
        assert!(update.is_err(), "{}: events were updated", db.name);
    });
}

#[test]
fn leases_expire_on_time_and_late_submits_are_refused() {
    on_both(|db| {
        let engine = project(db, 1, 1);
        let lease = 30 * MINUTE_MS;
        let (id, _) = accept(&engine, "alice", T0).unwrap();
        assert_eq!(accept(&engine, "bob", T0 + lease - 1), None, "still leased");
        let err = engine
            .submit(&id, "alice", "red circles", None, T0 + lease)
            .unwrap_err();
        assert!(
            matches!(err, EngineError::Conflict(ref m) if m.contains("lease ended")),
            "{err}"
        );
        assert_eq!(engine.sweep(T0 + lease).unwrap(), (1, 0));
        assert_eq!(engine.assignment(&id).unwrap().state, "abandoned");
        assert!(
            accept(&engine, "bob", T0 + lease + 1).is_some(),
            "{}: the slot reopened",
            db.name
        );
    });
}

#[test]
fn submits_are_idempotent() {
    on_both(|db| {
        let engine = project(db, 1, 3);
        let (id, _) = accept(&engine, "alice", T0).unwrap();
        let first = engine
            .submit(&id, "alice", "red circles", Some("k1"), T0 + 1)
            .unwrap();
        let again = engine
            .submit(&id, "alice", "red circles", Some("k1"), T0 + 2)
            .unwrap();
        assert_eq!(first, again, "{}: the same answer", db.name);
        let other_text = engine
            .submit(&id, "alice", "blue squares", None, T0 + 3)
            .unwrap();
        assert_eq!(other_text, first, "the first description stays");
        let err = engine
            .submit(&id, "alice", "blue squares", Some("k1"), T0 + 4)
            .unwrap_err();
        assert!(
            matches!(err, EngineError::Invalid(ref m) if m.contains("Idempotency-Key")),
            "{err}"
        );
        let err = engine
            .submit(&id, "mallory", "red circles", None, T0 + 5)
            .unwrap_err();
        assert!(matches!(err, EngineError::Forbidden(_)), "{err}");
        let descriptions = db
            .db
            .read(|c| -> Result<_, EngineError> { Ok(q::descriptions_after(c, 1, 0, 100, false)?) })
            .unwrap();
        assert_eq!(descriptions.len(), 1, "{}: one description stored", db.name);
    });
}

#[test]
fn rejecting_needs_feedback_and_reopens_the_slot() {
    on_both(|db| {
        let engine = project(db, 1, 1);
        let (id, _) = accept(&engine, "alice", T0).unwrap();
        engine
            .submit(&id, "alice", "some words here", None, T0 + 1)
            .unwrap();
        let err = engine.reject(&id, "   ", T0 + 2).unwrap_err();
        assert!(matches!(err, EngineError::Invalid(_)), "{err}");
        assert_eq!(
            accept(&engine, "bob", T0 + 3),
            None,
            "the slot is held until reviewed"
        );
        engine
            .reject(&id, "Describe the highlighted regions only.", T0 + 4)
            .unwrap();
        let a = engine.assignment(&id).unwrap();
        assert_eq!(a.state, "rejected");
        assert_eq!(
            a.feedback.as_deref(),
            Some("Describe the highlighted regions only.")
        );
        assert_eq!(
            accept(&engine, "alice", T0 + 5),
            None,
            "never the same set twice"
        );
        assert!(
            accept(&engine, "bob", T0 + 6).is_some(),
            "{}: reopened for others",
            db.name
        );
        assert_eq!(
            engine.earnings("alice").unwrap(),
            (0, 0),
            "rejected work is not paid"
        );
    });
}

#[test]
fn submitted_work_is_approved_automatically_after_the_delay() {
    on_both(|db| {
        let engine = project(db, 1, 3);
        let (id, _) = accept(&engine, "alice", T0).unwrap();
        engine
            .submit(&id, "alice", "red circles", None, T0 + 1)
            .unwrap();
        assert_eq!(engine.sweep(T0 + 60 * MINUTE_MS).unwrap(), (0, 0));
        assert_eq!(engine.sweep(T0 + 1 + 60 * MINUTE_MS).unwrap(), (0, 1));
        assert_eq!(engine.assignment(&id).unwrap().state, "approved");
        assert_eq!(engine.earnings("alice").unwrap(), (10, 0), "{}", db.name);
    });
}

#[test]
fn blocked_workers_get_nothing_new_but_finish_what_they_hold() {
    on_both(|db| {
        let engine = project(db, 2, 3);
        let (id, _) = accept(&engine, "alice", T0).unwrap();
        engine
            .block("alice", "copy-pasted answers", T0 + 1)
            .unwrap();
        // Accepting again gives back what she holds (nothing new)...
        let held = engine.accept_next("p", "alice", T0 + 2).unwrap().unwrap();
        assert!(held.resumed && held.assignment.public_id == id);
        engine
            .submit(&id, "alice", "red circles", None, T0 + 3)
            .unwrap();
        // ...and once it is done, nothing more.
        let err = engine.accept_next("p", "alice", T0 + 3).unwrap_err();
        assert!(matches!(err, EngineError::Forbidden(_)), "{err}");
        engine.unblock("alice", T0 + 4).unwrap();
        assert!(accept(&engine, "alice", T0 + 5).is_some(), "{}", db.name);
    });
}

#[test]
fn bonuses_go_to_the_ledger() {
    on_both(|db| {
        let engine = project(db, 1, 3);
        let (id, _) = accept(&engine, "alice", T0).unwrap();
        let bonus = |worker, cents, assignment, key| Bonus {
            worker,
            cents,
            reason: "great descriptions",
            assignment,
            project: Some("p"),
            idempotency_key: key,
        };
        assert_eq!(
            engine
                .bonus(&bonus("alice", 25, Some(&id), "k1"), T0 + 1)
                .unwrap(),
            Paid::Paid
        );
        engine
            .bonus(&bonus("alice", 5, None, "k2"), T0 + 2)
            .unwrap();
        assert_eq!(engine.earnings("alice").unwrap(), (0, 30));
        assert!(engine.bonus(&bonus("alice", 0, None, "k3"), T0).is_err());
        assert!(
            engine.bonus(&bonus("nobody", 5, None, "k4"), T0).is_err(),
            "{}",
            db.name
        );
    });
}

#[test]
fn description_rules_are_enforced_on_submit() {
    on_both(|db| {
        let engine = project(db, 3, 3);
        let (id, _) = accept(&engine, "alice", T0).unwrap();
        for bad in ["", "dogs", &"x ".repeat(300)] {
            let err = engine.submit(&id, "alice", bad, None, T0 + 1).unwrap_err();
            assert!(matches!(err, EngineError::Invalid(_)), "{bad:?}: {err}");
        }
        engine
            .submit(&id, "alice", "red circles", None, T0 + 2)
            .unwrap();
        let (next, _) = accept(&engine, "alice", T0 + 3).unwrap();
        let err = engine
            .submit(&next, "alice", "Red circles", None, T0 + 4)
            .unwrap_err();
        assert!(
            matches!(err, EngineError::Invalid(ref m) if m.contains("previous")),
            "{err}"
        );
        for bad in [
            "<script>alert(1)</script> here",
            "red \u{202E}circles",
            "red\u{200B} circles",
        ] {
            let err = engine
                .submit(&next, "alice", bad, None, T0 + 5)
                .unwrap_err();
            assert!(matches!(err, EngineError::Invalid(_)), "{bad:?}: {err}");
        }
        let text = "salt & \"pepper\" <- arrows";
        let r = engine.submit(&next, "alice", text, None, T0 + 5).unwrap();
        assert_eq!(r.description, text, "{}: stored as data", db.name);
    });
}

#[test]
fn project_names_are_unique_and_checked() {
    on_both(|db| {
        let engine = project(db, 0, 3);
        let err = engine
            .create_project(&ProjectSettings::new("p", "again"), T0)
            .unwrap_err();
        assert!(matches!(err, EngineError::Conflict(_)), "{err}");
        let err = engine
            .create_project(&ProjectSettings::new("Bad Name", "x"), T0)
            .unwrap_err();
        assert!(matches!(err, EngineError::Invalid(_)), "{}: {err}", db.name);
        assert!(matches!(
            engine.project("nope"),
            Err(EngineError::NotFound(_))
        ));
    });
}

/// The descriptions feed follows events, so a cursor never passes work approved later than work
/// written after it, and `status=all` shows rejections to retract.
#[test]
fn the_feed_orders_descriptions_by_when_they_changed() {
    on_both(|db| {
        let engine = project(db, 1, 3);
        let project_id = engine.project("p").unwrap().id;
        let feed = |after: i64, approved_only: bool| {
            db.db
                .read(|c| -> Result<_, EngineError> {
                    Ok(q::descriptions_after(
                        c,
                        project_id,
                        after,
                        100,
                        approved_only,
                    )?)
                })
                .unwrap()
        };
        let (first, _) = accept(&engine, "alice", T0).unwrap();
        engine
            .submit(&first, "alice", "red circles", None, T0 + 1)
            .unwrap();
        let (second, _) = accept(&engine, "bob", T0 + 2).unwrap();
        engine
            .submit(&second, "bob", "blue squares", None, T0 + 3)
            .unwrap();
        engine.approve(&second, T0 + 4).unwrap();
        let page = feed(0, true);
        assert_eq!(page.len(), 1, "{}", db.name);
        assert_eq!(page[0].assignment_public_id, second);
        let cursor = page[0].cursor;
        // Alice's description is older than Bob's, but its approval is newer than the cursor.
        engine.approve(&first, T0 + 5).unwrap();
        let page = feed(cursor, true);
        assert_eq!(page.len(), 1, "{}", db.name);
        assert_eq!(page[0].assignment_public_id, first);
        assert_eq!(page[0].event, "approved");
        assert!(feed(page[0].cursor, true).is_empty());
        // With status=all every change is a line: two submissions, two approvals, a rejection.
        let (third, _) = accept(&engine, "carol", T0 + 6).unwrap();
        engine
            .submit(&third, "carol", "green stars", None, T0 + 7)
            .unwrap();
        engine
            .reject(&third, "not what the regions share", T0 + 8)
            .unwrap();
        let events: Vec<(String, String)> = feed(0, false)
            .into_iter()
            .map(|r| (r.assignment_public_id, r.event))
            .collect();
        let expected = [
            (first.clone(), "submitted"),
            (second.clone(), "submitted"),
            (second.clone(), "approved"),
            (first.clone(), "approved"),
            (third.clone(), "submitted"),
            (third.clone(), "rejected"),
        ]
        .map(|(a, e)| (a, e.to_owned()));
        assert_eq!(events, expected, "{}", db.name);
    });
}

/// The trainer's descriptions: stored all or nothing, scored against the humans once a set is
/// complete, and (per project, off by default) their priorities order accept-next.
#[test]
fn model_descriptions_priorities_and_active_ordering() {
    use milan_annotator::engine::ModelDescription;
    on_both(|db| {
        let engine = project(db, 3, 1);
        let item = |unit: i32, text: &str, priority: Option<f64>| ModelDescription {
            model: "alexnet/imagenet".into(),
            layer: "conv1".into(),
            unit,
            description: Some(text.into()),
            priority,
        };
        // An unknown neuron refuses the whole post, naming the item.
        let err = engine
            .post_model_descriptions(
                "p",
                1,
                "milan-pmi",
                &[item(0, "red circles", Some(1.0)), item(7, "blue", None)],
                T0,
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("descriptions[1]") && err.contains("unit 7"),
            "{err}"
        );
        assert!(
            engine.model_agreement("p").unwrap().is_empty(),
            "{}",
            db.name
        );
        let bad = engine.post_model_descriptions("p", 1, "MILAN PMI", &[], T0);
        assert!(bad.unwrap_err().to_string().contains("system"));

        let posted = engine
            .post_model_descriptions(
                "p",
                1,
                "milan-pmi",
                &[
                    item(0, "red circles", Some(0.1)),
                    item(1, "blue squares", Some(0.9)),
                    item(2, "green stars", Some(0.5)),
                ],
                T0,
            )
            .unwrap();
        assert_eq!(posted, (3, 3));
        // Off by default (accept-next then picks among the least-assigned sets at random).
        assert!(!engine.project("p").unwrap().order_by_priority);
        engine.set_order("p", true, T0 + 1).unwrap();
        assert_eq!(accept(&engine, "w2", T0 + 2).unwrap().1, 1, "{}", db.name);
        assert_eq!(accept(&engine, "w3", T0 + 3).unwrap().1, 2, "{}", db.name);
        let (id, unit) = accept(&engine, "w1", T0 + 4).unwrap();
        assert_eq!(unit, 0, "{}", db.name);

        // Set 0 complete (one description per set here): scored; the others not yet.
        engine
            .submit(&id, "w1", "red circles", None, T0 + 5)
            .unwrap();
        engine.approve(&id, T0 + 6).unwrap();
        let agreement = engine.model_agreement("p").unwrap();
        assert_eq!(agreement.len(), 1, "{}", db.name);
        let a = &agreement[0];
        assert_eq!((a.round, a.sets, a.described), (1, 1, 3));
        assert!((a.bleu.unwrap() - 100.0).abs() < 1e-9, "{a:?}");
        // A repost of the same round replaces it.
        engine
            .post_model_descriptions("p", 1, "milan-pmi", &[item(0, "stripes", None)], T0 + 7)
            .unwrap();
        let a = &engine.model_agreement("p").unwrap()[0];
        assert_eq!((a.sets, a.described), (1, 3));
        assert!(a.bleu.unwrap() < 100.0);
    });
}

/// Active ordering completes the most wanted set before starting another; the default spreads
/// work over the least-assigned sets.
#[test]
fn active_ordering_completes_the_most_wanted_set_first() {
    use milan_annotator::engine::ModelDescription;
    on_both(|db| {
        let engine = project(db, 3, 3);
        let items: Vec<ModelDescription> = [0.2, 0.7, 0.1]
            .iter()
            .enumerate()
            .map(|(unit, p)| ModelDescription {
                model: "alexnet/imagenet".into(),
                layer: "conv1".into(),
                unit: unit as i32,
                description: Some("x".into()),
                priority: Some(*p),
            })
            .collect();
        engine
            .post_model_descriptions("p", 1, "milan-pmi", &items, T0)
            .unwrap();
        let spread: Vec<i32> = ["a", "b", "c"]
            .iter()
            .map(|w| accept(&engine, w, T0).unwrap().1)
            .collect();
        let mut sorted = spread.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2], "{}: off, one each: {spread:?}", db.name);
        engine.set_order("p", true, T0).unwrap();
        let wanted: Vec<i32> = ["d", "e", "f", "g"]
            .iter()
            .map(|w| accept(&engine, w, T0 + 1).unwrap().1)
            .collect();
        // Unit 1 has two slots left, then unit 0 (0.2) before unit 2 (0.1).
        assert_eq!(wanted, [1, 1, 0, 0], "{}", db.name);
    });
}

// ---------------------------------------------------------------- issue 14: identity and money

use milan_annotator::engine::external::{MturkEntry, MturkRecord, ProlificRecord};

/// A worker holds at most the project's cap of live leases; accepting again returns the oldest,
/// also when many accepts of one worker race each other (PostgreSQL runs them at once).
#[test]
fn a_worker_holds_at_most_the_cap_and_accepting_again_is_idempotent() {
    on_both(|db| {
        let engine = project(db, 8, 3);
        let first = engine.accept_next("p", "alice", T0).unwrap().unwrap();
        assert!(!first.resumed);
        for i in 1..5 {
            let again = engine.accept_next("p", "alice", T0 + i).unwrap().unwrap();
            assert!(again.resumed, "{}", db.name);
            assert_eq!(again.assignment.public_id, first.assignment.public_id);
        }
        assert_eq!(engine.live_work("alice", T0 + 5).unwrap().len(), 1);
        // After the lease, a new one.
        let later = engine
            .accept_next("p", "alice", T0 + 30 * MINUTE_MS)
            .unwrap()
            .unwrap();
        assert!(!later.resumed);
        // Sixteen threads accept for bob at once: one lease.
        std::thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| engine.accept_next("p", "bob", T0 + 1).unwrap().unwrap());
            }
        });
        assert_eq!(
            engine.live_work("bob", T0 + 2).unwrap().len(),
            1,
            "{}: one live lease after racing accepts",
            db.name
        );
        // A project may allow more.
        let mut settings = ProjectSettings::new("many", "Three at once");
        settings.max_live_per_worker = 3;
        let project = engine.create_project(&settings, T0).unwrap();
        db.db
            .write(|c| -> Result<(), EngineError> {
                for unit in 0..5 {
                    q::insert_set(
                        c,
                        &NewSet {
                            project_id: project.id,
                            model: "alexnet/imagenet",
                            layer: "conv1",
                            unit,
                            exemplars: "[]",
                            created_at: T0,
                        },
                        3,
                    )?;
                }
                Ok(())
            })
            .unwrap();
        let taken: Vec<_> = (0..5)
            .map(|i| {
                engine
                    .accept_next("many", "carol", T0 + i)
                    .unwrap()
                    .unwrap()
            })
            .collect();
        assert_eq!(taken.iter().filter(|a| !a.resumed).count(), 3);
        assert_eq!(taken[3].assignment.public_id, taken[0].assignment.public_id);
    });
}

/// Durations and money are bounded, so `now + lease` and every sum stay in range on both
/// databases; out-of-range settings are refused by the engine and by the database itself.
#[test]
fn money_and_durations_cannot_overflow() {
    on_both(|db| {
        let engine = project(db, 2, 3);
        let err = engine
            .accept_next("p", "alice", i64::MAX - 1000)
            .unwrap_err();
        assert!(
            matches!(err, EngineError::Invalid(ref m) if m.contains("out of range")),
            "{err}"
        );
        let (id, _) = accept(&engine, "alice", T0).unwrap();
        engine
            .submit(&id, "alice", "red circles", None, T0 + 1)
            .unwrap();
        // The sweeper's `submitted_at + auto_approve_ms <= now` at the end of time.
        assert_eq!(engine.sweep(i64::MAX).unwrap(), (0, 1), "{}", db.name);
        for (field, mut settings) in [
            ("reward_cents", ProjectSettings::new("a", "a")),
            ("lease_ms", ProjectSettings::new("b", "b")),
            ("auto_approve_ms", ProjectSettings::new("c", "c")),
            ("max_bonus_cents", ProjectSettings::new("d", "d")),
            ("max_live_per_worker", ProjectSettings::new("e", "e")),
        ] {
            match field {
                "reward_cents" => settings.reward_cents = i64::MAX,
                "lease_ms" => settings.lease_ms = i64::MAX,
                "auto_approve_ms" => settings.auto_approve_ms = 31 * 24 * 60 * MINUTE_MS,
                "max_bonus_cents" => settings.max_bonus_cents = 1_000_001,
                _ => settings.max_live_per_worker = 0,
            }
            let err = engine.create_project(&settings, T0).unwrap_err();
            assert!(
                matches!(err, EngineError::Invalid(ref m) if m.contains(field)),
                "{err}"
            );
        }
        // The database refuses them too, whatever the code does.
        let mut conn = db.db.conn().unwrap();
        for sql in [
            "UPDATE projects SET lease_ms = 9223372036854775807",
            "UPDATE projects SET reward_cents = 100001",
            "UPDATE projects SET auto_approve_ms = 2592000001",
        ] {
            assert!(
                diesel::sql_query(sql).execute(&mut conn).is_err(),
                "{}: {sql}",
                db.name
            );
        }
        let worker_id = q::worker_by_external(&mut conn, "alice")
            .unwrap()
            .unwrap()
            .id;
        let huge = q::insert_ledger(
            &mut conn,
            &q::NewPayment {
                worker_id,
                assignment_id: None,
                kind: "bonus",
                cents: 1_000_001,
                note: "x",
                created_at: T0,
                idempotency_key: None,
                request_hash: None,
            },
        );
        assert!(huge.is_err(), "{}: a payment over $10,000", db.name);
        assert_eq!(q::sum_cents([i64::MAX, i64::MAX]), i64::MAX);
    });
}

/// The same idempotency key pays once, also when two requests race; the project's maximum
/// bounds each bonus.
#[test]
fn a_bonus_key_pays_once_even_when_requests_race() {
    on_both(|db| {
        let engine = project(db, 1, 3);
        let (id, _) = accept(&engine, "alice", T0).unwrap();
        let bonus = Bonus {
            worker: "alice",
            cents: 40,
            reason: "careful",
            assignment: Some(&id),
            project: None,
            idempotency_key: "race-1",
        };
        let outcomes: Vec<Paid> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| engine.bonus(&bonus, T0 + 1).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            outcomes.iter().filter(|p| **p == Paid::Paid).count(),
            1,
            "{}",
            db.name
        );
        assert_eq!(engine.earnings("alice").unwrap(), (0, 40));
        let too_much = Bonus {
            cents: 2001,
            idempotency_key: "big",
            ..bonus.clone()
        };
        let err = engine.bonus(&too_much, T0).unwrap_err();
        assert!(
            matches!(err, EngineError::Invalid(ref m) if m.contains("at most 2000")),
            "{err}"
        );
        let other_project = Bonus {
            project: Some("nope"),
            idempotency_key: "other",
            ..bonus.clone()
        };
        assert!(engine.bonus(&other_project, T0).is_err());
    });
}

/// A panic inside a write transaction (a bug in a handler) must not leave the database locked:
/// the pool discards the connection, which rolls its transaction back.
#[test]
fn a_panic_inside_a_transaction_leaves_no_lock_behind() {
    on_both(|db| {
        let engine = project(db, 1, 3);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            db.db
                .write(|c| -> Result<(), EngineError> {
                    q::set_priority(c, 1, 5.0)?;
                    panic!("a bug in a handler");
                })
                .unwrap();
        }));
        assert!(result.is_err());
        // Another write to the same row goes through (on SQLite it would wait 30 s for the lock
        // and fail; on PostgreSQL for the row lock, forever).
        let t = std::time::Instant::now();
        db.db
            .write(|c| -> Result<(), EngineError> { Ok(q::set_priority(c, 1, 7.0)?) })
            .unwrap();
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "{}",
            db.name
        );
        assert!(accept(&engine, "alice", T0).is_some());
        let set = db
            .db
            .read(|c| -> Result<_, EngineError> { Ok(q::set_by_id(c, 1)?) })
            .unwrap();
        assert_eq!(
            set.priority, 7.0,
            "{}: the panicking write was rolled back",
            db.name
        );
    });
}

/// Several servers starting at once on one new PostgreSQL database all migrate it without error.
#[test]
fn servers_starting_together_migrate_postgres_once() {
    let admin = common::postgres_admin_url();
    let name = format!("milan_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <diesel::pg::PgConnection as diesel::Connection>::establish(&admin).unwrap();
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    let url = milan_annotator::db::DatabaseUrl::Postgres(format!("{base}/{name}"));
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| s.spawn(|| milan_annotator::db::Database::open(&url).map(|_| ())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
}

fn mturk(assignment: &str, hit: &str, worker: &str) -> MturkEntry {
    MturkEntry {
        project: "p".into(),
        assignment_id: assignment.into(),
        hit_id: hit.into(),
        worker_id: worker.into(),
        submit_to: "https://workersandbox.mturk.com".into(),
    }
}

/// One assignment here per MTurk assignment, one per HIT and worker, no second live HIT while one
/// is held; the work is unverified (never auto-approved) until reconciliation matches it with
/// MTurk's batch results, which flags what MTurk does not know.
#[test]
fn mturk_assignments_bind_once_and_reconcile_with_mturks_records() {
    on_both(|db| {
        let engine = project(db, 4, 3);
        let a1 = engine.mturk_start(&mturk("A1", "H1", "W1"), T0).unwrap();
        assert!(!a1.resumed && !a1.assignment.verified);
        // The same MTurk assignment again: the same work (a reload, a second tab).
        let again = engine
            .mturk_start(&mturk("A1", "H1", "W1"), T0 + 1)
            .unwrap();
        assert_eq!(again.assignment.public_id, a1.assignment.public_id);
        // Someone else claiming A1, or A1 for another HIT: refused.
        for forged in [mturk("A1", "H1", "W2"), mturk("A1", "H9", "W1")] {
            let err = engine.mturk_start(&forged, T0 + 2).unwrap_err();
            assert!(
                matches!(err, EngineError::Forbidden(_)),
                "{}: {err}",
                db.name
            );
        }
        // A second HIT while A1 is live: refused (two HITs would be paid for one description).
        let err = engine
            .mturk_start(&mturk("A2", "H2", "W1"), T0 + 3)
            .unwrap_err();
        assert!(
            matches!(err, EngineError::Conflict(ref m) if m.contains("another HIT")),
            "{err}"
        );
        let worker = "mturk:W1";
        // Outside its HITs an MTurk identity takes nothing (MTurk pays per HIT).
        let err = engine.accept_next("p", worker, T0 + 3).unwrap_err();
        assert!(matches!(err, EngineError::Forbidden(_)), "{err}");
        engine
            .submit(
                &a1.assignment.public_id,
                worker,
                "red circles on top",
                None,
                T0 + 4,
            )
            .unwrap();
        // Now A2 gets a different set; a second assignment of the same HIT does not.
        let a2 = engine
            .mturk_start(&mturk("A2", "H2", "W1"), T0 + 5)
            .unwrap();
        assert_ne!(a2.set.id, a1.set.id);
        let err = engine
            .mturk_start(&mturk("A3", "H2", "W1"), T0 + 6)
            .unwrap_err();
        assert!(
            matches!(err, EngineError::Conflict(ref m) if m.contains("this HIT")),
            "{err}"
        );
        engine
            .submit(
                &a2.assignment.public_id,
                worker,
                "blue stripes below",
                None,
                T0 + 7,
            )
            .unwrap();
        // A forger's invented assignment, under another name.
        let forged = engine
            .mturk_start(&mturk("FAKE1", "H1", "W3"), T0 + 8)
            .unwrap();
        engine
            .submit(
                &forged.assignment.public_id,
                "mturk:W3",
                "junk words here",
                None,
                T0 + 9,
            )
            .unwrap();
        // Unverified work waits, whatever the delay.
        assert_eq!(
            engine.sweep(T0 + 10 * 24 * 60 * MINUTE_MS).unwrap().1,
            0,
            "{}",
            db.name
        );
        let records = vec![
            MturkRecord {
                line: 2,
                assignment_id: "A1".into(),
                worker_id: "W1".into(),
                hit_id: Some("H1".into()),
                answer: Some("red circles  on top".into()),
            },
            MturkRecord {
                line: 3,
                assignment_id: "A2".into(),
                worker_id: "W1".into(),
                hit_id: Some("H2".into()),
                answer: Some("something else entirely".into()),
            },
            MturkRecord {
                line: 4,
                assignment_id: "A9".into(),
                worker_id: "W8".into(),
                hit_id: Some("H3".into()),
                answer: Some("never done here".into()),
            },
        ];
        let report = engine
            .mturk_reconcile(
                "p",
                &records,
                Some("MTurk has no record of this work"),
                T0 + 11,
            )
            .unwrap();
        assert_eq!(report.verified, 1, "{}: {report:?}", db.name);
        let flagged: Vec<&str> = report.flagged.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(flagged, ["A2", "FAKE1"]);
        assert!(
            report.flagged[1].1.contains("no assignment FAKE1"),
            "{report:?}"
        );
        assert!(report.flagged[0].1.contains("differs"), "{report:?}");
        assert_eq!(report.not_here.len(), 1);
        assert!(report.not_here[0].1.contains("A9"));
        assert_eq!(report.rejected, 2, "flagged submitted work is rejected");
        assert!(
            engine
                .assignment(&a1.assignment.public_id)
                .unwrap()
                .verified
        );
        assert_eq!(
            engine
                .assignment(&forged.assignment.public_id)
                .unwrap()
                .state,
            "rejected"
        );
        // The verified work is approved on time now; running it again changes nothing more.
        assert_eq!(engine.sweep(T0 + 10 * 24 * 60 * MINUTE_MS).unwrap().1, 1);
        let again = engine
            .mturk_reconcile("p", &records, None, T0 + 12)
            .unwrap();
        assert_eq!(
            (again.verified, again.flagged.len(), again.rejected),
            (1, 2, 0)
        );
    });
}

/// A Prolific participant takes part in a study once and completes it once.
#[test]
fn prolific_participants_take_part_once_and_complete_once() {
    on_both(|db| {
        let engine = project(db, 4, 3);
        db.db
            .write(|c| -> Result<(), EngineError> {
                diesel::sql_query("UPDATE projects SET prolific_completion_code = 'C0DE'")
                    .execute(c)?;
                Ok(())
            })
            .unwrap();
        engine.prolific_start("p", "P1", "S1", "X1", T0).unwrap();
        engine
            .prolific_start("p", "P1", "S1", "X1", T0 + 1)
            .unwrap();
        let err = engine
            .prolific_start("p", "P1", "S1", "X2", T0 + 2)
            .unwrap_err();
        assert!(
            matches!(err, EngineError::Conflict(ref m) if m.contains("another Prolific session")),
            "{}: {err}",
            db.name
        );
        let err = engine
            .prolific_start("p", "P2", "S1", "X1", T0 + 3)
            .unwrap_err();
        assert!(matches!(err, EngineError::Forbidden(_)), "{err}");
        let held = engine
            .accept_next("p", "prolific:P1", T0 + 4)
            .unwrap()
            .unwrap();
        assert!(!held.assignment.verified);
        assert_eq!(
            engine
                .prolific_complete("p", "P1", "S1", "X1", T0 + 5)
                .unwrap(),
            "C0DE"
        );
        assert_eq!(
            engine.assignment(&held.assignment.public_id).unwrap().state,
            "returned",
            "what the participant held goes back to the pool"
        );
        let err = engine
            .prolific_complete("p", "P1", "S1", "X1", T0 + 6)
            .unwrap_err();
        assert!(
            matches!(err, EngineError::Conflict(ref m) if m.contains("completed")),
            "{err}"
        );
        let err = engine
            .prolific_start("p", "P1", "S1", "X1", T0 + 7)
            .unwrap_err();
        assert!(
            matches!(err, EngineError::Conflict(ref m) if m.contains("completed")),
            "{err}"
        );
        // Reconciliation: P1 is in Prolific's export; P3 took part here but Prolific says RETURNED.
        engine
            .prolific_start("p", "P3", "S1", "X3", T0 + 8)
            .unwrap();
        let records = vec![
            ProlificRecord {
                line: 2,
                participant_id: "P1".into(),
                session_id: None,
                status: Some("APPROVED".into()),
            },
            ProlificRecord {
                line: 3,
                participant_id: "P3".into(),
                session_id: None,
                status: Some("RETURNED".into()),
            },
            ProlificRecord {
                line: 4,
                participant_id: "P7".into(),
                session_id: None,
                status: None,
            },
        ];
        let report = engine
            .prolific_reconcile("p", "S1", &records, None, T0 + 9)
            .unwrap();
        assert_eq!(report.verified, 1, "{report:?}");
        assert_eq!(report.flagged.len(), 1);
        assert!(report.flagged[0].1.contains("RETURNED"));
        assert_eq!(report.not_here.len(), 1);
        assert!(
            engine
                .assignment(&held.assignment.public_id)
                .unwrap()
                .verified
        );
    });
}

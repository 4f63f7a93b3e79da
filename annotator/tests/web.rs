//! What the web pages rest on, without a browser: the qualification test (TOML errors name line
//! and field; grading, retry delay, gating of accept), sign-in codes and passwords, on both
//! databases; and, through actix's test service, CSRF, rate limits, security headers and MTurk's
//! submit origin. The pages themselves are driven in Chromium by tests/browser.rs.

mod common;

use actix_web::http::StatusCode;
use actix_web::{App, test as at, web};
use common::TestDb;
use milan_annotator::accounts::{Accounts, CODE_VALID_MS};
use milan_annotator::api::{self, AppState};
use milan_annotator::domain::{ProjectSettings, now_ms};
use milan_annotator::engine::{Engine, EngineError};
use milan_annotator::images::ImageStore;
use milan_annotator::import::import;
use milan_annotator::qualification::{Qualifications, Standing};
use milan_annotator::sessions::{Entry, Via};
use milan_annotator::web::{self as pages, Site, WebConfig};

struct Fixture {
    state: AppState,
    layer: String,
    _dir: tempfile::TempDir,
}

/// Projects "pool" (where qualification neurons live) and "gated" (which requires the test).
fn fixture(db: &TestDb) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let corpus = dir.path().join("corpus");
    let config = milan_synth::SynthConfig {
        units_per_layer: 2,
        image_size: 16,
        seed: 0,
        keys: vec!["alexnet/imagenet".parse().unwrap()],
    };
    milan_synth::generate(&corpus, &config, &|| {}).unwrap();
    let engine = Engine::new(db.db.clone());
    let images = ImageStore::new(&data);
    for (name, required) in [("pool", false), ("gated", true)] {
        let mut s = ProjectSettings::new(name, name);
        s.qualification_required = required;
        import(&engine, &images, &s, &corpus, now_ms(), &|| {}).unwrap();
    }
    let auth = milan_annotator::auth::Auth::load(&db.db).unwrap();
    let layer = milan_synth::layers_of(&"alexnet/imagenet".parse().unwrap(), 2)[0]
        .0
        .clone();
    Fixture {
        state: AppState::new(engine, auth, images, data),
        layer,
        _dir: dir,
    }
}

fn test_toml(layer: &str, retry_s: i64) -> String {
    format!(
        r#"pass_mark = 2
retry_delay_s = {retry_s}

[[question]]
project = "pool"
model = "alexnet/imagenet"
layer = "{layer}"
unit = 0
choices = ["a", "b", "c"]
answer = "b"

[[question]]
project = "pool"
model = "alexnet/imagenet"
layer = "{layer}"
unit = 1
choices = ["x", "y"]
answer = "x"
"#
    )
}

#[test]
fn a_qualification_test_gates_accept_until_passed() {
    common::on_both(|db| {
        let f = fixture(db);
        let quals = Qualifications::new(db.db.clone());
        let engine = &f.state.engine;
        let t0 = now_ms();
        // Required but not set up: nobody may work, and the worker is told why.
        assert_eq!(quals.standing("gated", "w1", t0).unwrap(), Standing::NoTest);
        let refused = engine.accept_next("gated", "w1", t0).unwrap_err();
        assert!(
            matches!(&refused, EngineError::Forbidden(m) if m.contains("qualification")),
            "{refused}"
        );

        let test = quals
            .set_test("gated", &test_toml(&f.layer, 120), t0)
            .unwrap();
        assert_eq!((test.questions.len(), test.pass_mark), (2, 2));
        assert_eq!(test.questions[0].images.len(), 15);
        assert_eq!(quals.standing("gated", "w1", t0).unwrap(), Standing::Open);

        // One wrong: not passed; a retry before 120 s is refused, after it is open.
        let g = quals
            .grade("gated", "w1", &[Some(1), Some(1)], t0, t0 + 1000)
            .unwrap();
        assert_eq!((g.correct, g.total, g.passed), (1, 2, false));
        assert_eq!(
            quals.standing("gated", "w1", t0 + 2000).unwrap(),
            Standing::RetryAt(t0 + 1000 + 120_000)
        );
        assert!(matches!(
            quals.grade("gated", "w1", &[Some(1), Some(0)], t0, t0 + 2000),
            Err(EngineError::Conflict(_))
        ));
        assert!(engine.accept_next("gated", "w1", t0 + 2000).is_err());
        // Past the time limit (30 min by default), an attempt is refused.
        let late = t0 + 200_000;
        assert!(matches!(
            quals.grade("gated", "w1", &[Some(1), Some(0)], late - 31 * 60_000, late),
            Err(EngineError::Conflict(m)) if m.contains("time limit")
        ));
        let g = quals
            .grade("gated", "w1", &[Some(1), Some(0)], late - 1000, late)
            .unwrap();
        assert!(g.passed);
        assert_eq!(
            quals.standing("gated", "w1", late).unwrap(),
            Standing::Passed
        );
        assert!(engine.accept_next("gated", "w1", late).unwrap().is_some());
        // Another worker is still gated.
        assert!(engine.accept_next("gated", "w2", late).is_err());
    });
}

#[test]
fn a_bad_qualification_file_names_its_line_and_field_and_changes_nothing() {
    let db = common::sqlite();
    let f = fixture(&db);
    let quals = Qualifications::new(db.db.clone());
    let good = test_toml(&f.layer, 120);
    let cases: Vec<(String, &str)> = vec![
        ("pass_mark = ".into(), "line 1"),
        (
            good.replace("answer = \"b\"", "answer = \"d\""),
            "question 1 (line 4), answer: \"d\" is not one of the choices",
        ),
        (
            good.replace("unit = 1", "unit = 99"),
            "question 2 (line 12), unit: project \"pool\" has no exemplar set",
        ),
        (
            good.replacen("project = \"pool\"", "project = \"gated\"", 1),
            "must be another project",
        ),
        (
            good.replacen("project = \"pool\"", "project = \"nope\"", 1),
            "no project named \"nope\"",
        ),
        (
            good.replace("pass_mark = 2", "pass_mark = 3"),
            "pass_mark = 3: must be 1 to the number of questions (2)",
        ),
        (
            good.replace("choices = [\"x\", \"y\"]", "choices = [\"x\"]"),
            "choices: give 2 to 8",
        ),
        (
            good.replace("choices = [\"x\", \"y\"]", "choices = [\"x\", \"x\"]"),
            "appears twice",
        ),
        (
            good.replace("retry_delay_s = 120", "retry_delay_s = 120\ncolour = 1"),
            "unknown field `colour`",
        ),
        ("retry_delay_s = 5\n".into(), "no [[question]]"),
    ];
    for (source, expected) in cases {
        let err = quals
            .set_test("gated", &source, now_ms())
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "expected {expected:?} in: {err}");
    }
    assert!(quals.test("gated").unwrap().is_none(), "nothing was stored");
}

#[test]
fn codes_sign_in_once_and_passwords_only_with_the_right_text() {
    common::on_both(|db| {
        let accounts = Accounts::new(db.db.clone());
        let t = now_ms();
        let code = accounts.issue_worker_code("ann", t).unwrap();
        assert_eq!(code.len(), 14, "{code}");
        // Typed loosely: lower case, spaces instead of dashes.
        let typed = code.to_lowercase().replace('-', " ");
        assert_eq!(
            accounts.redeem_worker_code(&typed, t).unwrap().as_deref(),
            Some("ann")
        );
        assert_eq!(
            accounts.redeem_worker_code(&code, t).unwrap(),
            None,
            "used once"
        );
        let old = accounts.issue_worker_code("ann", t).unwrap();
        assert_eq!(
            accounts
                .redeem_worker_code(&old, t + CODE_VALID_MS)
                .unwrap(),
            None,
            "expired"
        );
        assert_eq!(
            accounts.redeem_worker_code("NOPE-NOPE-NOPE", t).unwrap(),
            None
        );

        accounts
            .set_worker_password("ann", "a good long password", t)
            .unwrap();
        assert!(
            accounts
                .check_worker_password("ann", "a good long password")
                .unwrap()
        );
        assert!(
            !accounts
                .check_worker_password("ann", "a good long passworD")
                .unwrap()
        );
        assert!(
            !accounts
                .check_worker_password("nobody", "a good long password")
                .unwrap()
        );
        assert!(accounts.set_worker_password("ann", "short", t).is_err());

        accounts
            .set_requester_password("boss", "requester password", t)
            .unwrap();
        assert!(
            accounts
                .check_requester("boss", "requester password")
                .unwrap()
        );
        accounts
            .set_requester_password("boss", "a new password!", t)
            .unwrap();
        assert!(
            !accounts
                .check_requester("boss", "requester password")
                .unwrap()
        );
        assert!(accounts.check_requester("boss", "a new password!").unwrap());
        assert!(
            accounts
                .set_requester_password("bad name", "requester password", t)
                .is_err()
        );
    });
}

macro_rules! site {
    ($f:expr) => {
        at::init_service(
            App::new()
                .app_data(web::Data::new($f.state.clone()))
                .app_data(web::Data::new(Site::new(&$f.state, WebConfig::default())))
                .configure(pages::configure)
                .configure(api::configure),
        )
        .await
    };
}

fn form(path: &str, body: &str) -> at::TestRequest {
    at::TestRequest::post()
        .uri(path)
        .peer_addr("10.0.0.1:5000".parse().unwrap())
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .set_payload(body.to_owned())
}

#[actix_web::test]
async fn forms_need_the_csrf_token_sign_in_is_rate_limited_and_pages_carry_the_policy() {
    let db = common::sqlite();
    let f = fixture(&db);
    let app = site!(f);

    // A page sets the CSRF cookie (HttpOnly, SameSite) and the strict policy.
    let resp = at::call_service(&app, at::TestRequest::get().uri("/signin").to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(part), "{part} missing from {csp}");
    }
    assert_eq!(resp.headers().get("x-frame-options").unwrap(), "DENY");
    let cookie = resp
        .response()
        .cookies()
        .find(|c| c.name() == "milan_csrf")
        .expect("csrf cookie")
        .into_owned();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.same_site(), Some(actix_web::cookie::SameSite::Lax));
    let body = String::from_utf8(at::read_body(resp).await.to_vec()).unwrap();
    let token = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        !body.contains("<script>") && !body.contains("style="),
        "no inline script or style"
    );

    // Without the token, or with another visitor's: refused.
    let resp = at::call_service(&app, form("/signin", "worker=a&password=b").to_request()).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let other = form("/signin", &format!("csrf={token}&worker=a&password=b"))
        .cookie(actix_web::cookie::Cookie::new("milan_csrf", "0".repeat(32)));
    assert_eq!(
        at::call_service(&app, other.to_request()).await.status(),
        StatusCode::FORBIDDEN
    );

    // With it: wrong passwords are 401 until the limit (5 per account and address), then 429
    // with Retry-After.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let req = form(
            "/signin",
            &format!("csrf={token}&worker=ann&password=wrong-password"),
        )
        .cookie(cookie.clone());
        let resp = at::call_service(&app, req.to_request()).await;
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(resp.headers().contains_key("retry-after"));
        }
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses[..5], [401; 5]);
    assert_eq!(statuses[5], 429);
}

#[actix_web::test]
async fn submits_are_rate_limited_per_worker() {
    use milan_annotator::web::session;
    let db = common::sqlite();
    let f = fixture(&db);
    let app = site!(f);
    let (sealed, _) = f
        .state
        .sessions
        .start_worker("ann", Via::Password, &Entry::Local, now_ms())
        .unwrap();
    let csrf_cookie = "ab".repeat(16);
    let token = session::csrf_token(&f.state.auth, &csrf_cookie);
    let mut statuses = Vec::new();
    for _ in 0..31 {
        let req = form(
            "/a/no-such-assignment/submit",
            &format!("csrf={token}&description=red+circles"),
        )
        .cookie(actix_web::cookie::Cookie::new(
            "milan_csrf",
            csrf_cookie.clone(),
        ))
        .cookie(actix_web::cookie::Cookie::new(
            "milan_worker",
            sealed.clone(),
        ));
        statuses.push(
            at::call_service(&app, req.to_request())
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses[..30], [404; 30], "the first 30 reach the engine");
    assert_eq!(statuses[30], 429);
}

/// The requester dashboard shows the trainer's agreement with the humans per layer and round, and
/// its active-ordering switch changes the project (CSRF-guarded like every form).
#[actix_web::test]
async fn the_dashboard_shows_the_trainers_agreement_and_switches_ordering() {
    use milan_annotator::engine::ModelDescription;
    let db = common::sqlite();
    let f = fixture(&db);
    Accounts::new(db.db.clone())
        .set_requester_password("rita", "a long enough password", now_ms())
        .unwrap();
    let engine = &f.state.engine;
    let layer = f.layer.clone();
    let item = |unit: i32, text: &str| ModelDescription {
        model: "alexnet/imagenet".into(),
        layer: layer.clone(),
        unit,
        description: Some(text.into()),
        priority: Some(f64::from(unit)),
    };
    engine
        .post_model_descriptions(
            "pool",
            1,
            "milan-pmi",
            &[item(0, "red circles"), item(1, "blue")],
            now_ms(),
        )
        .unwrap();
    // Three workers complete set 0 with the model's words.
    for w in ["w1", "w2", "w3"] {
        let a = loop {
            let a = engine.accept_next("pool", w, now_ms()).unwrap().unwrap();
            if a.set.unit == 0 && a.set.layer == layer {
                break a;
            }
            engine
                .return_assignment(&a.assignment.public_id, w, now_ms())
                .unwrap();
        };
        let text = format!("red circles {w}");
        engine
            .submit(&a.assignment.public_id, w, &text, None, now_ms())
            .unwrap();
        engine.approve(&a.assignment.public_id, now_ms()).unwrap();
    }
    let app = site!(f);
    let resp = at::call_service(&app, at::TestRequest::get().uri("/r/signin").to_request()).await;
    let csrf_cookie = resp
        .response()
        .cookies()
        .find(|c| c.name() == "milan_csrf")
        .unwrap()
        .into_owned();
    let body = String::from_utf8(at::read_body(resp).await.to_vec()).unwrap();
    let token = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let resp = at::call_service(
        &app,
        form(
            "/r/signin",
            &format!("csrf={token}&username=rita&password=a+long+enough+password"),
        )
        .cookie(csrf_cookie.clone())
        .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let session = resp
        .response()
        .cookies()
        .find(|c| c.name() == "milan_requester")
        .expect("a session cookie")
        .into_owned();
    let page = |app_resp: actix_web::dev::ServiceResponse| async move {
        String::from_utf8(at::read_body(app_resp).await.to_vec()).unwrap()
    };
    let dashboard = page(
        at::call_service(
            &app,
            at::TestRequest::get()
                .uri("/r/p/pool")
                .cookie(session.clone())
                .cookie(csrf_cookie.clone())
                .to_request(),
        )
        .await,
    )
    .await;
    let table = dashboard
        .split("id=\"model-agreement\"")
        .nth(1)
        .expect("the agreement table")
        .split("</table>")
        .next()
        .unwrap();
    assert!(table.contains("round 1"), "{table}");
    assert!(table.contains(&format!("<td>{layer}</td>")), "{table}");
    assert!(
        table.contains("1 of 2 described sets are complete"),
        "{table}"
    );
    assert!(!dashboard.contains("id=\"by-priority\" checked"));

    // The switch: refused without the token, applied with it.
    let resp = at::call_service(
        &app,
        form("/r/p/pool/ordering", "by_priority=1")
            .cookie(session.clone())
            .cookie(csrf_cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(!engine.project("pool").unwrap().order_by_priority);
    let resp = at::call_service(
        &app,
        form("/r/p/pool/ordering", &format!("csrf={token}&by_priority=1"))
            .cookie(session.clone())
            .cookie(csrf_cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(engine.project("pool").unwrap().order_by_priority);
}

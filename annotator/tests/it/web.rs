//! What the web pages rest on, without a browser: the qualification test (TOML errors name line
//! and field; grading, retry delay, gating of accept), sign-in codes and passwords, on both
//! databases; and, through actix's test service, CSRF, rate limits, security headers and MTurk's
//! submit origin. The pages themselves are driven in Chromium by tests/browser.rs.

use crate::common;

use actix_web::http::StatusCode;
use actix_web::{App, test as at, web};
use common::TestDb;
use milan_annotator::accounts::{Accounts, CODE_VALID_MS};
use milan_annotator::domain::{ProjectSettings, now_ms};
use milan_annotator::engine::{Engine, EngineError};
use milan_annotator::http::pages::{self, Site, WebConfig};
use milan_annotator::http::state::AppState;
use milan_annotator::images::ImageStore;
use milan_annotator::import::import;
use milan_annotator::qualification::{Qualifications, Standing};
use milan_annotator::sessions::{Entry, Via};

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

        // Grading needs an attempt opened on the server: a form's own claim of when it began
        // counts for nothing.
        assert!(matches!(
            quals.grade("gated", "w1", t0, &[Some(1), Some(0)], t0 + 10),
            Err(EngineError::Conflict(m)) if m.contains("open the test again")
        ));
        let opened = quals.open("gated", "w1", t0).unwrap();
        assert_eq!(opened.started_at, Some(t0));
        // Reopening is the same attempt: the clock does not restart.
        let again = quals.open("gated", "w1", t0 + 500).unwrap();
        assert_eq!(again.started_at, Some(t0));
        assert_eq!(again.left_ms(t0 + 500), Some(30 * 60_000 - 500));

        // One wrong: not passed; a retry before 120 s is refused, after it is open.
        let g = quals
            .grade("gated", "w1", t0, &[Some(1), Some(1)], t0 + 1000)
            .unwrap();
        assert_eq!((g.correct, g.total, g.passed), (1, 2, false));
        assert_eq!(
            quals.standing("gated", "w1", t0 + 2000).unwrap(),
            Standing::RetryAt(t0 + 1000 + 120_000)
        );
        assert!(matches!(
            quals.grade("gated", "w1", t0, &[Some(1), Some(0)], t0 + 2000),
            Err(EngineError::Conflict(m)) if m.contains("1 min 59 s")
        ));
        let waiting = quals.open("gated", "w1", t0 + 2000).unwrap();
        assert_eq!(
            (waiting.standing, waiting.started_at),
            (Standing::RetryAt(t0 + 121_000), None)
        );
        assert!(engine.accept_next("gated", "w1", t0 + 2000).is_err());

        // Past the time limit (30 min by default), the answers count for nothing: a failed
        // attempt at the deadline, so the retry delay runs from there.
        let second = t0 + 200_000;
        assert_eq!(
            quals.open("gated", "w1", second).unwrap().started_at,
            Some(second)
        );
        let late = second + 30 * 60_000 + 1;
        let g = quals
            .grade("gated", "w1", second, &[Some(1), Some(0)], late)
            .unwrap();
        assert!(g.timed_out && !g.passed, "{g:?}");
        assert_eq!(
            quals.standing("gated", "w1", late).unwrap(),
            Standing::RetryAt(second + 30 * 60_000 + 120_000)
        );
        // An attempt left open past its limit also counts as failed when the test is reopened.
        let third = late + 120_000;
        assert_eq!(
            quals.open("gated", "w1", third).unwrap().started_at,
            Some(third)
        );
        let reopened = third + 30 * 60_000 + 5;
        assert!(matches!(
            quals.open("gated", "w1", reopened).unwrap().standing,
            Standing::RetryAt(_)
        ));
        let fourth = reopened + 120_000;
        let attempt = quals
            .open("gated", "w1", fourth)
            .unwrap()
            .started_at
            .unwrap();
        let late = fourth + 1000;
        let g = quals
            .grade("gated", "w1", attempt, &[Some(1), Some(0)], late)
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
                .configure(milan_annotator::http::configure),
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
    for db in [common::sqlite(), common::postgres()] {
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
        let resp =
            at::call_service(&app, form("/signin", "worker=a&password=b").to_request()).await;
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
}

#[actix_web::test]
async fn submits_are_rate_limited_per_worker() {
    use milan_annotator::http::cookies as session;
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

    // Exports: each link says what it holds; the default MILANNOTATIONS link streams a .tar.gz
    // of the described unit's layer, the other units named in omitted.csv.
    let exports = dashboard
        .split("id=\"exports\"")
        .nth(1)
        .expect("the export list")
        .split("</ul>")
        .next()
        .unwrap();
    for query in [
        "format=milannotations\"",
        "format=milannotations&amp;units=all\"",
        "format=mturk-csv\"",
        "format=jsonl\"",
    ] {
        assert!(
            exports.contains(&format!("/r/p/pool/export?{query}")),
            "{query}: {exports}"
        );
    }
    assert!(exports.contains("omitted.csv"), "{exports}");
    let resp = at::call_service(
        &app,
        at::TestRequest::get()
            .uri("/r/p/pool/export?format=milannotations")
            .cookie(session.clone())
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/gzip"
    );
    let gz = at::read_body(resp).await;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&gz[..]));
    let mut files = std::collections::BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut text).unwrap();
        files.insert(name, text);
    }
    let omitted = &files[&format!("alexnet/imagenet/{layer}/omitted.csv")];
    let omitted = String::from_utf8_lossy(omitted);
    assert!(
        omitted.starts_with("unit\n") && !omitted.contains("\n0\n"),
        "{omitted}"
    );
    assert!(omitted.contains("\n1\n"), "{omitted}");
    let annotations = String::from_utf8_lossy(&files["alexnet/imagenet/annotations.csv"]);
    assert_eq!(
        annotations.lines().count(),
        4,
        "a header and three descriptions: {annotations}"
    );
    // A bad query is refused before anything is written, as a page.
    let refused = get_page(
        &app,
        at::TestRequest::get()
            .uri("/r/p/pool/export?format=milannotations&compression=zip")
            .insert_header(("Accept", "text/html"))
            .cookie(session.clone()),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.body.contains("unknown compression"),
        "{}",
        refused.body
    );
}

// ---------------------------------------------------------------- issue 14: entry paths

use actix_web::cookie::Cookie;
use milan_annotator::origin::{Network, PublicUrl, parse_proxy};

/// A page's body, its cookies (by name) and its headers.
struct Got {
    status: StatusCode,
    body: String,
    cookies: Vec<Cookie<'static>>,
    headers: actix_web::http::header::HeaderMap,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no header {name}"))
            .to_str()
            .unwrap()
    }

    fn cookie(&self, name: &str) -> Option<Cookie<'static>> {
        self.cookies.iter().find(|c| c.name() == name).cloned()
    }

    /// The value of the first hidden field with this name.
    fn field(&self, name: &str) -> String {
        self.body
            .split(&format!("name=\"{name}\" value=\""))
            .nth(1)
            .unwrap_or_else(|| panic!("no field {name} in {}", self.body))
            .split('"')
            .next()
            .unwrap()
            .to_owned()
    }
}

async fn get_page(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    req: at::TestRequest,
) -> Got {
    let resp = at::call_service(app, req.to_request()).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let cookies = resp.response().cookies().map(|c| c.into_owned()).collect();
    // Tera escapes '/' in attribute and text values; compare with the plain text. (Lossy: a
    // catalog's images are read here too.)
    let body = String::from_utf8_lossy(&at::read_body(resp).await).replace("&#x2F;", "/");
    Got {
        status,
        body,
        cookies,
        headers,
    }
}

fn count(db: &TestDb, table: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use diesel::RunQueryDsl;
    diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
        .get_result::<N>(&mut db.db.conn().unwrap())
        .unwrap()
        .n
}

/// Runs one SQL statement on the test database (settings the fixture does not make).
fn sql(db: &TestDb, statement: &str) {
    use diesel::RunQueryDsl;
    diesel::sql_query(statement)
        .execute(&mut db.db.conn().unwrap())
        .unwrap();
}

const SANDBOX: &str = "turkSubmitTo=https%3A%2F%2Fworkersandbox.mturk.com";

#[actix_web::test]
async fn mturk_entry_changes_nothing_until_the_worker_starts_and_binds_one_task_per_hit() {
    for db in [common::sqlite(), common::postgres()] {
        let f = fixture(&db);
        sql(&db, "UPDATE projects SET mturk_enabled = TRUE");
        let app = site!(f);
        let (workers, assignments, sessions) = (
            count(&db, "workers"),
            count(&db, "assignments"),
            count(&db, "sessions"),
        );
        // Five GETs with invented workers (what an <img> on any page can send): no slot, no
        // worker, no session, no session cookie.
        for i in 0..5 {
            let page = get_page(
                &app,
                at::TestRequest::get().uri(&format!(
                    "/mturk/pool?assignmentId=A{i}&hitId=H{i}&workerId=W{i}&{SANDBOX}"
                )),
            )
            .await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            assert!(page.cookie("milan_worker").is_none());
            assert!(page.body.contains("id=\"start\""), "a start button");
            let csp = page
                .headers
                .get("content-security-policy")
                .unwrap()
                .to_str()
                .unwrap();
            assert!(
                csp.contains(
                    "frame-ancestors https://www.mturk.com https://workersandbox.mturk.com"
                ),
                "{csp}"
            );
        }
        assert_eq!(
            (
                count(&db, "workers"),
                count(&db, "assignments"),
                count(&db, "sessions")
            ),
            (workers, assignments, sessions),
            "{}: a GET changed state",
            db.name
        );
        let start_page = |a: &'static str, h: &'static str, w: &'static str| {
            at::TestRequest::get().uri(&format!(
                "/mturk/pool?assignmentId={a}&hitId={h}&workerId={w}&{SANDBOX}"
            ))
        };
        let token = get_page(&app, start_page("A1", "H1", "W1"))
            .await
            .field("start");
        let start = |token: &str| form("/mturk/pool/start", &format!("start={token}"));
        // A form on another site, or from a sandboxed frame, is refused.
        for origin in ["https://evil.example", "null"] {
            let got = get_page(&app, start(&token).insert_header(("Origin", origin))).await;
            assert_eq!(got.status, StatusCode::FORBIDDEN, "{origin}");
        }
        let got = get_page(&app, start("forged.token")).await;
        assert_eq!(got.status, StatusCode::BAD_REQUEST);
        // The worker's own start: the task, with the session in the form and a cookie.
        let task = get_page(
            &app,
            start(&token)
                .insert_header(("Origin", "http://localhost:8080"))
                .insert_header(("Host", "localhost:8080")),
        )
        .await;
        assert_eq!(task.status, StatusCode::OK, "{}", task.body);
        let session = task.field("session");
        assert!(task.cookie("milan_worker").is_some());
        let action = |b: &str| {
            b.split("action=\"/a/")
                .nth(1)
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_owned()
        };
        let id = action(&task.body);
        // Pressing start again (a reload that re-posts): the same task, not a second.
        let again = get_page(&app, start(&token)).await;
        assert_eq!(action(&again.body), id);
        // A reload of the HIT's page, with the cookie: the task again, read only.
        let cookie = task.cookie("milan_worker").unwrap();
        let reload = get_page(&app, start_page("A1", "H1", "W1").cookie(cookie.clone())).await;
        assert_eq!(action(&reload.body), id, "{}", reload.body);
        // The MTurk session cannot take tasks outside its HITs (the project page's accept).
        let outside = get_page(&app, form("/p/pool/accept", &format!("session={session}"))).await;
        assert_eq!(outside.status, StatusCode::FORBIDDEN, "{}", outside.body);
        assert_eq!(count(&db, "assignments"), assignments + 1);
        // The same worker in another HIT while this one is live: refused.
        let t2 = get_page(&app, start_page("A2", "H2", "W1"))
            .await
            .field("start");
        assert_eq!(
            get_page(&app, start(&t2)).await.status,
            StatusCode::CONFLICT
        );
        // Someone else claiming A1: refused.
        let t3 = get_page(&app, start_page("A1", "H1", "W9"))
            .await
            .field("start");
        assert_eq!(
            get_page(&app, start(&t3)).await.status,
            StatusCode::FORBIDDEN,
            "{}",
            db.name
        );
        // Submitting: the finish page posts A1 (from the record, not the visitor) to MTurk.
        let done = get_page(
            &app,
            form(
                &format!("/a/{id}/submit"),
                &format!("session={session}&description=red+circles+in+a+row"),
            ),
        )
        .await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        assert!(
            done.body
                .contains("action=\"https://workersandbox.mturk.com/mturk/externalSubmit\"")
        );
        assert_eq!(done.field("assignmentId"), "A1");
        // Starting A1 again shows the finish page again; no new work, no second payment.
        let again = get_page(&app, start(&token)).await;
        assert_eq!(again.field("assignmentId"), "A1");
        // A2 now gets its own, different set.
        let a2 = get_page(&app, start(&t2)).await;
        assert_eq!(a2.status, StatusCode::OK);
        assert_ne!(action(&a2.body), id);
        assert_eq!(count(&db, "assignments"), assignments + 2, "{}", db.name);
        assert_eq!(count(&db, "mturk_assignments"), 2);
    }
}

#[actix_web::test]
async fn prolific_entry_needs_a_confirming_post_and_completes_once() {
    for db in [common::sqlite(), common::postgres()] {
        let f = fixture(&db);
        {
            use diesel::RunQueryDsl;
            diesel::sql_query("UPDATE projects SET prolific_completion_code = 'C0MPL3TE'")
                .execute(&mut db.db.conn().unwrap())
                .unwrap();
        }
        let app = site!(f);
        let link = |s: &str| {
            at::TestRequest::get().uri(&format!(
                "/prolific/pool?PROLIFIC_PID=P1&STUDY_ID=S1&SESSION_ID={s}"
            ))
        };
        // The link alone signs nobody in: a page with a button, and no cookie at all.
        let page = get_page(&app, link("X1")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.cookies.is_empty(), "{}: {:?}", db.name, page.cookies);
        assert!(page.body.contains("P1"));
        assert_eq!(count(&db, "sessions"), 0);
        let start = page.field("start");
        let confirm = |start: &str| form("/prolific/pool/start", &format!("start={start}"));
        // A form on another site is refused; so is a forged start value.
        for (name, value) in [
            ("Sec-Fetch-Site", "cross-site"),
            ("Origin", "https://evil.example"),
        ] {
            let got = get_page(&app, confirm(&start).insert_header((name, value))).await;
            assert_eq!(got.status, StatusCode::FORBIDDEN, "{name}: {value}");
        }
        assert_eq!(
            get_page(&app, confirm("forged.value")).await.status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(count(&db, "sessions"), 0);
        let signed_in = get_page(&app, confirm(&start)).await;
        assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
        let worker = signed_in
            .cookie("milan_worker")
            .expect("a session cookie after the POST");
        let project = get_page(
            &app,
            at::TestRequest::get().uri("/p/pool").cookie(worker.clone()),
        )
        .await;
        assert!(
            project.body.contains("id=\"prolific-finish\""),
            "{}",
            project.body
        );
        let csrf_cookie = project.cookie("milan_csrf").unwrap();
        let csrf = project.field("csrf");
        // Another session of the same participant and study: refused.
        let other = get_page(&app, link("X2")).await;
        let got = get_page(&app, confirm(&other.field("start"))).await;
        assert_eq!(
            got.status,
            StatusCode::CONFLICT,
            "{}: {}",
            db.name,
            got.body
        );
        // Finishing: once, to Prolific's completion URL; the session ends.
        let finish = || {
            form("/prolific/pool/complete", &format!("csrf={csrf}"))
                .cookie(csrf_cookie.clone())
                .cookie(worker.clone())
        };
        let done = get_page(&app, finish()).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER);
        assert_eq!(
            done.headers.get("location").unwrap(),
            "https://app.prolific.com/submissions/complete?cc=C0MPL3TE"
        );
        let again = get_page(&app, finish()).await;
        assert_eq!(again.status, StatusCode::SEE_OTHER);
        assert!(
            again
                .headers
                .get("location")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("/signin"),
            "the session ended"
        );
        let got = get_page(&app, confirm(&start)).await;
        assert_eq!(got.status, StatusCode::CONFLICT, "completed: {}", got.body);
    }
}

/// Requester sign-in, then sign-out: the old cookie no longer works, even if it was copied.
#[actix_web::test]
async fn signing_out_ends_the_session_on_the_server() {
    for db in [common::sqlite(), common::postgres()] {
        let f = fixture(&db);
        Accounts::new(db.db.clone())
            .set_requester_password("rita", "a long enough password", now_ms())
            .unwrap();
        let app = site!(f);
        let page = get_page(&app, at::TestRequest::get().uri("/r/signin")).await;
        let csrf_cookie = page.cookie("milan_csrf").unwrap();
        let csrf = page.field("csrf");
        let signed = get_page(
            &app,
            form(
                "/r/signin",
                &format!("csrf={csrf}&username=rita&password=a+long+enough+password"),
            )
            .cookie(csrf_cookie.clone()),
        )
        .await;
        let session = signed.cookie("milan_requester").unwrap();
        let dashboard = || at::TestRequest::get().uri("/r").cookie(session.clone());
        assert_eq!(get_page(&app, dashboard()).await.status, StatusCode::OK);
        let out = get_page(
            &app,
            form("/r/signout", &format!("csrf={csrf}"))
                .cookie(csrf_cookie.clone())
                .cookie(session.clone()),
        )
        .await;
        assert_eq!(out.status, StatusCode::SEE_OTHER);
        let after = get_page(&app, dashboard()).await;
        assert_eq!(after.status, StatusCode::SEE_OTHER);
        assert_eq!(after.headers.get("location").unwrap(), "/r/signin");
        // A worker's too.
        let (token, _) = f
            .state
            .sessions
            .start_worker("ann", Via::Password, &Entry::Local, now_ms())
            .unwrap();
        let worker = Cookie::new("milan_worker", token);
        let home = || at::TestRequest::get().uri("/p/pool").cookie(worker.clone());
        assert_eq!(get_page(&app, home()).await.status, StatusCode::OK);
        get_page(
            &app,
            form("/signout", &format!("csrf={csrf}"))
                .cookie(csrf_cookie.clone())
                .cookie(worker.clone()),
        )
        .await;
        assert_eq!(get_page(&app, home()).await.status, StatusCode::SEE_OTHER);
    }
}

/// Sign in as rita; the requester cookie and the CSRF pair.
async fn requester_cookies(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
) -> (Cookie<'static>, Cookie<'static>, String) {
    let page = get_page(app, at::TestRequest::get().uri("/r/signin")).await;
    let csrf_cookie = page.cookie("milan_csrf").unwrap();
    let csrf = page.field("csrf");
    let signed = get_page(
        app,
        form(
            "/r/signin",
            &format!("csrf={csrf}&username=rita&password=a+long+enough+password"),
        )
        .cookie(csrf_cookie.clone()),
    )
    .await;
    (
        signed.cookie("milan_requester").expect("signed in"),
        csrf_cookie,
        csrf,
    )
}

#[actix_web::test]
async fn forwarded_headers_count_only_from_trusted_proxies_and_urls_come_from_configuration() {
    for db in [common::sqlite(), common::postgres()] {
        let mut f = fixture(&db);
        Accounts::new(db.db.clone())
            .set_requester_password("rita", "a long enough password", now_ms())
            .unwrap();
        // Without --public-url: whatever Host or X-Forwarded-* a client sends, the dashboard shows
        // paths only, and no cookie is marked Secure on a client's say-so.
        {
            let app = site!(f);
            let (session, _, _) = requester_cookies(&app).await;
            let dash = get_page(
                &app,
                at::TestRequest::get()
                    .uri("/r/p/pool")
                    .cookie(session)
                    .insert_header(("Host", "attacker.example"))
                    .insert_header(("X-Forwarded-Host", "attacker.example"))
                    .insert_header(("X-Forwarded-Proto", "https")),
            )
            .await;
            assert!(
                !dash.body.contains("attacker.example"),
                "the dashboard trusted a header"
            );
            assert!(dash.body.contains("<code>/mturk/pool</code>"));
            assert!(dash.body.contains("id=\"no-public-url\""));
            let page = get_page(
                &app,
                at::TestRequest::get()
                    .uri("/signin")
                    .insert_header(("X-Forwarded-Proto", "https")),
            )
            .await;
            assert_ne!(page.cookie("milan_csrf").unwrap().secure(), Some(true));
        }
        // With it, behind a trusted proxy.
        f.state = f.state.clone().with_network(Network::new(
            Some(PublicUrl::parse("https://annotator.example.org").unwrap()),
            vec![parse_proxy("10.0.0.0/8").unwrap()],
        ));
        let app = site!(f);
        let (session, _, _) = requester_cookies(&app).await;
        let dash = get_page(
            &app,
            at::TestRequest::get()
                .uri("/r/p/pool")
                .cookie(session)
                .insert_header(("Host", "attacker.example"))
                .insert_header(("X-Forwarded-Host", "attacker.example")),
        )
        .await;
        assert!(
            dash.body
                .contains("<code>https://annotator.example.org/mturk/pool</code>"),
            "{}",
            dash.body
        );
        assert!(!dash.body.contains("attacker.example"));
        let page = get_page(&app, at::TestRequest::get().uri("/signin")).await;
        assert_eq!(page.cookie("milan_csrf").unwrap().secure(), Some(true));
    }
}

#[actix_web::test]
async fn no_page_says_what_a_link_tells_it_to_and_codes_stay_out_of_urls() {
    for db in [common::sqlite(), common::postgres()] {
        let f = fixture(&db);
        Accounts::new(db.db.clone())
            .set_requester_password("rita", "a long enough password", now_ms())
            .unwrap();
        let app = site!(f);
        let (session, csrf_cookie, csrf) = requester_cookies(&app).await;
        let (token, _) = f
            .state
            .sessions
            .start_worker("ann", Via::Password, &Entry::Local, now_ms())
            .unwrap();
        let worker = Cookie::new("milan_worker", token);
        let planted = "Your+account+is+suspended%2C+call+555-0100";
        for (uri, cookie) in [
            (format!("/r/p/pool?notice={planted}"), &session),
            (format!("/r/p/pool/review?notice={planted}"), &session),
            (
                format!("/r/p/pool/workers?notice={planted}&code=ABCD-EFGH-JKMN&code_for=ann"),
                &session,
            ),
            (format!("/p/pool?notice={planted}"), &worker),
        ] {
            let page = get_page(
                &app,
                at::TestRequest::get().uri(&uri).cookie(cookie.clone()),
            )
            .await;
            assert_eq!(page.status, StatusCode::OK, "{uri}");
            assert!(
                !page.body.contains("suspended"),
                "{uri} rendered the query string"
            );
            assert!(!page.body.contains("ABCD-EFGH-JKMN"), "{uri}");
        }
        // A new sign-in code is shown in the answer to the POST, never in a URL.
        let issued = get_page(
            &app,
            form(
                "/r/p/pool/workers",
                &format!("csrf={csrf}&action=code&worker=newbie"),
            )
            .cookie(csrf_cookie.clone())
            .cookie(session.clone()),
        )
        .await;
        assert_eq!(issued.status, StatusCode::OK);
        assert!(issued.headers.get("location").is_none());
        let code = issued
            .body
            .split("id=\"code\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap();
        assert_eq!(code.len(), 14, "{code}");
        assert_eq!(issued.headers.get("cache-control").unwrap(), "no-store");
        // Notices after a form travel in a sealed cookie and show once.
        let blocked = get_page(
            &app,
            form(
                "/r/p/pool/workers",
                &format!("csrf={csrf}&action=block&worker=ann&reason=spam"),
            )
            .cookie(csrf_cookie.clone())
            .cookie(session.clone()),
        )
        .await;
        assert_eq!(
            blocked.headers.get("location").unwrap(),
            "/r/p/pool/workers"
        );
        let flash = blocked.cookie("milan_flash").expect("a notice cookie");
        let shown = get_page(
            &app,
            at::TestRequest::get()
                .uri("/r/p/pool/workers")
                .cookie(session.clone())
                .cookie(flash.clone()),
        )
        .await;
        assert!(shown.body.contains("Blocked ann"));
        assert!(
            shown
                .cookie("milan_flash")
                .is_some_and(|c| c.value().is_empty()),
            "cleared"
        );
        let forged = Cookie::new("milan_flash", format!("{}00", flash.value()));
        let page = get_page(
            &app,
            at::TestRequest::get()
                .uri("/r/p/pool/workers")
                .cookie(session.clone())
                .cookie(forged),
        )
        .await;
        assert!(
            !page.body.contains("Blocked ann"),
            "a forged notice is not shown"
        );
    }
}

/// Guesses from many addresses against one account slow new clients down, and never the owner's
/// own browser (its device cookie from an earlier sign-in).
#[actix_web::test]
async fn a_botnet_cannot_lock_the_owner_out() {
    for db in [common::sqlite(), common::postgres()] {
        let f = fixture(&db);
        Accounts::new(db.db.clone())
            .set_requester_password("rita", "a long enough password", now_ms())
            .unwrap();
        let app = site!(f);
        let page = get_page(&app, at::TestRequest::get().uri("/r/signin")).await;
        let csrf_cookie = page.cookie("milan_csrf").unwrap();
        let csrf = page.field("csrf");
        let attempt = |password: &str, ip: String| {
            form(
                "/r/signin",
                &format!("csrf={csrf}&username=rita&password={password}"),
            )
            .cookie(csrf_cookie.clone())
            .peer_addr(format!("{ip}:4000").parse().unwrap())
        };
        // The owner signs in once from home: the browser gets the device cookie.
        let home = get_page(
            &app,
            attempt("a+long+enough+password", "203.0.113.5".into()),
        )
        .await;
        let device = home
            .cookie("milan_device_requester")
            .expect("a device cookie");
        for i in 0..60 {
            let got = get_page(
                &app,
                attempt(
                    "guess-guess-1",
                    format!("198.51.{}.{}", i / 200, i % 200 + 1),
                ),
            )
            .await;
            assert!(
                [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(&got.status)
            );
        }
        let stranger = get_page(&app, attempt("a+long+enough+password", "192.0.2.77".into())).await;
        assert_eq!(
            stranger.status,
            StatusCode::TOO_MANY_REQUESTS,
            "new clients wait"
        );
        assert!(stranger.headers.contains_key("retry-after"));
        let owner = get_page(
            &app,
            attempt("a+long+enough+password", "192.0.2.78".into()).cookie(device),
        )
        .await;
        assert_eq!(
            owner.status,
            StatusCode::SEE_OTHER,
            "the owner's browser signs in"
        );
    }
}

#[actix_web::test]
async fn the_live_check_applies_the_plain_text_rule() {
    for db in [common::sqlite(), common::postgres()] {
        let f = fixture(&db);
        let app = site!(f);
        let (token, _) = f
            .state
            .sessions
            .start_worker("ann", Via::Password, &Entry::Local, now_ms())
            .unwrap();
        for (text, ok) in [
            ("blue stripes across the middle", true),
            ("red circles\u{202E}tfel", false),
            ("red\u{200B} circles", false),
            ("<b>red</b> circles", false),
            ("red &amp; blue", false),
        ] {
            let resp = at::call_service(
                &app,
                at::TestRequest::post()
                    .uri("/w/check")
                    .cookie(Cookie::new("milan_worker", token.clone()))
                    .set_json(serde_json::json!({ "project": "pool", "description": text }))
                    .to_request(),
            )
            .await;
            let body: serde_json::Value = at::read_body_json(resp).await;
            assert_eq!(body["ok"], ok, "{text:?}: {body}");
        }
    }
}

/// The qualification form's values and order say nothing about where the answer was in the test
/// (here it is always the first choice); grading maps them back on the server.
#[actix_web::test]
async fn qualification_answers_are_not_derivable_from_the_page() {
    for db in [common::sqlite(), common::postgres()] {
        let f = fixture(&db);
        let first_is_right = format!(
            r#"pass_mark = 2

    [[question]]
    project = "pool"
    model = "alexnet/imagenet"
    layer = "{0}"
    unit = 0
    choices = ["right one", "wrong a", "wrong b", "wrong c"]
    answer = "right one"

    [[question]]
    project = "pool"
    model = "alexnet/imagenet"
    layer = "{0}"
    unit = 1
    choices = ["right two", "wrong d", "wrong e", "wrong f"]
    answer = "right two"
    "#,
            f.layer
        );
        Qualifications::new(db.db.clone())
            .set_test("gated", &first_is_right, now_ms())
            .unwrap();
        let app = site!(f);
        let mut firsts = Vec::new();
        for w in ["w1", "w2", "w3", "w4", "w5", "w6"] {
            let (token, _) = f
                .state
                .sessions
                .start_worker(w, Via::Password, &Entry::Local, now_ms())
                .unwrap();
            let worker = Cookie::new("milan_worker", token);
            let page = get_page(
                &app,
                at::TestRequest::get()
                    .uri("/p/gated/qualification")
                    .cookie(worker.clone()),
            )
            .await;
            let choices: Vec<(String, String)> = page
                .body
                .split("name=\"q0\" value=\"")
                .skip(1)
                .map(|c| {
                    let value = c.split('"').next().unwrap().to_owned();
                    let text = c
                        .split("required> ")
                        .nth(1)
                        .unwrap()
                        .split('<')
                        .next()
                        .unwrap()
                        .trim()
                        .to_owned();
                    (value, text)
                })
                .collect();
            assert_eq!(choices.len(), 4);
            for (value, _) in &choices {
                assert!(
                    value.len() == 20 && value.chars().all(|c| c.is_ascii_hexdigit()),
                    "{value}"
                );
            }
            firsts.push(choices[0].1.clone());
            if w == "w1" {
                // Answering with the right choices' values passes; "0" (the answer's index) counts
                // for nothing.
                let value_of = |q: &str, text: &str| {
                    page.body
                        .split(&format!("name=\"{q}\" value=\""))
                        .skip(1)
                        .find(|c| c.contains(&format!("required> {text}")))
                        .unwrap()
                        .split('"')
                        .next()
                        .unwrap()
                        .to_owned()
                };
                let csrf_cookie = page.cookie("milan_csrf").unwrap();
                let body = format!(
                    "csrf={}&attempt={}&q0={}&q1=0",
                    page.field("csrf"),
                    page.field("attempt"),
                    value_of("q0", "right one"),
                );
                let graded = get_page(
                    &app,
                    form("/p/gated/qualification", &body)
                        .cookie(csrf_cookie)
                        .cookie(worker.clone()),
                )
                .await;
                assert!(
                    graded.body.contains("Not passed: 1 of 2"),
                    "{}",
                    graded.body
                );
            }
        }
        assert!(
            firsts.iter().any(|t| t != "right one"),
            "the right answer is not always shown first: {firsts:?}"
        );
    }
}

// ---------------------------------------------------------------- issue 19: what people stumble on

/// [`fixture`] with the requester "rita" (password "a long enough password").
fn fixture_with_rita(db: &TestDb) -> Fixture {
    let f = fixture(db);
    Accounts::new(db.db.clone())
        .set_requester_password("rita", "a long enough password", now_ms())
        .unwrap();
    f
}

#[actix_web::test]
async fn browsers_get_html_error_pages_api_clients_json_and_a_reloaded_submit_goes_home() {
    let db = common::sqlite();
    let f = fixture(&db);
    let app = site!(f);
    // A mistyped page: an HTML page that says so, under the same strict policy.
    let page = get_page(&app, html("/no/such/page")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(page.body.contains("Not Found") && page.body.contains("no page at this address"));
    assert!(
        page.header("content-security-policy")
            .contains("frame-ancestors 'none'")
    );
    // The API stays JSON, even for a browser that asks for HTML.
    for req in [
        at::TestRequest::get().uri("/no/such/page"),
        html("/api/v1/no-such-route"),
    ] {
        let got = get_page(&app, req).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND);
        assert_eq!(got.body, r#"{"error":"no such route"}"#);
    }
    // A reload of a refused submit's page is a GET: back to the tasks, nothing submitted.
    for uri in ["/a/some-id/submit", "/a/some-id/return"] {
        let got = get_page(&app, html(uri)).await;
        assert_eq!(got.status, StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(got.header("location"), "/");
    }
    // The icon browsers ask for.
    let icon = get_page(&app, at::TestRequest::get().uri("/favicon.ico")).await;
    assert_eq!(icon.status, StatusCode::OK);
    assert_eq!(icon.header("content-type"), "image/svg+xml");
    assert!(icon.body.starts_with("<svg"));
    // An engine refusal shown to a browser is a page too (404 for a project that does not exist).
    let page = get_page(&app, html("/p/nope/instructions")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("<h1>Not Found"), "{}", page.body);
}

/// A GET as a browser sends it (asking for HTML).
fn html(uri: &str) -> at::TestRequest {
    at::TestRequest::get()
        .uri(uri)
        .insert_header(("Accept", "text/html,application/xhtml+xml,*/*;q=0.8"))
}

#[actix_web::test]
async fn instructions_say_each_thing_once_and_show_the_requesters_own_words() {
    let db = common::sqlite();
    let f = fixture(&db);
    let mut own = milan_annotator::domain::ProjectSettings::new("own", "Own words");
    own.instructions = "Only units of the last layer here; colours count.".into();
    f.state.engine.create_project(&own, now_ms()).unwrap();
    let app = site!(f);
    let html = |uri: &str| {
        at::TestRequest::get()
            .uri(uri)
            .insert_header(("Accept", "text/html"))
    };
    let standard = get_page(&app, html("/p/pool/instructions")).await;
    assert_eq!(standard.status, StatusCode::OK);
    assert!(
        !standard.body.contains("From the requester"),
        "{}",
        standard.body
    );
    // The default instructions are what the standard text says: not shown twice.
    assert!(!standard.body.contains("Write one short phrase describing"));
    assert_eq!(
        standard.body.matches("red circles").count(),
        1,
        "once, in the example"
    );
    let custom = get_page(&app, html("/p/own/instructions")).await;
    assert!(custom.body.contains(
        "From the requester:</strong> Only units of the last layer here; colours count."
    ));
}

#[actix_web::test]
async fn the_requester_sees_review_apart_from_leases_finds_workers_and_bad_bonuses_are_said_inline()
{
    let db = common::sqlite();
    let f = fixture_with_rita(&db);
    let engine = &f.state.engine;
    // w1 submits two (one approved), w2 submits one and holds a lease, w3 only holds a lease.
    let t = now_ms();
    let take = |w: &str| engine.accept_next("pool", w, t).unwrap().unwrap();
    let a = take("w1");
    engine
        .submit(&a.assignment.public_id, "w1", "red circles", None, t)
        .unwrap();
    engine.approve(&a.assignment.public_id, t).unwrap();
    let a = take("w1");
    engine
        .submit(&a.assignment.public_id, "w1", "blue sky", None, t)
        .unwrap();
    let a = take("w2");
    engine
        .submit(&a.assignment.public_id, "w2", "dog faces", None, t)
        .unwrap();
    take("w2");
    take("w3");
    let progress = f.state.reports.progress("pool").unwrap();
    let sum =
        |g: fn(&milan_annotator::reports::Progress) -> i64| progress.iter().map(g).sum::<i64>();
    assert_eq!(
        (
            sum(|p| p.approved),
            sum(|p| p.awaiting_review),
            sum(|p| p.leased)
        ),
        (1, 2, 2)
    );
    assert_eq!(sum(|p| p.in_progress), 4);

    let app = site!(f);
    let (session, csrf_cookie, csrf) = requester_cookies(&app).await;
    let get = |uri: &str| {
        at::TestRequest::get()
            .uri(uri)
            .cookie(session.clone())
            .cookie(csrf_cookie.clone())
    };
    let dash = get_page(&app, get("/r/p/pool")).await;
    assert_eq!(dash.status, StatusCode::OK);
    assert!(
        dash.body
            .contains(r#"<strong id="awaiting-review">2</strong>"#),
        "{}",
        dash.body
    );
    assert!(dash.body.contains(r#"<strong id="leased">2</strong>"#));
    // The chart has labelled axes: counts up the side, time along the bottom.
    assert!(
        dash.body.contains(r#"class="tick x">now</text>"#),
        "{}",
        dash.body
    );
    assert!(dash.body.contains(r#"class="tick y">0</text>"#));
    // The follow hint is a command that runs.
    assert!(dash.body.contains("--token-file TOKEN_FILE --out RUN_DIR"));

    // Workers: everyone with work, sorted and filtered on request.
    let ids = |body: &str| -> Vec<String> {
        body.split(r#"<input type="hidden" name="worker" value=""#)
            .skip(1)
            .map(|s| s.split('"').next().unwrap().to_owned())
            .collect()
    };
    let all = get_page(&app, get("/r/p/pool/workers")).await;
    assert_eq!(ids(&all.body), ["w1", "w2", "w3"], "most work first");
    let pending = get_page(&app, get("/r/p/pool/workers?show=pending&sort=id")).await;
    assert_eq!(ids(&pending.body), ["w1", "w2"]);
    let found = get_page(&app, get("/r/p/pool/workers?q=W2")).await;
    assert_eq!(ids(&found.body), ["w2"]);
    let bad = get_page(&app, get("/r/p/pool/workers?sort=salary")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("sort=&quot;salary&quot;") || bad.body.contains("salary"));

    // A bonus amount that is not money: said on the workers page, like a missing reason.
    let paid_before = engine.earnings("w1").unwrap();
    for body in [
        format!("csrf={csrf}&action=bonus&worker=w1&cents=lots&reason=great&bonus_key=k1"),
        format!("csrf={csrf}&action=bonus&worker=w1&cents=0.50&reason=&bonus_key=k2"),
    ] {
        let resp = get_page(
            &app,
            form("/r/p/pool/workers", &body)
                .cookie(session.clone())
                .cookie(csrf_cookie.clone()),
        )
        .await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER, "{body}");
        assert_eq!(resp.header("location"), "/r/p/pool/workers");
        let flash = resp.cookie("milan_flash").expect("a notice for the page");
        let page = get_page(&app, get("/r/p/pool/workers").cookie(flash)).await;
        assert!(page.body.contains(r#"id="notice""#), "{}", page.body);
    }
    assert_eq!(engine.earnings("w1").unwrap(), paid_before, "nothing paid");
}

/// Sign in as a worker with the password "a long enough password": the worker cookie and the
/// CSRF pair.
async fn worker_cookies(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    worker: &str,
    project: &str,
) -> (Cookie<'static>, Cookie<'static>, String) {
    let page = get_page(
        app,
        at::TestRequest::get().uri(&format!("/signin?project={project}")),
    )
    .await;
    let csrf_cookie = page.cookie("milan_csrf").unwrap();
    let csrf = page.field("csrf");
    let body =
        format!("csrf={csrf}&worker={worker}&password=a+long+enough+password&project={project}");
    let signed = get_page(app, form("/signin", &body).cookie(csrf_cookie.clone())).await;
    (
        signed.cookie("milan_worker").expect("signed in"),
        csrf_cookie,
        csrf,
    )
}

#[actix_web::test]
async fn the_task_page_says_reward_time_and_what_is_left_and_confirms_a_submit() {
    let db = common::sqlite();
    let f = fixture(&db);
    Accounts::new(db.db.clone())
        .set_worker_password("alice", "a long enough password", now_ms())
        .unwrap();
    let app = site!(f);
    let (worker, csrf_cookie, csrf) = worker_cookies(&app, "alice", "pool").await;
    let with = |r: at::TestRequest| r.cookie(worker.clone()).cookie(csrf_cookie.clone());
    let accepted = get_page(&app, with(form("/p/pool/accept", &format!("csrf={csrf}")))).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER);
    let task = get_page(&app, with(at::TestRequest::get().uri("/p/pool/task"))).await;
    assert_eq!(task.status, StatusCode::OK);
    let project = f.state.engine.project("pool").unwrap();
    let sets = f.state.reports.progress("pool").unwrap()[0].sets
        * f.state.reports.progress("pool").unwrap().len() as i64;
    assert!(task.body.contains(&format!(
        "Reward <strong>{}</strong>",
        pages::dollars(project.reward_cents)
    )));
    assert!(task.body.contains("per set"));
    // This worker holds one set; every other set is still open to them.
    assert!(
        task.body
            .contains(&format!(r#"<span id="available">{}</span>"#, sets - 1)),
        "{}",
        task.body
    );
    // Masks for the outline toggle; a counter for the enlarged view.
    assert_eq!(task.body.matches("data-mask=\"/images/").count(), 15);
    assert!(task.body.contains(r#"id="outline""#) && task.body.contains(r#"id="lightbox-count""#));
    let action = task
        .body
        .split(r#"id="describe" action=""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let done = get_page(
        &app,
        with(form(
            &action,
            &format!("csrf={csrf}&description=red+circles+everywhere"),
        )),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.header("location"), "/p/pool/task");
    let flash = done.cookie("milan_flash").expect("a confirmation");
    let next = get_page(
        &app,
        with(at::TestRequest::get().uri("/p/pool/task")).cookie(flash),
    )
    .await;
    assert!(
        next.body.contains("Saved: your description was submitted"),
        "{}",
        next.body
    );
    assert!(next.body.contains(r#"<span id="pending">1</span> pending"#));
}

#[actix_web::test]
async fn the_qualification_form_builds_the_test_and_a_refusal_keeps_what_was_typed() {
    let db = common::sqlite();
    let f = fixture_with_rita(&db);
    let app = site!(f);
    let (session, csrf_cookie, csrf) = requester_cookies(&app).await;
    let with = |r: at::TestRequest| r.cookie(session.clone()).cookie(csrf_cookie.clone());
    let page = get_page(
        &app,
        with(at::TestRequest::get().uri("/r/p/gated/qualification")),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("No test yet"));
    assert!(
        page.body.contains(r#"name="q0.choices""#) && page.body.contains(r#"name="q1.answer""#)
    );
    assert!(
        page.body.contains(r#"<option value="pool">"#),
        "other projects offered"
    );

    let fields = |answer: &str| {
        let layer = &f.layer;
        format!(
            "csrf={csrf}&pass_mark=1&retry_delay_s=60&time_limit_s=&required=1\
             &q0.project=pool&q0.model=alexnet%2Fimagenet&q0.layer={layer}&q0.unit=1&q0.prompt=\
             &q0.choices=stripes%0D%0Adots&q0.answer={answer}\
             &q1.project=&q1.model=&q1.layer=&q1.unit=&q1.prompt=&q1.choices=&q1.answer="
        )
    };
    // A refusal: the page again, the error naming the question and field (not the generated
    // TOML's line), and everything as it was typed.
    let refused = get_page(
        &app,
        with(form("/r/p/gated/qualification/form", &fields("waves"))),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let error = refused
        .body
        .split(r#"id="form-error">"#)
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap();
    assert!(
        error.contains("question 1, answer") && !error.contains("line"),
        "{error}"
    );
    assert!(refused.body.contains(r#"value="waves""#));
    assert!(refused.body.contains("stripes\r\ndots") || refused.body.contains("stripes\ndots"));
    assert!(
        Qualifications::new(db.db.clone())
            .test("gated")
            .unwrap()
            .is_none()
    );

    // Saved: the test is the form's, required, and the page shows it for editing.
    let saved = get_page(
        &app,
        with(form("/r/p/gated/qualification/form", &fields("dots"))),
    )
    .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    let test = Qualifications::new(db.db.clone())
        .test("gated")
        .unwrap()
        .unwrap();
    assert_eq!(
        (test.questions.len(), test.pass_mark, test.retry_delay_ms),
        (1, 1, 60_000)
    );
    assert_eq!(test.questions[0].choices, ["stripes", "dots"]);
    assert_eq!(test.questions[0].answer, 1);
    assert!(
        f.state
            .engine
            .project("gated")
            .unwrap()
            .qualification_required
    );
    let page = get_page(
        &app,
        with(at::TestRequest::get().uri("/r/p/gated/qualification")),
    )
    .await;
    assert!(
        page.body.contains(r#"name="q0.answer" value="dots""#),
        "{}",
        page.body
    );
    assert!(page.body.contains("[[question]]"), "the TOML to copy out");

    // A TOML with an error comes back as it was sent, with the error beside it.
    let toml = "pass_mark = 1\n[[question]]\nproject = \"pool\"\nchoices = [\"a\"]\n";
    let body = format!("csrf={csrf}&source={}", pages::urlencode(toml));
    let refused = get_page(&app, with(form("/r/p/gated/qualification", &body))).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains(r#"id="toml-error""#));
    assert!(
        refused.body.contains("choices = [&quot;a&quot;]"),
        "{}",
        refused.body
    );
    assert_eq!(
        Qualifications::new(db.db.clone())
            .test("gated")
            .unwrap()
            .unwrap()
            .questions[0]
            .choices,
        ["stripes", "dots"],
        "nothing changed"
    );
}

#[actix_web::test]
async fn the_set_browser_finds_a_set_and_shows_its_assignments_and_history() {
    let db = common::sqlite();
    let f = fixture_with_rita(&db);
    let engine = &f.state.engine;
    let a = engine.accept_next("pool", "w1", now_ms()).unwrap().unwrap();
    let (model, layer, unit) = (a.set.model.clone(), a.set.layer.clone(), a.set.unit);
    engine
        .submit(
            &a.assignment.public_id,
            "w1",
            "red circles here",
            None,
            now_ms(),
        )
        .unwrap();
    engine
        .reject(
            &a.assignment.public_id,
            "describe the bright parts",
            now_ms(),
        )
        .unwrap();
    let app = site!(f);
    let (session, csrf_cookie, _) = requester_cookies(&app).await;
    let get = |uri: String| {
        at::TestRequest::get()
            .uri(&uri)
            .cookie(session.clone())
            .cookie(csrf_cookie.clone())
    };
    let enc = pages::urlencode;
    // A layer: its units listed, each a link to its history.
    let list = get_page(
        &app,
        get(format!(
            "/r/p/pool/sets?model={}&layer={}",
            enc(&model),
            enc(&layer)
        )),
    )
    .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(
        list.body.matches("<tr><td>alexnet/imagenet</td>").count(),
        2,
        "{}",
        list.body
    );
    // One set: its images, the assignment with its description and feedback, the event log.
    let one = get_page(
        &app,
        get(format!(
            "/r/p/pool/sets?model={}&layer={}&unit={unit}",
            enc(&model),
            enc(&layer)
        )),
    )
    .await;
    assert_eq!(one.status, StatusCode::OK);
    assert!(
        one.body.contains(&format!("unit {unit}</h2>")),
        "{}",
        one.body
    );
    assert_eq!(one.body.matches(r#"<img src="/images/"#).count(), 15);
    let row = one
        .body
        .split(r#"<tr class="state-rejected">"#)
        .nth(1)
        .expect("the assignment");
    assert!(row.contains("w1") && row.contains("red circles here"));
    assert!(row.contains("describe the bright parts"));
    let history = one.body.split(r#"id="set-history">"#).nth(1).unwrap();
    let kinds: Vec<&str> = history
        .split("<strong>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap())
        .collect();
    assert_eq!(kinds, ["accepted", "submitted", "rejected"]);
    // Nothing there, or a unit that is not a number: said so.
    let none = get_page(&app, get("/r/p/pool/sets?model=nope%2Fnet".into())).await;
    assert!(none.body.contains("No set matches"));
    let bad = get_page(&app, get("/r/p/pool/sets?unit=seven".into())).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

// ------------------------------------------- issue 36: five holes an attacker found, closed

/// An API call with a bearer token and, when given, a JSON body.
fn api(method: &str, uri: &str, token: &str, body: Option<serde_json::Value>) -> at::TestRequest {
    let req = match method {
        "POST" => at::TestRequest::post(),
        "DELETE" => at::TestRequest::delete(),
        _ => at::TestRequest::get(),
    }
    .uri(uri)
    .peer_addr("10.0.0.1:5000".parse().unwrap())
    .insert_header(("Authorization", format!("Bearer {token}")));
    match body {
        Some(b) => req.set_json(b),
        None => req,
    }
}

/// A Prolific participant signed in through the entry page of `project`: the session cookie.
async fn prolific_session(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    project: &str,
    pid: &str,
) -> Cookie<'static> {
    let page = get_page(
        app,
        at::TestRequest::get().uri(&format!(
            "/prolific/{project}?PROLIFIC_PID={pid}&STUDY_ID=S{project}&SESSION_ID=X{pid}{project}"
        )),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let started = get_page(
        app,
        form(
            &format!("/prolific/{project}/start"),
            &format!("start={}", page.field("start")),
        ),
    )
    .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    started.cookie("milan_worker").unwrap()
}

/// Hole 1: a platform's entry page opens only a project set up for that platform, and the session
/// it starts works only in that project, on the pages and on the API.
#[actix_web::test]
async fn platform_entries_open_only_their_projects_and_their_sessions_stay_there() {
    for db in [common::sqlite(), common::postgres()] {
        let f = fixture(&db);
        let app = site!(f);
        // Neither project is on MTurk or Prolific: both entry pages are 404, and nothing is made.
        for uri in [
            "/prolific/pool?PROLIFIC_PID=attacker1&STUDY_ID=s1&SESSION_ID=x1",
            "/mturk/pool?assignmentId=A1&hitId=H1&workerId=W1&turkSubmitTo=https%3A%2F%2Fwww.mturk.com",
        ] {
            let got = get_page(&app, at::TestRequest::get().uri(uri)).await;
            assert_eq!(got.status, StatusCode::NOT_FOUND, "{}: {uri}", db.name);
            assert!(got.body.contains("takes no workers from"), "{}", got.body);
        }
        // The engine refuses too, whatever the web layer does.
        for refused in [
            f.state
                .engine
                .prolific_start("pool", "P1", "S1", "X1", now_ms())
                .unwrap_err(),
            f.state
                .engine
                .mturk_start(
                    &milan_annotator::engine::external::MturkEntry {
                        project: "pool".into(),
                        assignment_id: "A1".into(),
                        hit_id: "H1".into(),
                        worker_id: "W1".into(),
                        submit_to: "https://www.mturk.com".into(),
                    },
                    now_ms(),
                )
                .unwrap_err(),
        ] {
            assert!(matches!(refused, EngineError::NotFound(_)), "{refused}");
        }
        assert_eq!(count(&db, "workers"), 0);

        // "pool" takes Prolific participants; "gated" still does not.
        sql(
            &db,
            "UPDATE projects SET prolific_completion_code = 'C0DE' WHERE name = 'pool'",
        );
        let cookie = prolific_session(&app, "pool", "attacker1").await;
        let token = cookie.value().to_owned();
        let own = get_page(
            &app,
            at::TestRequest::get().uri("/p/pool").cookie(cookie.clone()),
        )
        .await;
        assert_eq!(own.status, StatusCode::OK, "{}", own.body);
        // Another project, by page, form and API: forbidden, and no assignment is made.
        let other = get_page(
            &app,
            at::TestRequest::get()
                .uri("/p/gated")
                .cookie(cookie.clone()),
        )
        .await;
        assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", other.body);
        assert!(other.body.contains("works only there"), "{}", other.body);
        let accept = get_page(
            &app,
            form("/p/gated/accept", &format!("csrf={}", own.field("csrf")))
                .cookie(own.cookie("milan_csrf").unwrap())
                .cookie(cookie.clone()),
        )
        .await;
        assert_eq!(accept.status, StatusCode::FORBIDDEN, "{}", accept.body);
        let by_api = at::call_service(
            &app,
            api("POST", "/api/v1/projects/gated/assignments", &token, None).to_request(),
        )
        .await;
        assert_eq!(by_api.status(), StatusCode::FORBIDDEN);
        assert_eq!(count(&db, "assignments"), 0);
        // In its own project the session works, on the API too; the worker's list shows only it.
        let by_api = at::call_service(
            &app,
            api("POST", "/api/v1/projects/pool/assignments", &token, None).to_request(),
        )
        .await;
        assert_eq!(by_api.status(), StatusCode::CREATED);
        // The home page sends it to its project rather than listing the others.
        let home = get_page(&app, at::TestRequest::get().uri("/").cookie(cookie.clone())).await;
        assert_eq!(home.status, StatusCode::SEE_OTHER);
        assert_eq!(home.header("location"), "/p/pool");
        // A worker signed in locally still works anywhere.
        let (local, _) = f
            .state
            .sessions
            .start_worker("w9", Via::Password, &Entry::Local, now_ms())
            .unwrap();
        let anywhere = at::call_service(
            &app,
            api("POST", "/api/v1/projects/gated/assignments", &local, None).to_request(),
        )
        .await;
        let body: serde_json::Value = at::read_body_json(anywhere).await;
        assert!(
            body["error"].as_str().unwrap().contains("qualification"),
            "refused for the test it has not passed, not for its entry: {body}"
        );
        // Its assignment in "pool" cannot be submitted or returned by a session scoped elsewhere:
        // a second project on Prolific, entered by the same participant.
        sql(
            &db,
            "UPDATE projects SET prolific_completion_code = 'C0DE2' WHERE name = 'gated'",
        );
        let held: serde_json::Value = at::read_body_json(
            at::call_service(
                &app,
                api("GET", "/api/v1/workers/me/assignments", &token, None).to_request(),
            )
            .await,
        )
        .await;
        let id = held[0]["assignment_id"].as_str().unwrap().to_owned();
        let elsewhere = prolific_session(&app, "gated", "attacker1").await;
        let listed: serde_json::Value = at::read_body_json(
            at::call_service(
                &app,
                api(
                    "GET",
                    "/api/v1/workers/me/assignments",
                    elsewhere.value(),
                    None,
                )
                .to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(listed, serde_json::json!([]), "{}", db.name);
        for path in ["submit", "return"] {
            let got = at::call_service(
                &app,
                api(
                    "POST",
                    &format!("/api/v1/assignments/{id}/{path}"),
                    elsewhere.value(),
                    Some(serde_json::json!({"description": "red and blue stripes"})),
                )
                .to_request(),
            )
            .await;
            assert_eq!(got.status(), StatusCode::FORBIDDEN, "{path}");
        }
    }
}

/// Hole 2: ids that read the same are one worker; invisible and direction characters are refused
/// by code point.
#[actix_web::test]
async fn worker_ids_that_read_the_same_are_one_worker_and_invisible_ones_are_refused() {
    for db in [common::sqlite(), common::postgres()] {
        let f = fixture(&db);
        let app = site!(f);
        let (_, requester) = f
            .state
            .auth
            .create_requester_token("tests", now_ms())
            .unwrap();
        // Invisible and direction characters, named by code point; full-width and upper-case
        // spellings of an MTurk id, which are MTurk's and not for local sessions.
        for (id, says) in [
            ("w1\u{200b}", "U+200B"),
            ("\u{202e}evil1w", "U+202E"),
            ("w1\u{2060}", "U+2060"),
            ("w1\u{e0041}", "U+E0041"),
            ("\u{ff4d}turk:A1B2", "mturk:"),
            ("MTURK:A1B2", "mturk:"),
        ] {
            let got = at::call_service(
                &app,
                api(
                    "POST",
                    "/api/v1/workers/session",
                    &requester,
                    Some(serde_json::json!({ "worker_id": id })),
                )
                .to_request(),
            )
            .await;
            assert_eq!(got.status(), StatusCode::UNPROCESSABLE_ENTITY, "{id:?}");
            let body: serde_json::Value = at::read_body_json(got).await;
            assert!(
                body["error"].as_str().unwrap().contains(says),
                "{id:?}: {body}"
            );
        }
        // Three spellings of one id are one worker, who gets one slot of a set.
        for id in ["w1", "\u{ff57}\u{ff11}", "\u{ff57}1"] {
            f.state
                .sessions
                .start_worker(id, Via::Password, &Entry::Local, now_ms())
                .unwrap();
        }
        assert_eq!(count(&db, "workers"), 1, "{}", db.name);
        let first = f.state.engine.accept_next("pool", "w1", now_ms()).unwrap();
        let again = f
            .state
            .engine
            .accept_next("pool", "\u{ff57}\u{ff11}", now_ms())
            .unwrap();
        assert_eq!(
            first.unwrap().assignment.id,
            again.unwrap().assignment.id,
            "the same worker's live lease, not a second slot"
        );
    }
}

/// Hole 3: the test's clock is the server's, from the first opening; reopening is the same
/// attempt, with the same choice values; a new attempt gets new values.
#[actix_web::test]
async fn reopening_the_qualification_test_is_the_same_attempt_on_the_same_clock() {
    for db in [common::sqlite(), common::postgres()] {
        let f = fixture(&db);
        Qualifications::new(db.db.clone())
            .set_test(
                "gated",
                &test_toml(&f.layer, 0)
                    .replace("retry_delay_s = 0", "retry_delay_s = 0\ntime_limit_s = 10"),
                now_ms(),
            )
            .unwrap();
        let app = site!(f);
        let (token, _) = f
            .state
            .sessions
            .start_worker("w1", Via::Password, &Entry::Local, now_ms())
            .unwrap();
        let worker = Cookie::new("milan_worker", token);
        let open = || async {
            get_page(
                &app,
                at::TestRequest::get()
                    .uri("/p/gated/qualification")
                    .cookie(worker.clone()),
            )
            .await
        };
        let first = open().await;
        assert!(first.body.contains("within 10 s"), "{}", first.body);
        let second = open().await;
        assert_eq!(first.field("attempt"), second.field("attempt"));
        let values = |p: &Got| -> Vec<String> {
            p.body
                .split("name=\"q0\" value=\"")
                .skip(1)
                .map(|c| c.split('"').next().unwrap().to_owned())
                .collect()
        };
        assert_eq!(values(&first), values(&second));
        // Past the limit on the server's clock, the answers of that attempt count for nothing,
        // however the form was filled. (The attempt is moved 11 s back rather than waited for.)
        sql(
            &db,
            "UPDATE qualification_openings SET started_at = started_at - 11000",
        );
        let moved = second.field("attempt").parse::<i64>().unwrap() - 11_000;
        let late = get_page(
            &app,
            form(
                "/p/gated/qualification",
                &format!(
                    "csrf={}&attempt={moved}&q0={}&q1={}",
                    second.field("csrf"),
                    values(&second)[0],
                    values(&second)[0]
                ),
            )
            .cookie(second.cookie("milan_csrf").unwrap())
            .cookie(worker.clone()),
        )
        .await;
        assert!(
            late.body.contains("the time limit ran out"),
            "{}",
            late.body
        );
        // The next opening is a new attempt, with new values: those noted before mean nothing.
        let third = open().await;
        assert_ne!(third.field("attempt"), second.field("attempt"));
        let (old, new) = (values(&second), values(&third));
        assert!(old.iter().all(|v| !new.contains(v)), "{old:?} {new:?}");
    }
}

/// Hole 4: a body with a field the server does not know is refused, naming the field, on the API
/// and on the pages' forms.
#[actix_web::test]
async fn unknown_fields_in_any_body_are_refused_by_name() {
    for db in [common::sqlite(), common::postgres()] {
        let f = fixture(&db);
        let app = site!(f);
        let (_, requester) = f
            .state
            .auth
            .create_requester_token("tests", now_ms())
            .unwrap();
        for (method, uri, body, field) in [
            (
                "POST",
                "/api/v1/projects",
                serde_json::json!({"name": "typo", "title": "t", "instructions": "i", "max_bonus_cent": 10}),
                "max_bonus_cent",
            ),
            (
                "POST",
                "/api/v1/assignments/nope/reject",
                serde_json::json!({"feedback": "no", "notify": true}),
                "notify",
            ),
            (
                "POST",
                "/api/v1/workers/w1/block",
                serde_json::json!({"reason": "spam", "forever": true}),
                "forever",
            ),
        ] {
            let got =
                at::call_service(&app, api(method, uri, &requester, Some(body)).to_request()).await;
            assert_eq!(got.status(), StatusCode::BAD_REQUEST, "{uri}");
            let body: serde_json::Value = at::read_body_json(got).await;
            assert!(
                body["error"].as_str().unwrap().contains(field),
                "{uri}: {body}"
            );
        }
        assert!(
            f.state.engine.project("typo").is_err(),
            "nothing was created"
        );
        let page = get_page(&app, at::TestRequest::get().uri("/signin")).await;
        let got = get_page(
            &app,
            form(
                "/signin",
                &format!("csrf={}&worker=w1&code=AAAA&admin=1", page.field("csrf")),
            )
            .cookie(page.cookie("milan_csrf").unwrap()),
        )
        .await;
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{}", got.body);
        assert!(got.body.contains("admin"), "{}", got.body);
        // A form read as a list of fields (the qualification test's) refuses one too.
        let (token, _) = f
            .state
            .sessions
            .start_worker("w1", Via::Password, &Entry::Local, now_ms())
            .unwrap();
        let worker = Cookie::new("milan_worker", token);
        let page = get_page(
            &app,
            at::TestRequest::get().uri("/p/pool").cookie(worker.clone()),
        )
        .await;
        let got = get_page(
            &app,
            form(
                "/p/gated/qualification",
                &format!("csrf={}&attempt=1&q0=x&cheat=1", page.field("csrf")),
            )
            .cookie(page.cookie("milan_csrf").unwrap())
            .cookie(worker),
        )
        .await;
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{}", got.body);
        assert!(got.body.contains("cheat"), "{}", got.body);
    }
}

/// Hole 5: no cache may keep an API answer or a download.
#[actix_web::test]
async fn api_answers_and_downloads_are_never_cached() {
    for db in [common::sqlite(), common::postgres()] {
        let f = fixture(&db);
        let app = site!(f);
        let (_, requester) = f
            .state
            .auth
            .create_requester_token("tests", now_ms())
            .unwrap();
        for (method, uri, body) in [
            (
                "POST",
                "/api/v1/workers/session",
                Some(serde_json::json!({"worker_id": "w1"})),
            ),
            ("GET", "/api/v1/workers/w1/sessions", None),
            ("GET", "/api/v1/projects/pool/export?format=jsonl", None),
            ("GET", "/api/v1/projects/pool/export?format=mturk-csv", None),
            ("GET", "/api/v1/projects", None),
            ("GET", "/api/v1/projects/nope/progress", None),
        ] {
            let got = at::call_service(&app, api(method, uri, &requester, body).to_request()).await;
            assert_eq!(
                got.headers()
                    .get("cache-control")
                    .map(|v| v.to_str().unwrap()),
                Some("no-store"),
                "{method} {uri}"
            );
        }
    }
}

// ------------------------------------------------------------------ issue 37: the live catalog

#[actix_web::test]
async fn the_live_catalog_is_the_requesters_until_made_public_and_never_names_a_worker() {
    use milan_annotator::engine::ModelDescription;
    for db in [common::sqlite(), common::postgres()] {
        let f = fixture(&db);
        let accounts = Accounts::new(db.db.clone());
        accounts
            .set_requester_password("rita", "a long enough password", now_ms())
            .unwrap();
        accounts
            .set_worker_password("alice", "a long enough password", now_ms())
            .unwrap();
        let engine = &f.state.engine;
        let layer = f.layer.clone();
        engine
            .post_model_descriptions(
                "pool",
                1,
                "milan-pmi",
                &[ModelDescription {
                    model: "alexnet/imagenet".into(),
                    layer: layer.clone(),
                    unit: 0,
                    description: Some("<b>red</b> circles".into()),
                    priority: None,
                }],
                now_ms(),
            )
            .unwrap();
        // Three workers describe unit 0; two descriptions are approved, one still waits.
        for (w, approve) in [
            ("secretworker1", true),
            ("secretworker2", true),
            ("secretworker3", false),
        ] {
            let a = loop {
                let a = engine.accept_next("pool", w, now_ms()).unwrap().unwrap();
                if a.set.unit == 0 && a.set.layer == layer {
                    break a;
                }
                engine
                    .return_assignment(&a.assignment.public_id, w, now_ms())
                    .unwrap();
            };
            let text = format!(
                "striped circles {}",
                if approve { "approved" } else { "waiting" }
            );
            engine
                .submit(&a.assignment.public_id, w, &text, None, now_ms())
                .unwrap();
            if approve {
                engine.approve(&a.assignment.public_id, now_ms()).unwrap();
            }
        }
        let token = f
            .state
            .auth
            .create_requester_token("t", now_ms())
            .unwrap()
            .1;
        let app = site!(f);
        let unit = format!("/catalog/pool/alexnet-imagenet/{layer}/0.html");
        let pages = [
            "/catalog/pool/index.html".to_owned(),
            "/catalog/pool/search.html".to_owned(),
            "/catalog/pool/search-index.js".to_owned(),
            format!("/catalog/pool/alexnet-imagenet/{layer}/index.html"),
            unit.clone(),
            format!("/catalog/pool/alexnet-imagenet/{layer}/img/0.jpg"),
            format!("/catalog/pool/alexnet-imagenet/{layer}/img/0-full.jpg"),
        ];

        // Private (the default): a stranger and a worker are sent to the requester's sign-in,
        // for a project that does not exist too.
        let (worker, _, _) = worker_cookies(&app, "alice", "pool").await;
        for uri in pages
            .iter()
            .map(String::as_str)
            .chain(["/catalog/nope/index.html"])
        {
            for who in [None, Some(worker.clone())] {
                let mut req = at::TestRequest::get().uri(uri);
                if let Some(c) = &who {
                    req = req.cookie(c.clone());
                }
                let got = get_page(&app, req).await;
                assert_eq!(got.status, StatusCode::SEE_OTHER, "{}: {uri}", db.name);
                assert_eq!(got.header("location"), "/r/signin", "{uri}");
            }
        }

        // The requester reads every page; approved descriptions and the model's show, the
        // waiting one does not; crowd and model text is escaped.
        let (rita, csrf_cookie, csrf) = requester_cookies(&app).await;
        for uri in &pages {
            let got = get_page(&app, at::TestRequest::get().uri(uri).cookie(rita.clone())).await;
            assert_eq!(got.status, StatusCode::OK, "{}: {uri}", db.name);
            assert_eq!(
                got.header("cache-control"),
                if uri.ends_with(".jpg") {
                    "private, max-age=3600"
                } else {
                    "private, no-store"
                }
            );
        }
        let page = get_page(&app, at::TestRequest::get().uri(&unit).cookie(rita.clone())).await;
        assert!(
            page.header("content-security-policy")
                .contains("script-src 'self'")
        );
        assert_eq!(
            page.body.matches("striped circles approved").count(),
            2,
            "{}",
            page.body
        );
        assert!(!page.body.contains("waiting"));
        assert!(
            page.body.contains("<span class=\"src s1\">milan-pmi</span></td><td>&lt;b&gt;red&lt;/b&gt; circles</td>"),
            "{}",
            page.body
        );
        assert_eq!(page.body.matches("img/0-full.jpg").count(), 15);
        let jpeg = at::call_service(
            &app,
            at::TestRequest::get()
                .uri(&pages[5])
                .cookie(rita.clone())
                .to_request(),
        )
        .await;
        assert_eq!(jpeg.headers().get("content-type").unwrap(), "image/jpeg");
        let bytes = at::read_body(jpeg).await;
        assert!(image::load_from_memory(&bytes).is_ok());
        let missing = get_page(
            &app,
            at::TestRequest::get()
                .uri("/catalog/nope/index.html")
                .cookie(rita.clone()),
        )
        .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        for bad in [
            "/catalog/pool/alexnet-imagenet/nolayer/0.html",
            "/catalog/pool/alexnet-imagenet/../../etc/passwd",
            "/catalog/pool/alexnet-imagenet/conv1/page-1.html",
        ] {
            let got = get_page(&app, at::TestRequest::get().uri(bad).cookie(rita.clone())).await;
            assert_eq!(got.status, StatusCode::NOT_FOUND, "{bad}");
        }
        let root = get_page(&app, at::TestRequest::get().uri("/catalog/pool")).await;
        assert_eq!(root.header("location"), "/catalog/pool/index.html");

        // Made public from the dashboard: anyone reads every page, and no page names a worker.
        let dashboard = get_page(
            &app,
            at::TestRequest::get().uri("/r/p/pool").cookie(rita.clone()),
        )
        .await;
        assert!(
            dashboard.body.contains("id=\"catalog-public\" ")
                && !dashboard.body.contains("id=\"catalog-public\" checked")
        );
        let switched = get_page(
            &app,
            form("/r/p/pool/catalog", &format!("csrf={csrf}&public=1"))
                .cookie(rita.clone())
                .cookie(csrf_cookie.clone()),
        )
        .await;
        assert_eq!(switched.status, StatusCode::SEE_OTHER);
        for uri in &pages {
            let got = get_page(&app, at::TestRequest::get().uri(uri)).await;
            assert_eq!(got.status, StatusCode::OK, "{}: public {uri}", db.name);
            for w in ["secretworker", "alice", "rita"] {
                assert!(!got.body.contains(w), "{uri} names {w}");
            }
        }

        // Private again through the API: at once, not after the catalog's rebuild.
        let resp = at::call_service(
            &app,
            api(
                "POST",
                "/api/v1/projects/pool/catalog",
                &token,
                Some(serde_json::json!({"public": false})),
            )
            .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let got = get_page(&app, at::TestRequest::get().uri(&unit)).await;
        assert_eq!(got.status, StatusCode::SEE_OTHER);
        let resp = at::call_service(
            &app,
            api(
                "POST",
                "/api/v1/projects/pool/catalog",
                &token,
                Some(serde_json::json!({"public": true, "everyone": 1})),
            )
            .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }
}

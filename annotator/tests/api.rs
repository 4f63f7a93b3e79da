//! The JSON API in-process (actix's test service), on both databases: the route table matches
//! openapi.json, a whole worker/requester flow, and a table of bad inputs each answered with a
//! clear error and nothing half-written.

mod common;

use actix_web::http::StatusCode;
use actix_web::{App, test, web};
use common::TestDb;
use milan_annotator::api::{self, AppState, ROUTES};
use milan_annotator::auth::Auth;
use milan_annotator::domain::{ProjectSettings, now_ms};
use milan_annotator::engine::Engine;
use milan_annotator::images::ImageStore;
use milan_annotator::import::import;
use serde_json::{Value, json};

struct Fixture {
    state: AppState,
    requester: String,
    _dir: tempfile::TempDir,
}

fn fixture(db: &TestDb) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let corpus = dir.path().join("corpus");
    let config = milan_synth::SynthConfig {
        units_per_layer: 1,
        image_size: 16,
        seed: 0,
        keys: vec!["alexnet/imagenet".parse().unwrap()],
    };
    milan_synth::generate(&corpus, &config, &|| {}).unwrap();
    let engine = Engine::new(db.db.clone());
    let images = ImageStore::new(&data);
    import(
        &engine,
        &images,
        &ProjectSettings::new("p", "Describe"),
        &corpus,
        now_ms(),
        &|| {},
    )
    .unwrap();
    let auth = Auth::load(&db.db).unwrap();
    let requester = auth.create_requester_token(now_ms()).unwrap();
    Fixture {
        state: AppState {
            engine,
            auth,
            images,
            data_dir: data,
        },
        requester,
        _dir: dir,
    }
}

macro_rules! app {
    ($fixture:expr) => {
        test::init_service(
            App::new()
                .app_data(web::Data::new($fixture.state.clone()))
                .configure(api::configure),
        )
        .await
    };
}

async fn call(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    req: test::TestRequest,
) -> (StatusCode, Value, actix_web::http::header::HeaderMap) {
    let resp = test::call_service(app, req.to_request()).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = test::read_body(resp).await;
    let is_json = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let value = if is_json {
        serde_json::from_slice(&body).unwrap()
    } else {
        Value::String(String::from_utf8_lossy(&body).into_owned())
    };
    (status, value, headers)
}

fn post(path: &str) -> test::TestRequest {
    test::TestRequest::post().uri(path)
}

fn bearer(req: test::TestRequest, token: &str) -> test::TestRequest {
    req.insert_header(("Authorization", format!("Bearer {token}")))
}

fn both() -> [TestDb; 2] {
    [common::sqlite(), common::postgres()]
}

#[actix_web::test]
async fn every_route_in_the_table_exists_and_openapi_describes_exactly_them() {
    let db = common::sqlite();
    let f = fixture(&db);
    let app = app!(f);
    for (method, path, _) in ROUTES {
        let uri = path
            .replace("{project}", "p")
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{worker}", "w")
            .replace("{hash}", &"a".repeat(64));
        let req = match *method {
            "get" => test::TestRequest::get(),
            "post" => test::TestRequest::post(),
            "delete" => test::TestRequest::delete(),
            other => panic!("method {other}"),
        }
        .uri(&uri);
        let (_, body, _) = call(&app, req).await;
        assert_ne!(
            body,
            json!({ "error": "no such route" }),
            "{method} {uri} is not routed"
        );
    }
    let (status, doc, _) = call(&app, test::TestRequest::get().uri("/api/v1/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    documented.sort();
    let mut table: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    table.sort();
    assert_eq!(documented, table);
    for unrouted in [
        "/api/v1/nope",
        "/api/v2/projects",
        "/api/v1/projects/p/secrets",
    ] {
        let (status, body, _) = call(&app, test::TestRequest::get().uri(unrouted)).await;
        assert_eq!(
            (status, body),
            (StatusCode::NOT_FOUND, json!({ "error": "no such route" }))
        );
    }
}

async fn session(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    worker: &str,
) -> String {
    let (status, body, _) = call(
        app,
        post("/api/v1/workers/session").set_json(json!({ "worker_id": worker })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn a_worker_and_a_requester_over_http() {
    for db in both() {
        let f = fixture(&db);
        let app = app!(f);
        let alice = session(&app, "alice").await;
        let (status, accepted, _) =
            call(&app, bearer(post("/api/v1/projects/p/assignments"), &alice)).await;
        assert_eq!(status, StatusCode::CREATED, "{}: {accepted}", db.name);
        let id = accepted["assignment_id"].as_str().unwrap().to_owned();
        assert_eq!(accepted["set"]["model"], "alexnet/imagenet");
        assert_eq!(accepted["set"]["images"].as_array().unwrap().len(), 15);
        let image = accepted["set"]["images"][0].as_str().unwrap().to_owned();
        let resp =
            test::call_service(&app, test::TestRequest::get().uri(&image).to_request()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers().get("content-type").unwrap(), "image/png");
        let submit = |text: &str| {
            bearer(post(&format!("/api/v1/assignments/{id}/submit")), &alice)
                .insert_header(("Idempotency-Key", "key-1"))
                .set_json(json!({ "description": text }))
        };
        let (status, first, _) = call(&app, submit("Red circles at the top.")).await;
        assert_eq!(status, StatusCode::OK, "{first}");
        assert_eq!(first["status"], "submitted");
        let (status, again, _) = call(&app, submit("Red circles at the top.")).await;
        assert_eq!(
            (status, &again),
            (StatusCode::OK, &first),
            "a replay gets the same body"
        );
        // The requester approves; the feed shows it with a cursor.
        let (status, _, _) = call(
            &app,
            bearer(
                post(&format!("/api/v1/assignments/{id}/approve")),
                &f.requester,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, feed, headers) = call(
            &app,
            bearer(
                test::TestRequest::get().uri("/api/v1/projects/p/descriptions?after=0"),
                &f.requester,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let line: Value =
            serde_json::from_str(feed.as_str().unwrap().lines().next().unwrap()).unwrap();
        assert_eq!(line["cleaned"], "red circles at the top");
        assert_eq!(line["assignment_id"], id.as_str());
        let cursor = headers
            .get("X-Next-Cursor")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let (_, rest, _) = call(
            &app,
            bearer(
                test::TestRequest::get()
                    .uri(&format!("/api/v1/projects/p/descriptions?after={cursor}")),
                &f.requester,
            ),
        )
        .await;
        assert_eq!(
            rest,
            Value::String(String::new()),
            "nothing after the cursor"
        );
        let (status, progress, _) = call(
            &app,
            bearer(
                test::TestRequest::get().uri("/api/v1/projects/p/progress"),
                &f.requester,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let approved: i64 = progress
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["approved"].as_i64().unwrap())
            .sum();
        assert_eq!(approved, 1);
        for format in ["mturk-csv", "jsonl", "milannotations"] {
            let resp = test::call_service(
                &app,
                bearer(
                    test::TestRequest::get()
                        .uri(&format!("/api/v1/projects/p/export?format={format}")),
                    &f.requester,
                )
                .to_request(),
            )
            .await;
            assert_eq!(resp.status(), StatusCode::OK, "{format}");
            assert!(!test::read_body(resp).await.is_empty(), "{format}");
        }
        // Bob returns his set and cannot get it back; nothing else is left for him after three.
        let bob = session(&app, "bob").await;
        let (_, b, _) = call(&app, bearer(post("/api/v1/projects/p/assignments"), &bob)).await;
        let bid = b["assignment_id"].as_str().unwrap();
        let (status, _, _) = call(
            &app,
            bearer(post(&format!("/api/v1/assignments/{bid}/return")), &bob),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        for _ in 0..4 {
            let (status, _, _) =
                call(&app, bearer(post("/api/v1/projects/p/assignments"), &bob)).await;
            assert_eq!(status, StatusCode::CREATED);
        }
        let (status, _, _) = call(&app, bearer(post("/api/v1/projects/p/assignments"), &bob)).await;
        assert_eq!(
            status,
            StatusCode::NO_CONTENT,
            "{}: bob touched every set",
            db.name
        );
    }
}

/// (name, request, expected status, words the error must contain)
type Case = (&'static str, test::TestRequest, StatusCode, &'static str);

#[actix_web::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    for db in both() {
        let f = fixture(&db);
        let app = app!(f);
        let alice = session(&app, "alice").await;
        let mallory = session(&app, "mallory").await;
        let (_, a, _) = call(&app, bearer(post("/api/v1/projects/p/assignments"), &alice)).await;
        let id = a["assignment_id"].as_str().unwrap().to_owned();
        let (_, m, _) = call(
            &app,
            bearer(post("/api/v1/projects/p/assignments"), &mallory),
        )
        .await;
        let mallory_id = m["assignment_id"].as_str().unwrap().to_owned();
        let (_, done, _) = call(&app, bearer(post("/api/v1/projects/p/assignments"), &alice)).await;
        let done_id = done["assignment_id"].as_str().unwrap().to_owned();
        let (status, _, _) = call(
            &app,
            bearer(
                post(&format!("/api/v1/assignments/{done_id}/submit")),
                &alice,
            )
            .insert_header(("Idempotency-Key", "k"))
            .set_json(json!({ "description": "blue squares" })),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let submit = |token: &str, id: &str| {
            bearer(post(&format!("/api/v1/assignments/{id}/submit")), token)
        };
        let forged = {
            let mut t = alice.clone();
            t.replace_range(t.len() - 4.., "0000");
            t
        };
        let big = "x".repeat(20_000);
        let cases: Vec<Case> = vec![
            (
                "invalid JSON",
                post("/api/v1/workers/session")
                    .insert_header(("content-type", "application/json"))
                    .set_payload("{bad"),
                StatusCode::BAD_REQUEST,
                "invalid JSON",
            ),
            (
                "missing field",
                post("/api/v1/workers/session").set_json(json!({})),
                StatusCode::BAD_REQUEST,
                "worker_id",
            ),
            (
                "empty worker id",
                post("/api/v1/workers/session").set_json(json!({ "worker_id": "" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "worker id",
            ),
            (
                "worker id with spaces",
                post("/api/v1/workers/session").set_json(json!({ "worker_id": "a b" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "without spaces",
            ),
            (
                "worker id too long",
                post("/api/v1/workers/session").set_json(json!({ "worker_id": "w".repeat(200) })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "1 to 128",
            ),
            (
                "oversize body",
                post("/api/v1/workers/session").set_json(json!({ "worker_id": big })),
                StatusCode::PAYLOAD_TOO_LARGE,
                "too large",
            ),
            (
                "not JSON content type",
                post("/api/v1/workers/session")
                    .insert_header(("content-type", "text/plain"))
                    .set_payload("{}"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "application/json",
            ),
            (
                "no token",
                post("/api/v1/projects/p/assignments"),
                StatusCode::UNAUTHORIZED,
                "Bearer",
            ),
            (
                "forged token",
                bearer(post("/api/v1/projects/p/assignments"), &forged),
                StatusCode::UNAUTHORIZED,
                "invalid token",
            ),
            (
                "malformed token",
                bearer(post("/api/v1/projects/p/assignments"), "abc"),
                StatusCode::UNAUTHORIZED,
                "malformed",
            ),
            (
                "requester token as worker",
                bearer(post("/api/v1/projects/p/assignments"), &f.requester),
                StatusCode::UNAUTHORIZED,
                "token",
            ),
            (
                "unknown project",
                bearer(post("/api/v1/projects/nope/assignments"), &alice),
                StatusCode::NOT_FOUND,
                "no project",
            ),
            (
                "empty description",
                submit(&alice, &id).set_json(json!({ "description": "  " })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "too short",
            ),
            (
                "one word",
                submit(&alice, &id).set_json(json!({ "description": "dogs" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "2 words",
            ),
            (
                "too long",
                submit(&alice, &id).set_json(json!({ "description": "ab ".repeat(200) })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "too long",
            ),
            (
                "oversize description",
                submit(&alice, &id).set_json(json!({ "description": big })),
                StatusCode::PAYLOAD_TOO_LARGE,
                "too large",
            ),
            (
                "missing description",
                submit(&alice, &id).set_json(json!({ "text": "red dots" })),
                StatusCode::BAD_REQUEST,
                "description",
            ),
            (
                "description not a string",
                submit(&alice, &id).set_json(json!({ "description": 42 })),
                StatusCode::BAD_REQUEST,
                "invalid JSON",
            ),
            (
                "copied previous",
                submit(&alice, &id).set_json(json!({ "description": "Blue squares." })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "previous",
            ),
            (
                "forged assignment id",
                submit(&alice, "11111111-2222-3333-4444-555555555555")
                    .set_json(json!({ "description": "red dots" })),
                StatusCode::NOT_FOUND,
                "no assignment",
            ),
            (
                "another worker's assignment",
                submit(&alice, &mallory_id).set_json(json!({ "description": "red dots" })),
                StatusCode::FORBIDDEN,
                "another worker",
            ),
            (
                "replay with another body",
                submit(&alice, &done_id)
                    .insert_header(("Idempotency-Key", "k"))
                    .set_json(json!({ "description": "green stars" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "Idempotency-Key reused",
            ),
            (
                "idempotency key too long",
                submit(&alice, &id)
                    .insert_header(("Idempotency-Key", "k".repeat(200)))
                    .set_json(json!({ "description": "red dots" })),
                StatusCode::BAD_REQUEST,
                "Idempotency-Key",
            ),
            (
                "return another's",
                bearer(
                    post(&format!("/api/v1/assignments/{mallory_id}/return")),
                    &alice,
                ),
                StatusCode::FORBIDDEN,
                "another worker",
            ),
            (
                "approve without token",
                post(&format!("/api/v1/assignments/{done_id}/approve")),
                StatusCode::UNAUTHORIZED,
                "Bearer",
            ),
            (
                "approve with a worker token",
                bearer(
                    post(&format!("/api/v1/assignments/{done_id}/approve")),
                    &alice,
                ),
                StatusCode::UNAUTHORIZED,
                "token",
            ),
            (
                "approve unsubmitted",
                bearer(
                    post(&format!("/api/v1/assignments/{id}/approve")),
                    &f.requester,
                ),
                StatusCode::CONFLICT,
                "only a submitted one",
            ),
            (
                "reject without feedback",
                bearer(
                    post(&format!("/api/v1/assignments/{done_id}/reject")),
                    &f.requester,
                )
                .set_json(json!({ "feedback": "" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "feedback",
            ),
            (
                "reject with huge feedback",
                bearer(
                    post(&format!("/api/v1/assignments/{done_id}/reject")),
                    &f.requester,
                )
                .set_json(json!({ "feedback": "f".repeat(2000) })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "1024",
            ),
            (
                "negative bonus",
                bearer(post("/api/v1/workers/alice/bonus"), &f.requester)
                    .set_json(json!({ "cents": -5, "reason": "x" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "positive",
            ),
            (
                "bonus to nobody",
                bearer(post("/api/v1/workers/nobody/bonus"), &f.requester)
                    .set_json(json!({ "cents": 5, "reason": "x" })),
                StatusCode::NOT_FOUND,
                "no worker",
            ),
            (
                "bad project name",
                bearer(post("/api/v1/projects"), &f.requester)
                    .set_json(json!({ "name": "Bad Name", "title": "t", "instructions": "i" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "project name",
            ),
            (
                "duplicate project",
                bearer(post("/api/v1/projects"), &f.requester)
                    .set_json(json!({ "name": "p", "title": "t", "instructions": "i" })),
                StatusCode::CONFLICT,
                "exists",
            ),
            (
                "feed limit 0",
                bearer(
                    test::TestRequest::get().uri("/api/v1/projects/p/descriptions?limit=0"),
                    &f.requester,
                ),
                StatusCode::BAD_REQUEST,
                "limit",
            ),
            (
                "feed bad status",
                bearer(
                    test::TestRequest::get().uri("/api/v1/projects/p/descriptions?status=maybe"),
                    &f.requester,
                ),
                StatusCode::BAD_REQUEST,
                "status",
            ),
            (
                "feed bad cursor",
                bearer(
                    test::TestRequest::get().uri("/api/v1/projects/p/descriptions?after=abc"),
                    &f.requester,
                ),
                StatusCode::BAD_REQUEST,
                "query",
            ),
            (
                "export bad format",
                bearer(
                    test::TestRequest::get().uri("/api/v1/projects/p/export?format=xml"),
                    &f.requester,
                ),
                StatusCode::BAD_REQUEST,
                "unknown export format",
            ),
            (
                "image path traversal",
                test::TestRequest::get().uri("/images/..%2F..%2Fetc%2Fpasswd.png"),
                StatusCode::NOT_FOUND,
                "no such image",
            ),
            (
                "image not a hash",
                test::TestRequest::get().uri("/images/abc.png"),
                StatusCode::NOT_FOUND,
                "no such image",
            ),
            (
                "image unknown hash",
                test::TestRequest::get().uri(&format!("/images/{}.png", "0".repeat(64))),
                StatusCode::NOT_FOUND,
                "no such image",
            ),
        ];
        assert!(cases.len() >= 30);
        for (name, req, status, words) in cases {
            let (got, body, _) = call(&app, req).await;
            assert_eq!(got, status, "{}: {name}: {body}", db.name);
            let message = body["error"].as_str().unwrap_or_default();
            assert!(
                message.contains(words),
                "{name}: {message:?} should say {words:?}"
            );
        }
        // Nothing half-written: the refused submissions stored no description.
        let (_, feed, _) = call(
            &app,
            bearer(
                test::TestRequest::get().uri("/api/v1/projects/p/descriptions?status=all"),
                &f.requester,
            ),
        )
        .await;
        let lines: Vec<&str> = feed.as_str().unwrap().lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{}: only the one good submission: {lines:?}",
            db.name
        );
        // Worker text is data: a script tag comes back as a JSON string, never as markup.
        let (status, r, headers) = call(
            &app,
            submit(&alice, &id).set_json(json!({ "description": "<script>alert(1)</script> red" })),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(r["description"], "<script>alert(1)</script> red");
        assert_eq!(headers.get("content-type").unwrap(), "application/json");
    }
}

#[actix_web::test]
async fn a_submit_after_the_lease_is_refused() {
    for db in both() {
        let f = fixture(&db);
        let mut settings = ProjectSettings::new("fast", "Fast leases");
        settings.lease_ms = 1000;
        let engine = &f.state.engine;
        let dir = tempfile::tempdir().unwrap();
        let config = milan_synth::SynthConfig {
            units_per_layer: 1,
            image_size: 16,
            seed: 0,
            keys: vec!["alexnet/imagenet".parse().unwrap()],
        };
        milan_synth::generate(dir.path(), &config, &|| {}).unwrap();
        import(
            engine,
            &f.state.images,
            &settings,
            dir.path(),
            now_ms(),
            &|| {},
        )
        .unwrap();
        let app = app!(f);
        let alice = session(&app, "alice").await;
        let (_, a, _) = call(
            &app,
            bearer(post("/api/v1/projects/fast/assignments"), &alice),
        )
        .await;
        let id = a["assignment_id"].as_str().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let (status, body, _) = call(
            &app,
            bearer(post(&format!("/api/v1/assignments/{id}/submit")), &alice)
                .set_json(json!({ "description": "red dots here" })),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{}: {body}", db.name);
        assert!(body["error"].as_str().unwrap().contains("lease ended"));
    }
}

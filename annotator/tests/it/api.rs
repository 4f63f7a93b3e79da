//! The JSON API in-process (actix's test service), on both databases: the route table matches
//! openapi.json, a whole worker/requester flow, a table of bad inputs each answered with a clear
//! error and nothing half-written, and the attacks of issue 14 (identities without credentials,
//! replayed bonuses, unread large bodies, rate limits, revoked sessions), each refused.

use crate::common;

use actix_web::http::StatusCode;
use actix_web::{App, test, web};
use common::TestDb;
use milan_annotator::auth::Auth;
use milan_annotator::domain::{ProjectSettings, now_ms};
use milan_annotator::engine::Engine;
use milan_annotator::http::api::{self, ROUTES};
use milan_annotator::http::state::AppState;
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
    let (_, requester) = auth.create_requester_token("tests", now_ms()).unwrap();
    Fixture {
        state: AppState::new(engine, auth, images, data),
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

/// A worker session minted with the requester's token (an integration signing its crowd in).
async fn session(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    requester: &str,
    worker: &str,
) -> String {
    let (status, body, _) = call(
        app,
        bearer(post("/api/v1/workers/session"), requester).set_json(json!({ "worker_id": worker })),
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
        let alice = session(&app, &f.requester, "alice").await;
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
        for format in ["mturk-csv", "jsonl"] {
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
        // MILANNOTATIONS streams (no Content-Length): by default a .tar.gz of the layer with the
        // one described unit (each layer here has one unit); with units=all&compression=none a
        // plain tar of every layer.
        let export = |query: &str| {
            bearer(
                test::TestRequest::get().uri(&format!(
                    "/api/v1/projects/p/export?format=milannotations{query}"
                )),
                &f.requester,
            )
            .to_request()
        };
        let resp = test::call_service(&app, export("")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            "application/gzip"
        );
        assert!(
            resp.headers()
                .get("content-disposition")
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with("p.tar.gz\"")
        );
        assert!(!resp.headers().contains_key("content-length"), "streamed");
        let gz = test::read_body(resp).await;
        let tar = {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out)
                .unwrap();
            out
        };
        let annotated = unpack_npys(&tar);
        let resp = test::call_service(&app, export("&units=all&compression=none")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            "application/x-tar"
        );
        let all = unpack_npys(&test::read_body(resp).await);
        assert!(
            annotated.len() < all.len(),
            "layers without a described unit are left out: {} files of {}",
            annotated.len(),
            all.len()
        );
        // Bob returns each set he takes and never gets one back: after all five, nothing is left.
        let bob = session(&app, &f.requester, "bob").await;
        for _ in 0..5 {
            let (status, b, _) =
                call(&app, bearer(post("/api/v1/projects/p/assignments"), &bob)).await;
            assert_eq!(status, StatusCode::CREATED, "{b}");
            let bid = b["assignment_id"].as_str().unwrap();
            let (status, _, _) = call(
                &app,
                bearer(post(&format!("/api/v1/assignments/{bid}/return")), &bob),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
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
        let alice = session(&app, &f.requester, "alice").await;
        let mallory = session(&app, &f.requester, "mallory").await;
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
        let (_, a, _) = call(&app, bearer(post("/api/v1/projects/p/assignments"), &alice)).await;
        let id = a["assignment_id"].as_str().unwrap().to_owned();
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
                "unknown field",
                post("/api/v1/workers/session").set_json(json!({ "user": "x" })),
                StatusCode::BAD_REQUEST,
                "unknown field",
            ),
            (
                "nothing to sign in with",
                post("/api/v1/workers/session").set_json(json!({})),
                StatusCode::BAD_REQUEST,
                "password",
            ),
            (
                "a bare worker id",
                post("/api/v1/workers/session").set_json(json!({ "worker_id": "alice" })),
                StatusCode::UNAUTHORIZED,
                "needs a credential",
            ),
            (
                "minted: empty worker id",
                bearer(post("/api/v1/workers/session"), &f.requester)
                    .set_json(json!({ "worker_id": "" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "worker id",
            ),
            (
                "minted: worker id with spaces",
                bearer(post("/api/v1/workers/session"), &f.requester)
                    .set_json(json!({ "worker_id": "a b" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "a space (U+0020)",
            ),
            (
                "minted: worker id too long",
                bearer(post("/api/v1/workers/session"), &f.requester)
                    .set_json(json!({ "worker_id": "w".repeat(200) })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "1 to 128",
            ),
            (
                "minted: an MTurk identity",
                bearer(post("/api/v1/workers/session"), &f.requester)
                    .set_json(json!({ "worker_id": "mturk:A1B2" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "mturk:",
            ),
            (
                "oversize body",
                bearer(post("/api/v1/workers/session"), &f.requester)
                    .set_json(json!({ "worker_id": big })),
                StatusCode::PAYLOAD_TOO_LARGE,
                "limit of this route is 16 KiB",
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
                "invalid, expired or revoked",
            ),
            (
                "malformed token",
                bearer(post("/api/v1/projects/p/assignments"), "abc"),
                StatusCode::UNAUTHORIZED,
                "invalid, expired or revoked",
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
                "limit of this route is 16 KiB",
            ),
            (
                // Built without actix-web's compression: a compressed body is never inflated
                // (docs/security.md), so it cannot grow past the route's limit either.
                "a gzip-encoded body",
                submit(&alice, &id)
                    .insert_header(("content-type", "application/json"))
                    .insert_header(("content-encoding", "gzip"))
                    .set_payload(gzip(br#"{"description": "red circles"}"#)),
                StatusCode::BAD_REQUEST,
                "invalid JSON",
            ),
            (
                "a right-to-left override",
                submit(&alice, &id).set_json(json!({ "description": "red circles\u{202E}gnp" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "U+202E",
            ),
            (
                "a zero-width space",
                submit(&alice, &id).set_json(json!({ "description": "red\u{200B} circles" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invisible",
            ),
            (
                "HTML markup",
                submit(&alice, &id)
                    .set_json(json!({ "description": "<script>alert(1)</script> red" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "plain text",
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
                    .insert_header(("Idempotency-Key", "b1"))
                    .set_json(json!({ "cents": -5, "reason": "x", "project": "p" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "1 to 1000000",
            ),
            (
                "bonus to nobody",
                bearer(post("/api/v1/workers/nobody/bonus"), &f.requester)
                    .insert_header(("Idempotency-Key", "b2"))
                    .set_json(json!({ "cents": 5, "reason": "x", "project": "p" })),
                StatusCode::NOT_FOUND,
                "no worker",
            ),
            (
                "bonus without a key",
                bearer(post("/api/v1/workers/alice/bonus"), &f.requester)
                    .set_json(json!({ "cents": 5, "reason": "x", "project": "p" })),
                StatusCode::BAD_REQUEST,
                "Idempotency-Key",
            ),
            (
                "bonus for no project",
                bearer(post("/api/v1/workers/alice/bonus"), &f.requester)
                    .insert_header(("Idempotency-Key", "b3"))
                    .set_json(json!({ "cents": 5, "reason": "x" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "names the assignment or the project",
            ),
            (
                "the largest bonus i64 can hold",
                bearer(post("/api/v1/workers/alice/bonus"), &f.requester)
                    .insert_header(("Idempotency-Key", "b4"))
                    .set_json(json!({ "cents": i64::MAX, "reason": "x", "project": "p" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "1 to 1000000",
            ),
            (
                "a bonus over the project's maximum",
                bearer(post("/api/v1/workers/alice/bonus"), &f.requester)
                    .insert_header(("Idempotency-Key", "b5"))
                    .set_json(json!({ "cents": 2001, "reason": "x", "project": "p" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "at most 2000 cents",
            ),
            (
                "a reward over the bound",
                bearer(post("/api/v1/projects"), &f.requester).set_json(
                    json!({ "name": "rich", "title": "t", "instructions": "i", "reward_cents": 100_001 }),
                ),
                StatusCode::UNPROCESSABLE_ENTITY,
                "reward_cents",
            ),
            (
                "a lease of i64::MAX",
                bearer(post("/api/v1/projects"), &f.requester).set_json(
                    json!({ "name": "long", "title": "t", "instructions": "i", "lease_ms": i64::MAX }),
                ),
                StatusCode::UNPROCESSABLE_ENTITY,
                "lease_ms",
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
                "export bad units",
                bearer(
                    test::TestRequest::get()
                        .uri("/api/v1/projects/p/export?format=milannotations&units=some"),
                    &f.requester,
                ),
                StatusCode::BAD_REQUEST,
                "unknown units \"some\": use annotated or all",
            ),
            (
                "export units of a CSV",
                bearer(
                    test::TestRequest::get().uri("/api/v1/projects/p/export?format=jsonl&units=all"),
                    &f.requester,
                ),
                StatusCode::BAD_REQUEST,
                "units applies to format=milannotations only",
            ),
            (
                "export misspelt parameter",
                bearer(
                    test::TestRequest::get()
                        .uri("/api/v1/projects/p/export?format=milannotations&unit=all"),
                    &f.requester,
                ),
                StatusCode::BAD_REQUEST,
                "unit",
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
        // Worker text is data: quotes and ampersands come back as a JSON string.
        let (status, r, headers) = call(
            &app,
            submit(&alice, &id).set_json(json!({ "description": "salt & \"pepper\" red" })),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(r["description"], "salt & \"pepper\" red");
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
        let alice = session(&app, &f.requester, "alice").await;
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

// ---------------------------------------------------------------- issue 14: the attacks

use milan_annotator::accounts::Accounts;
use milan_annotator::limits::ApiLimits;

#[actix_web::test]
async fn no_identity_without_a_credential() {
    for db in both() {
        let f = fixture(&db);
        let accounts = Accounts::new(db.db.clone());
        accounts
            .set_worker_password("pat", "pat-password-1", now_ms())
            .unwrap();
        let code = accounts.issue_worker_code("cody", now_ms()).unwrap();
        let app = app!(f);
        let workers_before = f.state.engine.workers().unwrap().len();
        // A bare id is no proof, whoever it names: a stranger, an account with a password or a
        // code, an MTurk or Prolific identity, or a blocked worker's next name.
        for claim in [
            "demo-worker",
            "pat",
            "cody",
            "mturk:A1B2",
            "prolific:P1",
            "w-2",
        ] {
            let (status, body, _) = call(
                &app,
                post("/api/v1/workers/session").set_json(json!({ "worker_id": claim })),
            )
            .await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{}: {claim}: {body}",
                db.name
            );
            assert!(body.get("token").is_none());
        }
        let (status, _, _) = call(
            &app,
            post("/api/v1/workers/session")
                .set_json(json!({ "worker_id": "pat", "password": "wrong-password-1" })),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            f.state.engine.workers().unwrap().len(),
            workers_before,
            "{}: no worker was created by a claim",
            db.name
        );
        // The credentials work: a password, a code once, the requester's token for an integration.
        let (status, body, _) = call(
            &app,
            post("/api/v1/workers/session")
                .set_json(json!({ "worker_id": "pat", "password": "pat-password-1" })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["worker_id"], "pat");
        let pat = body["token"].as_str().unwrap().to_owned();
        let (status, body, _) = call(
            &app,
            post("/api/v1/workers/session").set_json(json!({ "code": code.to_lowercase() })),
        )
        .await;
        assert_eq!(
            (status, &body["worker_id"]),
            (StatusCode::OK, &json!("cody"))
        );
        let (status, _, _) = call(
            &app,
            post("/api/v1/workers/session").set_json(json!({ "code": code })),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a code works once");
        // Nobody can act on pat's assignment: not without a token, not with another worker's.
        let (status, a, _) = call(&app, bearer(post("/api/v1/projects/p/assignments"), &pat)).await;
        assert_eq!(status, StatusCode::CREATED, "{a}");
        let id = a["assignment_id"].as_str().unwrap();
        let mallory = session(&app, &f.requester, "mallory").await;
        for token in [None, Some(mallory.as_str())] {
            for action in ["return", "submit"] {
                let mut req = post(&format!("/api/v1/assignments/{id}/{action}"))
                    .set_json(json!({ "description": "stolen words here" }));
                if let Some(t) = token {
                    req = bearer(req, t);
                }
                let (status, body, _) = call(&app, req).await;
                assert!(
                    [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&status),
                    "{}: {action} with {token:?}: {status} {body}",
                    db.name
                );
            }
        }
        assert_eq!(f.state.engine.assignment(id).unwrap().state, "accepted");
        // A blocked worker stays blocked: a new name needs a new credential from the requester.
        f.state.engine.block("pat", "spam", now_ms()).unwrap();
        let (status, _, _) = call(
            &app,
            post("/api/v1/workers/session").set_json(json!({ "worker_id": "pat-2" })),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

#[actix_web::test]
async fn the_api_limits_sign_ins_accepts_and_submits_and_says_when_to_retry() {
    for db in both() {
        let mut f = fixture(&db);
        f.state = f.state.clone().with_limits(ApiLimits::per_minute(3, 5));
        Accounts::new(db.db.clone())
            .set_worker_password("pat", "pat-password-1", now_ms())
            .unwrap();
        let app = app!(f);
        let attacker: std::net::SocketAddr = "198.51.100.7:4000".parse().unwrap();
        let owner: std::net::SocketAddr = "203.0.113.9:4000".parse().unwrap();
        // 30 sessions a minute per address, then 429 with Retry-After.
        let mut limited = None;
        for i in 0..40 {
            let (status, body, headers) = call(
                &app,
                post("/api/v1/workers/session")
                    .peer_addr(attacker)
                    .set_json(json!({ "worker_id": "pat", "password": format!("guess-{i:04}xx") })),
            )
            .await;
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait: i64 = headers
                    .get("retry-after")
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(wait > 0, "{body}");
                limited = Some(i);
                break;
            }
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        let limited = limited.expect("the guesses were limited");
        assert!(
            limited <= 30,
            "{}: limited after {limited} guesses",
            db.name
        );
        // The owner, elsewhere, is not locked out by the attacker's guesses.
        let (status, body, _) = call(
            &app,
            post("/api/v1/workers/session")
                .peer_addr(owner)
                .set_json(json!({ "worker_id": "pat", "password": "pat-password-1" })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", db.name);
        // Accepts per credential (3 a minute here): the fourth waits; another worker does not.
        let alice = session(&app, &f.requester, "alice").await;
        let bob = session(&app, &f.requester, "bob").await;
        for i in 0..3 {
            let (status, _, _) = call(
                &app,
                bearer(post("/api/v1/projects/p/assignments"), &alice).peer_addr(owner),
            )
            .await;
            assert!(status.is_success(), "accept {i}");
        }
        let (status, _, headers) = call(
            &app,
            bearer(post("/api/v1/projects/p/assignments"), &alice).peer_addr(owner),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(headers.contains_key("retry-after"));
        // Per address (5 a minute here): bob's requests from the same address run out too.
        let (status, _, _) = call(
            &app,
            bearer(post("/api/v1/projects/p/assignments"), &bob).peer_addr(owner),
        )
        .await;
        assert!(status.is_success());
        let (status, _, _) = call(
            &app,
            bearer(post("/api/v1/projects/p/assignments"), &bob).peer_addr(owner),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{}", db.name);
        // X-Forwarded-For from a client that is not a trusted proxy changes nothing.
        let (status, _, _) = call(
            &app,
            bearer(post("/api/v1/projects/p/assignments"), &bob)
                .peer_addr(owner)
                .insert_header(("X-Forwarded-For", "192.0.2.99")),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    }
}

#[actix_web::test]
async fn accepting_again_returns_the_live_assignment_and_lists_it() {
    for db in both() {
        let f = fixture(&db);
        let app = app!(f);
        let alice = session(&app, &f.requester, "alice").await;
        let (status, first, _) =
            call(&app, bearer(post("/api/v1/projects/p/assignments"), &alice)).await;
        assert_eq!(
            (status, &first["resumed"]),
            (StatusCode::CREATED, &json!(false))
        );
        // A lost 201, retried: the same assignment, not a second lease.
        for _ in 0..4 {
            let (status, again, _) =
                call(&app, bearer(post("/api/v1/projects/p/assignments"), &alice)).await;
            assert_eq!(status, StatusCode::OK, "{}", db.name);
            assert_eq!(again["assignment_id"], first["assignment_id"]);
            assert_eq!(again["resumed"], true);
        }
        let (status, mine, _) = call(
            &app,
            bearer(
                test::TestRequest::get().uri("/api/v1/workers/me/assignments"),
                &alice,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let mine = mine.as_array().unwrap();
        assert_eq!(mine.len(), 1, "{}: one live lease", db.name);
        assert_eq!(mine[0]["assignment_id"], first["assignment_id"]);
        assert_eq!(mine[0]["project"], "p");
        let live: usize = f
            .state
            .reports
            .progress("p")
            .unwrap()
            .iter()
            .map(|r| r.in_progress as usize)
            .sum();
        assert_eq!(live, 1);
    }
}

#[actix_web::test]
async fn a_bonus_pays_once_per_key_and_within_the_project_maximum() {
    for db in both() {
        let f = fixture(&db);
        let app = app!(f);
        let alice = session(&app, &f.requester, "alice").await;
        let (_, a, _) = call(&app, bearer(post("/api/v1/projects/p/assignments"), &alice)).await;
        let id = a["assignment_id"].as_str().unwrap().to_owned();
        let pay = |key: &str, cents: i64| {
            bearer(post("/api/v1/workers/alice/bonus"), &f.requester)
                .insert_header(("Idempotency-Key", key.to_owned()))
                .set_json(json!({ "cents": cents, "reason": "careful work", "assignment_id": id }))
        };
        let (status, body, _) = call(&app, pay("bonus-1", 1)).await;
        assert_eq!(
            (status, &body["status"]),
            (StatusCode::OK, &json!("paid")),
            "{body}"
        );
        let (status, body, _) = call(&app, pay("bonus-1", 1)).await;
        assert_eq!(
            (status, &body["status"]),
            (StatusCode::OK, &json!("already paid")),
            "{}: the replay pays nothing",
            db.name
        );
        let (status, body, _) = call(&app, pay("bonus-1", 2)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (status, _, _) = call(&app, pay("bonus-2", 2000)).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the project's maximum itself is allowed"
        );
        let (status, _, _) = call(&app, pay("bonus-3", i64::MAX)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            f.state.engine.earnings("alice").unwrap(),
            (0, 2001),
            "{}",
            db.name
        );
    }
}

#[actix_web::test]
async fn sessions_end_on_sign_out_and_when_the_requester_revokes_them() {
    for db in both() {
        let f = fixture(&db);
        let app = app!(f);
        let accept = |t: &str| bearer(post("/api/v1/projects/p/assignments"), t);
        // The worker signs out: the token stops working at once, wherever it was copied.
        let alice = session(&app, &f.requester, "alice").await;
        let (status, _, _) = call(
            &app,
            bearer(
                test::TestRequest::delete().uri("/api/v1/workers/session"),
                &alice,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = call(&app, accept(&alice)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", db.name);
        // The requester lists bob's sessions and ends one, then all.
        let b1 = session(&app, &f.requester, "bob").await;
        let b2 = session(&app, &f.requester, "bob").await;
        let (status, list, _) = call(
            &app,
            bearer(
                test::TestRequest::get().uri("/api/v1/workers/bob/sessions"),
                &f.requester,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let list = list.as_array().unwrap().clone();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["via"], "requester");
        // Newest first: b2's session.
        let newest = list[0]["session_id"].as_str().unwrap();
        let (status, _, _) = call(
            &app,
            bearer(
                test::TestRequest::delete().uri(&format!("/api/v1/sessions/{newest}")),
                &f.requester,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(call(&app, accept(&b2)).await.0, StatusCode::UNAUTHORIZED);
        assert!(call(&app, accept(&b1)).await.0.is_success());
        let (_, ended, _) = call(
            &app,
            bearer(
                test::TestRequest::delete().uri("/api/v1/workers/bob/sessions"),
                &f.requester,
            ),
        )
        .await;
        assert_eq!(ended["ended"], 1);
        assert_eq!(call(&app, accept(&b1)).await.0, StatusCode::UNAUTHORIZED);
        // A revoked requester token stops working too.
        let auth = &f.state.auth;
        let (id, token) = auth.create_requester_token("ci", now_ms()).unwrap();
        let list_projects = |t: &str| bearer(test::TestRequest::get().uri("/api/v1/projects"), t);
        assert_eq!(call(&app, list_projects(&token)).await.0, StatusCode::OK);
        assert!(auth.revoke_requester_token(id, now_ms()).unwrap());
        assert_eq!(
            call(&app, list_projects(&token)).await.0,
            StatusCode::UNAUTHORIZED,
            "{}",
            db.name
        );
        assert!(!auth.revoke_requester_token(id, now_ms()).unwrap());
    }
}

#[actix_web::test]
async fn large_bodies_wait_for_the_token_and_too_large_names_the_limit() {
    for db in both() {
        let f = fixture(&db);
        let app = app!(f);
        let path = "/api/v1/projects/p/model-descriptions";
        // Without a token, a malformed megabyte is not even parsed: 401, not 400.
        let junk = "[".repeat(1 << 20);
        let (status, body, _) = call(
            &app,
            post(path)
                .insert_header(("content-type", "application/json"))
                .set_payload(junk),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        // With the token, a body over this route's limit is refused naming that limit.
        let (status, body, _) = call(
            &app,
            bearer(post(path), &f.requester)
                .insert_header(("content-type", "application/json"))
                .set_payload("{}")
                .insert_header(("content-length", (33 * 1024 * 1024).to_string())),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(body["error"].as_str().unwrap().contains("32 MiB"), "{body}");
    }
}

/// Over a real socket: a stranger who announces 32 MiB and sends none of it is answered 401 at
/// once; the server does not wait for (or read) the body.
#[actix_web::test]
async fn a_stranger_s_body_is_never_read() {
    use std::io::{Read, Write};
    let db = common::sqlite();
    let data = tempfile::tempdir().unwrap();
    let server = common::start_server(data.path(), &db.url);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /api/v1/projects/p/model-descriptions HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: 33554432\r\n\r\n{{"
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let n = stream
        .read(&mut buf)
        .expect("an answer before the body arrives");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
}

/// Random JSON (and random bytes) to every route that takes a body, signed in: always an answer
/// below 500 that is JSON with an error naming the problem, or a success. Bounded: 48 cases per
/// route.
#[actix_web::test]
async fn random_json_bodies_never_fail_the_server() {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let db = common::sqlite();
    let mut f = fixture(&db);
    f.state = f.state.clone().with_limits(ApiLimits::off());
    let app = app!(f);
    let alice = session(&app, &f.requester, "alice").await;
    let (_, a, _) = call(&app, bearer(post("/api/v1/projects/p/assignments"), &alice)).await;
    let id = a["assignment_id"].as_str().unwrap().to_owned();
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        prop_oneof![
            Just("description"),
            Just("worker_id"),
            Just("password"),
            Just("code"),
            Just("cents"),
            Just("reason"),
            Just("project"),
            Just("round"),
            Just("system"),
            Just("descriptions"),
            Just("feedback"),
            Just("by_priority"),
            Just("name"),
        ]
        .prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("description".to_owned()),
                    Just("worker_id".to_owned()),
                    Just("password".to_owned()),
                    Just("code".to_owned()),
                    Just("cents".to_owned()),
                    Just("reason".to_owned()),
                    Just("project".to_owned()),
                    Just("assignment_id".to_owned()),
                    Just("round".to_owned()),
                    Just("system".to_owned()),
                    Just("descriptions".to_owned()),
                    Just("model".to_owned()),
                    Just("layer".to_owned()),
                    Just("unit".to_owned()),
                    Just("priority".to_owned()),
                    Just("by_priority".to_owned()),
                    Just("feedback".to_owned()),
                    Just("name".to_owned()),
                    Just("title".to_owned()),
                    Just("instructions".to_owned()),
                    Just("lease_ms".to_owned()),
                    Just("reward_cents".to_owned()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let routes: Vec<(String, String)> = vec![
        ("/api/v1/workers/session".into(), String::new()),
        ("/api/v1/workers/session".into(), f.requester.clone()),
        (format!("/api/v1/assignments/{id}/submit"), alice.clone()),
        (
            format!("/api/v1/assignments/{id}/reject"),
            f.requester.clone(),
        ),
        ("/api/v1/workers/alice/bonus".into(), f.requester.clone()),
        ("/api/v1/workers/alice/block".into(), f.requester.clone()),
        ("/api/v1/projects".into(), f.requester.clone()),
        (
            "/api/v1/projects/p/model-descriptions".into(),
            f.requester.clone(),
        ),
        ("/api/v1/projects/p/ordering".into(), f.requester.clone()),
    ];
    let mut runner = TestRunner::deterministic();
    for (path, token) in &routes {
        for case in 0..48 {
            let body = value.new_tree(&mut runner).unwrap().current();
            let mut req = post(path)
                .insert_header(("Idempotency-Key", format!("fuzz-{case}")))
                .set_json(&body);
            if case % 8 == 7 {
                let bytes = prop::collection::vec(any::<u8>(), 0..64)
                    .new_tree(&mut runner)
                    .unwrap()
                    .current();
                req = post(path)
                    .insert_header(("content-type", "application/json"))
                    .set_payload(bytes);
            }
            if !token.is_empty() {
                req = bearer(req, token);
            }
            let (status, answer, _) = call(&app, req).await;
            assert!(
                status.as_u16() < 500,
                "{path} with {body}: {status} {answer}"
            );
            if !status.is_success() {
                let message = answer["error"].as_str().unwrap_or_default();
                assert!(!message.is_empty(), "{path} with {body}: {status} {answer}");
            }
        }
    }
}

/// A tar's files: (path, size).
fn unpack_npys(tar: &[u8]) -> Vec<(String, usize)> {
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                e.size() as usize,
            )
        })
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

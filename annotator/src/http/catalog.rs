//! `/catalog/{project}/`: the project's Neuron Catalog, the same pages `trainer catalog` writes,
//! built live from the database (`crate::catalog`).
//!
//! Who may read it: the signed-in requester always; anyone else only when the requester made the
//! project's catalog public (dashboard switch, or `POST /api/v1/projects/{p}/catalog`). Otherwise
//! the answer is a redirect to the requester's sign-in, the same for a project that does not
//! exist, so the catalog URL says nothing of which projects there are. The pages carry no worker
//! id, only texts and their source; they are read-only (GET), so no CSRF applies.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use milan_catalog::pages;
use milan_shared::lexicon::Lexicon;

use crate::catalog::{Built, CatalogError};
use crate::engine::EngineError;
use crate::http::errors::WebError;
use crate::http::extract::signed_in_requester;
use crate::http::state::AppState;
use crate::http::views::{Frame, csp};

type State = web::Data<AppState>;

impl From<CatalogError> for WebError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Engine(e) => WebError::Engine(e),
            CatalogError::Db(e) => WebError::Engine(EngineError::Db(e)),
            other => WebError::Internal(other.to_string()),
        }
    }
}

/// The catalog, if the visitor may read it; else the sign-in redirect (or 404 for a signed-in
/// requester asking for a project that does not exist).
async fn readable(state: &State, req: &HttpRequest, project: &str) -> Result<Readable, WebError> {
    let (st, p) = (state.clone(), project.to_owned());
    let public = web::block(move || st.catalogs.public(&p)).await??;
    if public != Some(true) {
        // Private or absent: only a requester learns which.
        signed_in_requester(state, req).await?;
    }
    if public.is_none() {
        return Err(WebError::Engine(EngineError::NotFound(format!(
            "no project named {project:?}"
        ))));
    }
    let (st, p) = (state.clone(), project.to_owned());
    let built = web::block(move || st.catalogs.get(&p))
        .await??
        .ok_or_else(|| {
            WebError::Engine(EngineError::NotFound(format!(
                "no project named {project:?}"
            )))
        })?;
    Ok(Readable {
        built,
        public: public == Some(true),
    })
}

/// A catalog the visitor may read, and whether it is public (its answers may be cached by
/// anyone).
struct Readable {
    built: Arc<Built>,
    public: bool,
}

fn respond(r: &Readable, content_type: &str, body: impl Into<String>) -> HttpResponse {
    let cache = if r.public {
        "public, max-age=5"
    } else {
        "private, no-store"
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header(("Content-Security-Policy", csp(&Frame::Deny, &[])))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(body.into())
}

fn html(r: &Readable, page: String) -> HttpResponse {
    respond(r, "text/html; charset=utf-8", page)
}

async fn root(path: web::Path<String>) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            format!("/catalog/{}/index.html", path.into_inner()),
        ))
        .finish()
}

async fn file(
    state: State,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (project, tail) = path.into_inner();
    let readable = readable(&state, &req, &project).await?;
    let r = &readable;
    let built = &readable.built;
    let not_found = || {
        WebError::Engine(EngineError::NotFound(format!(
            "no page {tail:?} in this catalog"
        )))
    };
    let parts: Vec<&str> = tail.split('/').collect();
    let catalog = &built.catalog;
    Ok(match parts.as_slice() {
        [] | [""] | ["index.html"] => html(r, pages::home(catalog, &Lexicon::default())),
        ["search.html"] => html(r, pages::search_page(catalog)),
        ["search-index.js"] => respond(r, "text/javascript; charset=utf-8", built.index.clone()),
        ["catalog.js"] => respond(r, "text/javascript; charset=utf-8", pages::JS),
        ["catalog.css"] => respond(
            r,
            "text/css; charset=utf-8",
            milan_catalog::write::stylesheet(),
        ),
        [model, layer, "img", name] => {
            let (stem, full) = match name.strip_suffix("-full.jpg") {
                Some(stem) => (stem, true),
                None => (name.strip_suffix(".jpg").ok_or_else(not_found)?, false),
            };
            let unit: u32 = stem.parse().map_err(|_| not_found())?;
            let (at, _) = built.find(model, layer, Some(unit)).ok_or_else(not_found)?;
            let (st, b) = (state.clone(), built.clone());
            let bytes = web::block(move || st.catalogs.sheet(&b, at, full))
                .await??
                .ok_or_else(not_found)?;
            let cache = if r.public {
                "public, max-age=3600"
            } else {
                "private, max-age=3600"
            };
            HttpResponse::Ok()
                .content_type("image/jpeg")
                .insert_header((header::CACHE_CONTROL, cache))
                .body(bytes)
        }
        [model, layer, page] => {
            let (at, _) = built.find(model, layer, None).ok_or_else(not_found)?;
            if let Some(n) = page
                .strip_suffix(".html")
                .and_then(|s| {
                    if *page == "index.html" {
                        Some("1")
                    } else {
                        s.strip_prefix("page-")
                    }
                })
                .and_then(|n| n.parse::<usize>().ok())
            {
                let pages_in = catalog.models[at.model].layers[at.layer].pages();
                if n == 0 || n > pages_in || (n == 1 && *page != "index.html") {
                    return Err(not_found());
                }
                html(r, pages::layer_page(catalog, at.model, at.layer, n - 1))
            } else {
                let unit: u32 = page
                    .strip_suffix(".html")
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(not_found)?;
                let (at, _) = built.find(model, layer, Some(unit)).ok_or_else(not_found)?;
                html(r, pages::unit_page(catalog, at))
            }
        }
        _ => return Err(not_found()),
    })
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/catalog/{project}", web::get().to(root))
        .route("/catalog/{project}/{tail:.*}", web::get().to(file));
}

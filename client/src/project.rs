//! One project of the annotator as a requester reaches it through the API, typed: pages of the
//! descriptions feed, the project's MILANNOTATIONS export (streamed and unpacked as it arrives),
//! model descriptions and priorities, the active ordering. `trainer follow` and `trainer
//! simulate-active` drive a project this way.
//!
//! Every call follows the client's one retry policy ([`Retry`]): a server that cannot be reached
//! or answers 5xx is waited for (exponential backoff up to `max_wait`, a warning each time), so a
//! follower survives the annotator going away and coming back; a 4xx (wrong token, unknown
//! project) is an error at once. Posts are repeated only because every post here is all or
//! nothing and idempotent.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use milan_shared::wire::{FeedEvent, ModelDescription, ModelDescriptions, Ordering};

use crate::Retry;

/// Events per feed request.
pub const PAGE: usize = 1000;

/// A project of the server at `base`, reached with a requester's API token.
#[derive(Debug)]
pub struct Project {
    agent: ureq::Agent,
    base: String,
    project: String,
    token: String,
    /// How failed calls are tried again.
    pub retry: Retry,
}

impl Project {
    pub fn new(base: &str, project: &str, token: &str) -> Self {
        Project {
            // A call may carry a whole export: no overall deadline short of ten minutes.
            agent: crate::agent(Duration::from_secs(600)),
            base: base.trim_end_matches('/').to_owned(),
            project: project.to_owned(),
            token: token.to_owned(),
            retry: Retry::default(),
        }
    }

    /// GET `path`, waiting out an absent or failing server: the body's bytes and the
    /// X-Next-Cursor header.
    fn get(&self, path: &str) -> Result<(Vec<u8>, Option<String>)> {
        self.call(path, None)
    }

    /// GET `path`, or POST `body` to it, waiting out an absent or failing server (a POST is only
    /// repeated when the server stored nothing: every post here is all or nothing and idempotent).
    fn call(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(Vec<u8>, Option<String>)> {
        self.exchange(path, body, |reader| {
            let mut bytes = Vec::new();
            reader.read_to_end(&mut bytes)?;
            Ok(bytes)
        })
    }

    /// [`Project::call`] with the body of a successful answer handed to `read` as it arrives
    /// (a large download never sits in memory); a body that breaks off counts as a failed try.
    fn exchange<T>(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
        read: impl Fn(&mut dyn Read) -> std::io::Result<T>,
    ) -> Result<(T, Option<String>)> {
        let url = format!("{}/api/v1/projects/{}{path}", self.base, self.project);
        let auth = format!("Bearer {}", self.token);
        self.retry.run(&url, || {
            let sent = match body {
                None => self.agent.get(&url).header("Authorization", &auth).call(),
                Some(b) => self
                    .agent
                    .post(&url)
                    .header("Authorization", &auth)
                    .send_json(b),
            };
            match sent {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let cursor = resp
                        .headers()
                        .get("X-Next-Cursor")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    match status {
                        200..=299 => match read(&mut resp.body_mut().as_reader()) {
                            Ok(body) => Ok(Ok((body, cursor))),
                            Err(e) => Ok(Err(format!("reading the answer: {e}"))),
                        },
                        400..=499 => {
                            let text = resp.body_mut().read_to_string().unwrap_or_default();
                            bail!("{url}: the annotator answered {status}: {text}");
                        }
                        status => Ok(Err(format!("status {status}"))),
                    }
                }
                Err(e) => Ok(Err(e.to_string())),
            }
        })
    }

    /// One page of description events after `after` (`status=all`: submissions, approvals and
    /// rejections) and the cursor after it.
    pub fn page(&self, after: i64) -> Result<(Vec<FeedEvent>, i64)> {
        let (body, next) = self.get(&format!(
            "/descriptions?after={after}&limit={PAGE}&status=all"
        ))?;
        let text = String::from_utf8(body).context("the feed is not UTF-8")?;
        let events = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str::<FeedEvent>(l)
                    .with_context(|| format!("feed after {after}, line {}: {l}", i + 1))
            })
            .collect::<Result<Vec<_>>>()?;
        let next = match next {
            Some(n) => n
                .parse()
                .with_context(|| format!("X-Next-Cursor {n:?} is not a number"))?,
            None => events.last().map_or(after, |e| e.cursor),
        };
        Ok((events, next))
    }

    /// Posts a model's descriptions (and priorities) of a round; the annotator stores them all or
    /// none.
    pub fn post_model_descriptions(
        &self,
        round: usize,
        system: &str,
        items: &[ModelDescription],
    ) -> Result<()> {
        let body = ModelDescriptions {
            round: i32::try_from(round).context("round number out of range")?,
            system: system.to_owned(),
            descriptions: items.to_vec(),
        };
        self.call("/model-descriptions", Some(&serde_json::to_value(&body)?))?;
        Ok(())
    }

    /// Sets the project's active ordering (accept-next by priority).
    pub fn set_ordering(&self, by_priority: bool) -> Result<()> {
        self.call(
            "/ordering",
            Some(&serde_json::to_value(Ordering { by_priority })?),
        )?;
        Ok(())
    }

    /// Downloads the project's MILANNOTATIONS export (every unit: open sets are described too)
    /// and unpacks it into `dest` as it arrives; `dest` appears whole or not at all.
    pub fn export_into(&self, dest: &Path) -> Result<()> {
        let parent = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)?;
        let (tmp, _) = self.exchange(
            "/export?format=milannotations&units=all&compression=none",
            None,
            |body| {
                // A fresh folder per try: a download that broke off leaves nothing behind.
                let tmp = tempfile::Builder::new()
                    .prefix(".exemplars.tmp-")
                    .tempdir_in(parent)?;
                tar::Archive::new(body).unpack(tmp.path())?;
                Ok(tmp)
            },
        )?;
        if dest.exists() {
            std::fs::remove_dir_all(dest)
                .with_context(|| format!("replacing {}", dest.display()))?;
        }
        std::fs::rename(tmp.keep(), dest)
            .with_context(|| format!("moving the export to {}", dest.display()))?;
        Ok(())
    }
}

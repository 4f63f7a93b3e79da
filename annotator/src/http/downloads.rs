//! Exports as HTTP downloads, for the API and the requester's pages alike: the MTurk CSV and
//! JSON lines whole (they are small), MILANNOTATIONS streamed as it is written.
//!
//! A MILANNOTATIONS download is planned first (the database read and every check it can answer:
//! every unit of a layer present, one exemplar count per layer), so a refusal is an ordinary
//! error response; then a blocking thread
//! writes the tar (gzip'd unless asked otherwise) into a bounded channel the response body
//! drains. The first bytes leave after the first unit; memory stays at a few chunks whatever
//! the size; a client that goes away stops the work (the next send fails). An error part-way is
//! logged and aborts the connection, so the client sees a truncated download (tar and gzip both
//! detect it), never a short file that looks complete.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::HttpResponse;
use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header;
use actix_web::web::{self, Bytes};
use serde::Deserialize;
use tokio::sync::mpsc;

use milan_shared::milannotations::FormatError;

use crate::export::{self, ExportError, Format, Plan, Units};
use crate::http::state::AppState;

/// How a MILANNOTATIONS tar travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `.tar.gz`: the zero rows of omitted units cost almost nothing.
    Gzip,
    /// `.tar`: for a client on the same machine (`trainer follow`), no compression work.
    None,
}

/// `?format=...&units=...&compression=...`, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    format: String,
    units: Option<String>,
    compression: Option<String>,
}

/// An export request, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportRequest {
    pub format: Format,
    pub units: Units,
    pub compression: Compression,
}

impl ExportQuery {
    pub fn parse(&self) -> Result<ExportRequest, String> {
        let format: Format = self.format.parse()?;
        if format != Format::Milannotations
            && let Some(name) = [("units", &self.units), ("compression", &self.compression)]
                .iter()
                .find_map(|(name, value)| value.is_some().then_some(name))
        {
            return Err(format!("{name} applies to format=milannotations only"));
        }
        let units = self
            .units
            .as_deref()
            .map_or(Ok(Units::default()), str::parse)?;
        let compression = match self.compression.as_deref() {
            None | Some("gzip") => Compression::Gzip,
            Some("none") => Compression::None,
            Some(other) => {
                return Err(format!("unknown compression {other:?}: use gzip or none"));
            }
        };
        Ok(ExportRequest {
            format,
            units,
            compression,
        })
    }
}

/// The export `request` of `project` as a download response.
pub async fn respond(
    state: &AppState,
    project: &str,
    request: ExportRequest,
) -> Result<HttpResponse, ExportError> {
    let st = state.clone();
    let name = project.to_owned();
    if request.format != Format::Milannotations {
        let (bytes, content_type, extension) = web::block(move || {
            export::whole(
                &st.engine,
                &name,
                request.format,
                st.net.public_url.as_ref(),
            )
        })
        .await
        .map_err(|e| ExportError::Io(io::Error::other(e.to_string())))??;
        return Ok(attachment(content_type, &format!("{project}.{extension}")).body(bytes));
    }
    let plan = web::block(move || Plan::of(&st.engine, &st.images, &name, request.units))
        .await
        .map_err(|e| ExportError::Io(io::Error::other(e.to_string())))??;
    let (content_type, extension) = match request.compression {
        Compression::Gzip => ("application/gzip", "tar.gz"),
        Compression::None => ("application/x-tar", "tar"),
    };
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let images = state.images.clone();
    let filename = format!("{project}.{extension}");
    let project = project.to_owned();
    std::thread::spawn(move || {
        let sink = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let written = match request.compression {
            Compression::Gzip => plan
                .write_archive(
                    &images,
                    flate2::write::GzEncoder::new(sink, flate2::Compression::fast()),
                )
                .and_then(|gz| Ok(gz.finish()?)),
            Compression::None => plan.write_archive(&images, sink),
        }
        .and_then(|mut sink| Ok(sink.flush()?));
        if let Err(e) = written {
            if closed(&e) {
                tracing::info!("MILANNOTATIONS export of {project}: the client went away");
            } else {
                tracing::error!("MILANNOTATIONS export of {project} failed part-way: {e}");
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
        }
    });
    Ok(attachment(content_type, &filename).body(ChannelBody { rx }))
}

fn attachment(content_type: &str, filename: &str) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    // Exports hold workers' ids and texts: no cache, shared or private, keeps a copy.
    response
        .content_type(content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    response
}

/// Bytes per message, and messages in flight: at most ~1 MiB buffered per download.
const CHUNK: usize = 64 * 1024;
const CHANNEL_CHUNKS: usize = 16;

/// Whether the export stopped because the client closed the download.
fn closed(e: &ExportError) -> bool {
    let kind = match e {
        ExportError::Io(e) => e.kind(),
        ExportError::Format(FormatError::Io { cause, .. }) => cause.kind(),
        _ => return false,
    };
    kind == io::ErrorKind::BrokenPipe
}

/// A `Write` that sends whole chunks down the channel, blocking while the client is behind.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            io::Error::new(io::ErrorKind::BrokenPipe, "the client closed the download")
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The response body: whatever the writer thread sends, until it hangs up.
struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl MessageBody for ChannelBody {
    type Error = io::Error;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, io::Error>>> {
        self.rx.poll_recv(cx)
    }
}

//! A MILANNOTATIONS root as a tar stream, written while it is read: no folder on disk, no array
//! in memory, so a server can send the first bytes of a large export at once.
//!
//! Entries are `<arch>/<dataset>/<layer>/{masks.npy,images.npy,ids.csv,omitted.csv}` and
//! `<arch>/<dataset>/annotations.csv`, byte for byte what [`super::DatasetWriter`] puts on disk.
//! Each array is produced unit by unit: a tar entry's size is in its header, and an array's size
//! is known from its shape before any row is read.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};

use super::error::FormatError;
use super::npy::LayerShape;
use super::writer::{annotations_csv, check_layer_name, ids_csv, npy_header_for, omitted_csv};
use super::{ANNOTATIONS_FILE, IDS_FILE, IMAGES_FILE, MASKS_FILE, OMITTED_FILE};
use crate::model_key::ModelKey;

/// Which array of a layer a row is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Array {
    /// (k, 1, H, W), values 0 or 1.
    Masks,
    /// (k, 3, H, W).
    Images,
}

/// Where an archived layer's rows come from. [`ArchiveWriter::layer`] asks for every present
/// unit's masks in unit order, then (for a layer with images) every present unit's images.
pub trait Rows {
    /// Appends one unit's row of `array` to `out` (exactly the row's length).
    fn row(&mut self, array: Array, unit: usize, out: &mut Vec<u8>) -> io::Result<()>;
}

/// One layer to archive.
#[derive(Debug, Clone, Copy)]
pub struct ArchivedLayer<'a> {
    pub name: &'a str,
    pub shape: LayerShape,
    pub with_images: bool,
    /// k source-image indices per unit, for every unit (omitted ones too).
    pub ids: &'a [Vec<u64>],
    /// Units left out: their rows are zero and omitted.csv names them.
    pub omitted: &'a BTreeSet<usize>,
}

/// Writes model folders into a tar stream; see the module documentation.
pub struct ArchiveWriter<W: Write> {
    tar: tar::Builder<W>,
    mtime: u64,
}

impl<W: Write> std::fmt::Debug for ArchiveWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("mtime", &self.mtime)
            .finish_non_exhaustive()
    }
}

impl<W: Write> ArchiveWriter<W> {
    pub fn new(out: W) -> Self {
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        ArchiveWriter {
            tar: tar::Builder::new(out),
            mtime,
        }
    }

    /// Writes one layer folder of `key`: masks.npy, images.npy (with images), ids.csv and, when
    /// units were left out, omitted.csv.
    pub fn layer(
        &mut self,
        key: &ModelKey,
        layer: ArchivedLayer<'_>,
        rows: &mut dyn Rows,
    ) -> Result<(), FormatError> {
        let folder = format!("{}/{}/{}", key.arch(), key.dataset(), layer.name);
        check_layer_name(folder.as_ref(), layer.name)?;
        if layer.ids.len() != layer.shape.units
            || layer.ids.iter().any(|row| row.len() != layer.shape.k)
        {
            return Err(FormatError::file(
                format!("{folder}/{IDS_FILE}").as_ref(),
                format!(
                    "ids for {} units of {} each are needed",
                    layer.shape.units, layer.shape.k
                ),
            ));
        }
        let mut arrays = vec![(Array::Masks, MASKS_FILE, 1)];
        if layer.with_images {
            arrays.push((Array::Images, IMAGES_FILE, 3));
        }
        for (array, file, channels) in arrays {
            let path = format!("{folder}/{file}");
            let header = npy_header_for("|u1", &layer.shape.dims(channels));
            let size = header.len() + layer.shape.units * layer.shape.unit_len(channels);
            let reader = NpyRows {
                header,
                array,
                row_len: layer.shape.unit_len(channels),
                units: layer.shape.units,
                omitted: layer.omitted,
                rows: &mut *rows,
                next_unit: 0,
                buf: Vec::new(),
                pos: 0,
            };
            self.entry(&path, size as u64, reader)?;
        }
        let ids = ids_csv(Vec::new(), layer.ids).map_err(|e| {
            FormatError::file(format!("{folder}/{IDS_FILE}").as_ref(), e.to_string())
        })?;
        self.bytes(&format!("{folder}/{IDS_FILE}"), &ids)?;
        if !layer.omitted.is_empty() {
            let units: Vec<usize> = layer.omitted.iter().copied().collect();
            let omitted = omitted_csv(Vec::new(), &units).map_err(|e| {
                FormatError::file(format!("{folder}/{OMITTED_FILE}").as_ref(), e.to_string())
            })?;
            self.bytes(&format!("{folder}/{OMITTED_FILE}"), &omitted)?;
        }
        Ok(())
    }

    /// Writes `key`'s annotations.csv (layer, unit, summary rows).
    pub fn annotations(
        &mut self,
        key: &ModelKey,
        rows: &[(String, u32, String)],
    ) -> Result<(), FormatError> {
        let path = format!("{}/{}/{ANNOTATIONS_FILE}", key.arch(), key.dataset());
        let csv = annotations_csv(Vec::new(), rows)
            .map_err(|e| FormatError::file(path.as_ref(), e.to_string()))?;
        self.bytes(&path, &csv)
    }

    /// Ends the archive (two zero blocks) and gives back the writer.
    pub fn finish(self) -> Result<W, FormatError> {
        self.tar
            .into_inner()
            .map_err(|e| FormatError::io("the archive's end".as_ref(), e))
    }

    fn bytes(&mut self, path: &str, contents: &[u8]) -> Result<(), FormatError> {
        self.entry(path, contents.len() as u64, contents)
    }

    fn entry(&mut self, path: &str, size: u64, data: impl Read) -> Result<(), FormatError> {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        header.set_entry_type(tar::EntryType::Regular);
        self.tar
            .append_data(&mut header, path, data)
            .map_err(|e| FormatError::io(path.as_ref(), e))
    }
}

/// An `.npy` file as a reader: the header, then each unit's row, asked of [`Rows`] only when
/// the tar writer gets to it (zeros for omitted units).
struct NpyRows<'a> {
    header: Vec<u8>,
    array: Array,
    row_len: usize,
    units: usize,
    omitted: &'a BTreeSet<usize>,
    rows: &'a mut dyn Rows,
    next_unit: usize,
    buf: Vec<u8>,
    pos: usize,
}

impl NpyRows<'_> {
    /// Refills `buf` with the next piece (the header, then one row); false at the end.
    fn refill(&mut self) -> io::Result<bool> {
        self.pos = 0;
        if !self.header.is_empty() {
            self.buf = std::mem::take(&mut self.header);
            return Ok(true);
        }
        if self.next_unit >= self.units {
            return Ok(false);
        }
        let unit = self.next_unit;
        self.next_unit += 1;
        self.buf.clear();
        if self.omitted.contains(&unit) {
            self.buf.resize(self.row_len, 0);
            return Ok(true);
        }
        self.rows.row(self.array, unit, &mut self.buf)?;
        if self.buf.len() != self.row_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "unit {unit}: got {} bytes, expected {}",
                    self.buf.len(),
                    self.row_len
                ),
            ));
        }
        if self.array == Array::Masks
            && let Some(bad) = self.buf.iter().find(|&&m| m > 1)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unit {unit}: mask value {bad}, masks hold only 0 and 1"),
            ));
        }
        Ok(true)
    }
}

impl Read for NpyRows<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.buf.len() {
            if !self.refill()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

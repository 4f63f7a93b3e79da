//! Writing a MILANNOTATIONS model folder, atomically.
//!
//! Everything goes into a hidden sibling folder `.<dataset>.tmp-<pid>-<n>` first; [`DatasetWriter::finish`]
//! syncs it and renames it over `<root>/<arch>/<dataset>` (an atomic swap on Linux when a folder is
//! already there). A writer dropped before `finish`
//! removes its temporary folder, so a failed run leaves nothing behind.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::FormatError;
use super::npy::LayerShape;
use super::{ANNOTATIONS_FILE, IDS_FILE, IMAGES_FILE, MASKS_FILE, OMITTED_FILE};
use crate::model_key::ModelKey;

/// Writes one model folder. Layers are written through [`LayerWriter`]s, descriptions with
/// [`DatasetWriter::describe`]; nothing is visible at the final path before [`DatasetWriter::finish`].
#[derive(Debug)]
pub struct DatasetWriter {
    final_dir: PathBuf,
    tmp_dir: PathBuf,
    layers: Vec<String>,
    annotations: Vec<(String, u32, String)>,
    finished: bool,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl DatasetWriter {
    /// Starts writing `<root>/<arch>/<dataset>`; an existing folder there is replaced on finish.
    pub fn create(root: &Path, key: &ModelKey) -> Result<Self, FormatError> {
        let parent = root.join(key.arch());
        fs::create_dir_all(&parent).map_err(|e| FormatError::io(&parent, e))?;
        let tmp_dir = parent.join(format!(
            ".{}.tmp-{}-{}",
            key.dataset(),
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&tmp_dir).map_err(|e| FormatError::io(&tmp_dir, e))?;
        Ok(DatasetWriter {
            final_dir: parent.join(key.dataset()),
            tmp_dir,
            layers: Vec::new(),
            annotations: Vec::new(),
            finished: false,
        })
    }

    /// Starts a layer: creates its arrays at full size (sparse, zero-filled) so units can be
    /// written in any order without holding the layer in memory.
    pub fn layer(
        &mut self,
        name: &str,
        shape: LayerShape,
        with_images: bool,
    ) -> Result<LayerWriter, FormatError> {
        check_layer_name(&self.tmp_dir, name)?;
        if self.layers.iter().any(|l| l == name) {
            return Err(FormatError::file(
                &self.tmp_dir,
                format!("layer {name:?} written twice"),
            ));
        }
        let dir = self.tmp_dir.join(name);
        fs::create_dir(&dir).map_err(|e| FormatError::io(&dir, e))?;
        let masks = ArrayFile::create(&dir.join(MASKS_FILE), shape, 1)?;
        let images = if with_images {
            Some(ArrayFile::create(&dir.join(IMAGES_FILE), shape, 3)?)
        } else {
            None
        };
        self.layers.push(name.to_owned());
        Ok(LayerWriter {
            dir,
            shape,
            masks,
            images,
            ids: vec![None; shape.units],
            omitted: Vec::new(),
        })
    }

    /// Adds one row to annotations.csv.
    pub fn describe(&mut self, layer: &str, unit: u32, summary: &str) {
        self.annotations
            .push((layer.to_owned(), unit, summary.to_owned()));
    }

    /// Writes an extra file beside annotations.csv (readers ignore files they do not know).
    pub fn write_extra(&self, name: &str, contents: &[u8]) -> Result<(), FormatError> {
        let path = self.tmp_dir.join(name);
        fs::write(&path, contents).map_err(|e| FormatError::io(&path, e))
    }

    /// Writes annotations.csv, syncs, and renames the folder into place. Fails if a layer was
    /// started but its [`LayerWriter::finish`] was never called.
    pub fn finish(mut self) -> Result<PathBuf, FormatError> {
        for layer in &self.layers {
            let ids = self.tmp_dir.join(layer).join(IDS_FILE);
            if !ids.is_file() {
                return Err(FormatError::file(
                    &ids,
                    format!("layer {layer} was started but never finished"),
                ));
            }
        }
        if !self.annotations.is_empty() {
            let path = self.tmp_dir.join(ANNOTATIONS_FILE);
            write_annotations(&path, &self.annotations)?;
        }
        sync_dir(&self.tmp_dir)?;
        if self.final_dir.exists() {
            replace_dir(&self.tmp_dir, &self.final_dir)?;
        } else {
            fs::rename(&self.tmp_dir, &self.final_dir)
                .map_err(|e| FormatError::io(&self.final_dir, e))?;
        }
        if let Some(parent) = self.final_dir.parent() {
            sync_dir(parent)?;
        }
        self.finished = true;
        Ok(self.final_dir.clone())
    }
}

impl Drop for DatasetWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_dir_all(&self.tmp_dir);
        }
    }
}

/// A layer's name becomes a folder: a plain name, never hidden (readers skip hidden folders), no
/// path separators. `at` is the folder the error names.
pub(crate) fn check_layer_name(at: &Path, name: &str) -> Result<(), FormatError> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
        return Err(FormatError::file(
            at,
            format!("invalid layer name {name:?}: it must be a plain folder name"),
        ));
    }
    Ok(())
}

/// Puts `new` where `old` is. On Linux the two folders swap in one atomic `renameat2` call, so a
/// reader sees the old folder or the new one, never neither; elsewhere (or on a file system without
/// RENAME_EXCHANGE) the old folder is moved aside first, leaving a short window without either.
fn replace_dir(new: &Path, old: &Path) -> Result<(), FormatError> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).ok();
        if let (Some(from), Some(to)) = (c(new), c(old)) {
            // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them as given.
            let swapped = unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    from.as_ptr(),
                    libc::AT_FDCWD,
                    to.as_ptr(),
                    libc::RENAME_EXCHANGE,
                )
            } == 0;
            if swapped {
                // `new` now names the previous folder.
                return fs::remove_dir_all(new).map_err(|e| FormatError::io(new, e));
            }
        }
    }
    let mut aside = new.as_os_str().to_owned();
    aside.push("-old");
    let aside = PathBuf::from(aside);
    fs::rename(old, &aside).map_err(|e| FormatError::io(old, e))?;
    fs::rename(new, old).map_err(|e| FormatError::io(old, e))?;
    fs::remove_dir_all(&aside).map_err(|e| FormatError::io(&aside, e))
}

fn write_annotations(path: &Path, rows: &[(String, u32, String)]) -> Result<(), FormatError> {
    let file = File::create(path).map_err(|e| FormatError::io(path, e))?;
    let file = annotations_csv(file, rows).map_err(|e| FormatError::file(path, e.to_string()))?;
    file.sync_all().map_err(|e| FormatError::io(path, e))
}

/// annotations.csv: the header `layer,unit,summary`, then one row per description.
pub(crate) fn annotations_csv<W: Write>(out: W, rows: &[(String, u32, String)]) -> csv::Result<W> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(["layer", "unit", "summary"])?;
    for (layer, unit, summary) in rows {
        writer.write_record([layer.as_str(), &unit.to_string(), summary.as_str()])?;
    }
    writer.into_inner().map_err(|e| e.into_error().into())
}

/// ids.csv: no header, one row of k source-image indices per unit.
pub(crate) fn ids_csv<W: Write>(out: W, rows: &[Vec<u64>]) -> csv::Result<W> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out);
    for row in rows {
        writer.write_record(row.iter().map(u64::to_string))?;
    }
    writer.into_inner().map_err(|e| e.into_error().into())
}

/// omitted.csv: the header `unit`, then the units whose rows an export left zero.
pub(crate) fn omitted_csv<W: Write>(out: W, units: &[usize]) -> csv::Result<W> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(["unit"])?;
    for unit in units {
        writer.write_record([unit.to_string()])?;
    }
    writer.into_inner().map_err(|e| e.into_error().into())
}

fn sync_dir(dir: &Path) -> Result<(), FormatError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FormatError::io(dir, e))
}

/// The `.npy` (version 1.0) header numpy's `np.save` writes for a C-ordered uint8 array, byte for
/// byte: the dict with a trailing `, `, the spare spaces numpy leaves so the first axis can grow in
/// place (room for 21 digits), then space padding to a multiple of 64 bytes and a newline.
/// Written here because ndarray-npy's header differs from numpy's in those bytes, and users diff
/// and checksum these files.
fn npy_header(shape: &[usize]) -> Vec<u8> {
    npy_header_for("|u1", shape)
}

/// The `.npy` header numpy writes for a C-ordered array of dtype `descr` (`|u1`, `<f4`, ...).
pub fn npy_header_for(descr: &str, shape: &[usize]) -> Vec<u8> {
    const MAGIC: &[u8] = b"\x93NUMPY\x01\x00";
    const ALIGN: usize = 64;
    const GROWTH_AXIS_MAX_DIGITS: usize = 21;
    let shape_repr = match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_repr}, }}");
    if let Some(first) = shape.first() {
        let digits = first.to_string().len();
        dict.push_str(&" ".repeat(GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits)));
    }
    // magic + u16 length + dict + padding + newline must be a multiple of ALIGN.
    let unpadded = MAGIC.len() + 2 + dict.len() + 1;
    let padding = (ALIGN - unpadded % ALIGN) % ALIGN;
    let header_len = dict.len() + padding + 1;
    let mut out = Vec::with_capacity(MAGIC.len() + 2 + header_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', padding));
    out.push(b'\n');
    out
}

#[derive(Debug)]
struct ArrayFile {
    path: PathBuf,
    file: File,
    data_offset: u64,
    unit_len: usize,
}

impl ArrayFile {
    fn create(path: &Path, shape: LayerShape, channels: usize) -> Result<Self, FormatError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| FormatError::io(path, e))?;
        let header = npy_header(&shape.dims(channels));
        let unit_len = shape.unit_len(channels);
        let data_offset = header.len() as u64;
        file.write_all_at(&header, 0)
            .and_then(|()| file.set_len(data_offset + (shape.units * unit_len) as u64))
            .map_err(|e| FormatError::io(path, e))?;
        Ok(ArrayFile {
            path: path.to_owned(),
            file,
            data_offset,
            unit_len,
        })
    }

    fn write_unit(&self, unit: usize, bytes: &[u8]) -> Result<(), FormatError> {
        if bytes.len() != self.unit_len {
            return Err(FormatError::file(
                &self.path,
                format!(
                    "unit {unit}: got {} bytes, expected {}",
                    bytes.len(),
                    self.unit_len
                ),
            ));
        }
        let offset = self.data_offset + (unit * self.unit_len) as u64;
        self.file
            .write_all_at(bytes, offset)
            .map_err(|e| FormatError::io(&self.path, e))
    }
}

/// Writes one layer's arrays and ids; see [`DatasetWriter::layer`].
#[derive(Debug)]
pub struct LayerWriter {
    dir: PathBuf,
    shape: LayerShape,
    masks: ArrayFile,
    images: Option<ArrayFile>,
    ids: Vec<Option<Vec<u64>>>,
    omitted: Vec<usize>,
}

impl LayerWriter {
    pub fn shape(&self) -> LayerShape {
        self.shape
    }

    /// Writes one unit: masks laid out (k, 1, H, W) with values 0/1, images (k, 3, H, W) exactly
    /// when the layer was created with images, and k source ids.
    pub fn write_unit(
        &mut self,
        unit: usize,
        masks: &[u8],
        images: Option<&[u8]>,
        ids: &[u64],
    ) -> Result<(), FormatError> {
        self.check_unit(unit, ids)?;
        if let Some(bad) = masks.iter().find(|&&m| m > 1) {
            return Err(FormatError::file(
                &self.masks.path,
                format!("unit {unit}: mask value {bad}, masks hold only 0 and 1"),
            ));
        }
        match (&self.images, images) {
            (Some(file), Some(bytes)) => file.write_unit(unit, bytes)?,
            (None, None) => {}
            (Some(file), None) => {
                return Err(FormatError::file(
                    &file.path,
                    format!("unit {unit}: the layer has images but none were given"),
                ));
            }
            (None, Some(_)) => {
                return Err(FormatError::file(
                    &self.dir,
                    format!("unit {unit}: images given for a layer created without images"),
                ));
            }
        }
        self.masks.write_unit(unit, masks)?;
        self.ids[unit] = Some(ids.to_vec());
        self.omitted.retain(|&u| u != unit);
        Ok(())
    }

    /// Leaves one unit out: its masks and images rows stay zero (sparse on disk), its ids are
    /// kept, and the layer's omitted.csv names it so readers know the rows hold nothing.
    pub fn omit(&mut self, unit: usize, ids: &[u64]) -> Result<(), FormatError> {
        self.check_unit(unit, ids)?;
        self.ids[unit] = Some(ids.to_vec());
        self.omitted.push(unit);
        Ok(())
    }

    fn check_unit(&self, unit: usize, ids: &[u64]) -> Result<(), FormatError> {
        if unit >= self.shape.units {
            return Err(FormatError::file(
                &self.dir,
                format!(
                    "unit {unit} out of range: the layer has {} units",
                    self.shape.units
                ),
            ));
        }
        if ids.len() != self.shape.k {
            return Err(FormatError::file(
                &self.dir.join(IDS_FILE),
                format!("unit {unit}: {} ids, expected {}", ids.len(), self.shape.k),
            ));
        }
        Ok(())
    }

    /// Writes ids.csv (and omitted.csv when units were left out) and syncs the arrays. Fails if
    /// a unit was never written.
    pub fn finish(mut self) -> Result<(), FormatError> {
        let path = self.dir.join(IDS_FILE);
        let mut rows = Vec::with_capacity(self.ids.len());
        for (unit, ids) in self.ids.into_iter().enumerate() {
            rows.push(ids.ok_or_else(|| {
                FormatError::file(&self.dir, format!("unit {unit} was never written"))
            })?);
        }
        let file = File::create(&path).map_err(|e| FormatError::io(&path, e))?;
        let file = ids_csv(file, &rows).map_err(|e| FormatError::file(&path, e.to_string()))?;
        file.sync_all().map_err(|e| FormatError::io(&path, e))?;
        if !self.omitted.is_empty() {
            self.omitted.sort_unstable();
            self.omitted.dedup();
            let path = self.dir.join(OMITTED_FILE);
            let file = File::create(&path).map_err(|e| FormatError::io(&path, e))?;
            let file = omitted_csv(file, &self.omitted)
                .map_err(|e| FormatError::file(&path, e.to_string()))?;
            file.sync_all().map_err(|e| FormatError::io(&path, e))?;
        }
        self.masks
            .file
            .sync_all()
            .map_err(|e| FormatError::io(&self.masks.path, e))?;
        if let Some(images) = &self.images {
            images
                .file
                .sync_all()
                .map_err(|e| FormatError::io(&images.path, e))?;
        }
        Ok(())
    }
}

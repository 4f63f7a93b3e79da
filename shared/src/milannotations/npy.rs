//! Memory-mapped uint8 arrays of shape (units, k, channels, height, width) in `.npy` files.
//!
//! The whole file is mapped, but only one unit is touched at a time, and [`U8Array::release`] hands
//! a unit's pages back to the kernel: iterating a 4.6 GB `images.npy` keeps the resident set at a
//! few units instead of growing to the file's size (file-backed pages count towards RSS).

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, UncheckedAdvice};
use ndarray::{ArrayView4, ArrayViewD, Ix4};
use ndarray_npy::{ViewNpyError, ViewNpyExt};

use super::error::FormatError;

/// Shape of a layer's exemplar arrays, without the channel axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerShape {
    pub units: usize,
    /// Exemplars per unit (15 in MILANNOTATIONS).
    pub k: usize,
    pub height: usize,
    pub width: usize,
}

impl LayerShape {
    pub fn dims(&self, channels: usize) -> [usize; 5] {
        [self.units, self.k, channels, self.height, self.width]
    }

    /// Bytes of one unit's exemplars with `channels` channels.
    pub fn unit_len(&self, channels: usize) -> usize {
        self.k * channels * self.height * self.width
    }
}

/// A read-only, memory-mapped 5-d uint8 array.
#[derive(Debug)]
pub struct U8Array {
    path: PathBuf,
    mmap: Mmap,
    data_offset: usize,
    dims: [usize; 5],
}

impl U8Array {
    /// Maps `path` and checks that it is a C-ordered uint8 array of 5 dimensions with all its data.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let file = File::open(path).map_err(|e| FormatError::io(path, e))?;
        // SAFETY: the map is read-only; like every reader of these files we assume nobody truncates
        // them while they are open (the writer only ever renames finished files into place).
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| FormatError::io(path, e))?;
        let (data_offset, dims) = {
            let view = ArrayViewD::<u8>::view_npy(&mmap).map_err(|e| describe(path, e))?;
            if view.ndim() != 5 {
                return Err(FormatError::file(
                    path,
                    format!(
                        "expected 5 dimensions (units, k, channels, height, width), found shape {:?}",
                        view.shape()
                    ),
                ));
            }
            if !view.is_standard_layout() {
                return Err(FormatError::file(
                    path,
                    "array is in Fortran order; save it in C order",
                ));
            }
            let offset = view.as_ptr() as usize - mmap.as_ptr() as usize;
            let s = view.shape();
            (offset, [s[0], s[1], s[2], s[3], s[4]])
        };
        Ok(U8Array {
            path: path.to_owned(),
            mmap,
            data_offset,
            dims,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// (units, k, channels, height, width)
    pub fn dims(&self) -> [usize; 5] {
        self.dims
    }

    pub fn shape(&self) -> LayerShape {
        LayerShape {
            units: self.dims[0],
            k: self.dims[1],
            height: self.dims[3],
            width: self.dims[4],
        }
    }

    pub fn channels(&self) -> usize {
        self.dims[2]
    }

    fn unit_range(&self, unit: usize) -> std::ops::Range<usize> {
        assert!(
            unit < self.dims[0],
            "unit {unit} out of range for {} units",
            self.dims[0]
        );
        let len = self.shape().unit_len(self.channels());
        let start = self.data_offset + unit * len;
        start..start + len
    }

    /// The raw bytes of one unit, laid out (k, channels, height, width).
    pub fn unit_bytes(&self, unit: usize) -> &[u8] {
        &self.mmap[self.unit_range(unit)]
    }

    /// One unit's exemplars as a (k, channels, height, width) view.
    pub fn unit(&self, unit: usize) -> ArrayView4<'_, u8> {
        let [_, k, c, h, w] = self.dims;
        ArrayView4::from_shape((k, c, h, w), self.unit_bytes(unit))
            .expect("unit slice has exactly k*c*h*w bytes")
            .into_dimensionality::<Ix4>()
            .expect("four dimensions")
    }

    /// Drops the unit's pages from this process's resident set. They stay in the page cache, and a
    /// later read of the unit maps them back in.
    pub fn release(&self, unit: usize) {
        let range = self.unit_range(unit);
        // madvise wants a page-aligned start; round inwards so neighbouring units keep their pages.
        let page = page_size();
        let start = range.start.div_ceil(page) * page;
        let end = range.end / page * page;
        if end > start {
            // SAFETY: the mapping is a read-only file mapping, so MADV_DONTNEED cannot lose data:
            // the next access faults the same bytes back in from the file.
            let _ = unsafe {
                self.mmap
                    .unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .unwrap_or(4096)
}

fn describe(path: &Path, err: ViewNpyError) -> FormatError {
    let message = match err {
        ViewNpyError::MissingBytes(n) => {
            format!("truncated array: {n} bytes of data missing (the header promises more)")
        }
        ViewNpyError::ExtraBytes(n) => format!("{n} unexpected bytes after the array data"),
        ViewNpyError::WrongDescriptor(descr) => {
            format!("wrong dtype {descr}: expected uint8 ('|u1')")
        }
        ViewNpyError::ParseHeader(e) => format!("not a valid .npy file: {e}"),
        ViewNpyError::NonNativeEndian => "array is not native-endian".to_owned(),
        other => format!("unreadable array: {other}"),
    };
    FormatError::file(path, message)
}

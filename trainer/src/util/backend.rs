//! The tensor backend, chosen at run time: `flex` (burn's CPU backend, the default) or, in a build
//! with the `tch` cargo feature, libtorch 2.9 (`tch` on the CPU, `tch-cuda` or `tch-cuda:N` on a
//! GPU).

use anyhow::{Result, bail};
use burn::tensor::Device;

/// The backends this build can run, for help texts and errors.
pub fn available() -> &'static str {
    if cfg!(feature = "tch") {
        "flex, tch, tch-cuda[:N]"
    } else {
        "flex (this build has no `tch` feature)"
    }
}

/// The device of backend `name`.
pub fn device(name: &str) -> Result<Device> {
    match name {
        "flex" => Ok(Device::flex()),
        #[cfg(feature = "tch")]
        "tch" => {
            #[allow(deprecated)] // burn 0.22 deprecates burn-tch; libtorch is the backend
            Ok(Device::libtorch())
        }
        #[cfg(feature = "tch")]
        cuda if cuda == "tch-cuda" || cuda.starts_with("tch-cuda:") => {
            let index: usize = match cuda.strip_prefix("tch-cuda:") {
                Some(i) => i
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--backend {cuda}: not a GPU index"))?,
                None => 0,
            };
            #[allow(deprecated)]
            Ok(Device::libtorch_cuda(index))
        }
        other if other.starts_with("tch") => bail!(
            "--backend {other}: this trainer was built without libtorch; build it with \
             `cargo build --release --features tch` after `scripts/install-libtorch` (see README)"
        ),
        other => bail!(
            "--backend {other}: unknown backend; available: {}",
            available()
        ),
    }
}

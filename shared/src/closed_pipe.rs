//! Command lines and closed pipes: `trainer score ... | head -1` stops reading after one line,
//! which is what the reader wanted, not a failure. Rust ignores SIGPIPE, so the next `println!`
//! panics ("failed printing to stdout: Broken pipe") and an explicit write returns `BrokenPipe`;
//! both binaries turn either into a quiet exit with status 0, so that scripts under
//! `set -o pipefail` keep going. (Restoring the default SIGPIPE action would end the process by
//! the signal, which `pipefail` counts as a failure, status 141.)
//!
//! Plumbing both command lines share; it knows nothing of the data contract.

use std::io;

/// Makes a `println!` into a closed pipe end the process quietly with status 0. Call first thing
/// in `main`; every other panic is reported as before.
pub fn exit_quietly_on_closed_pipe() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if is_closed_pipe_panic(message) {
            std::process::exit(0);
        }
        previous(info);
    }));
}

/// Whether a panic message is std's report of printing into a closed pipe.
pub fn is_closed_pipe_panic(message: &str) -> bool {
    // The OS's words for EPIPE ("Broken pipe (os error 32)" on Linux), whatever their case.
    message.starts_with("failed printing to std") && message.to_lowercase().contains("broken pipe")
}

/// Whether an error (or one of its causes) is a write into a closed pipe.
pub fn is_closed_pipe(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::BrokenPipe
        {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose cause is an I/O error, as `anyhow`'s context makes one.
    #[derive(Debug)]
    struct Writing(io::Error);

    impl std::fmt::Display for Writing {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("writing the scores")
        }
    }

    impl std::error::Error for Writing {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn closed_pipes_are_told_apart_from_other_failures() {
        let pipe = io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(is_closed_pipe_panic(
            "failed printing to stdout: Broken pipe (os error 32)"
        ));
        assert!(is_closed_pipe_panic(&format!(
            "failed printing to stdout: {pipe}"
        )));
        assert!(!is_closed_pipe_panic(
            "failed printing to stdout: No space left on device"
        ));
        assert!(!is_closed_pipe_panic("index out of bounds"));
        assert!(is_closed_pipe(&pipe));
        assert!(!is_closed_pipe(&io::Error::from(io::ErrorKind::NotFound)));
        assert!(is_closed_pipe(&Writing(io::Error::from(
            io::ErrorKind::BrokenPipe
        ))));
        assert!(!is_closed_pipe(&Writing(io::Error::other("disk full"))));
    }
}

//! Subcommands other than `run`, one module each.

use std::io::Write as _;

pub(crate) mod config;
pub(crate) mod hostname;
pub(crate) mod ops;
pub(crate) mod remote;
pub(crate) mod version;

/// Writes a command's output to stdout. A reader that goes away early (`dogd config check | head`)
/// is not an error worth a panic, so write errors are ignored.
pub(crate) fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

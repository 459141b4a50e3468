//! `dogd version`.

use std::process::ExitCode;

/// Arguments of `dogd version`.
#[derive(Debug, clap::Args)]
pub(crate) struct VersionArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// The version facts compiled into this binary.
pub(crate) struct BuildInfo {
    pub(crate) version: &'static str,
    pub(crate) commit: &'static str,
    pub(crate) rustc: &'static str,
}

pub(crate) const BUILD: BuildInfo = BuildInfo {
    version: env!("CARGO_PKG_VERSION"),
    commit: env!("DOGD_COMMIT"),
    rustc: env!("DOGD_RUSTC_VERSION"),
};

pub(crate) fn print(args: &VersionArgs) -> ExitCode {
    if args.json {
        let json = serde_json::json!({
            "version": BUILD.version,
            "commit": BUILD.commit,
            "rustc": BUILD.rustc,
        });
        super::emit(&format!("{json}\n"));
    } else {
        super::emit(&format!(
            "dogd {} - Commit: {} - Rust version: {}\n",
            BUILD.version, BUILD.commit, BUILD.rustc
        ));
    }
    ExitCode::SUCCESS
}

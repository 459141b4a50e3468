//! `dogd version`.

use std::process::ExitCode;

/// Arguments of `dogd version`.
#[derive(Debug, clap::Args)]
pub(crate) struct VersionArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Ask the running daemon for its version instead of printing this binary's.
    #[arg(long)]
    pub(crate) remote: bool,
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

/// `dogd version --remote`: the running daemon's version object.
pub(crate) fn print_remote(config: &dogd_config::Config, args: &VersionArgs) -> ExitCode {
    let asked = super::remote::block_on(async {
        let client = super::remote::client(config)?;
        let response = super::remote::success(client.get("/agent/version").await?)?;
        super::remote::json::<serde_json::Value>(&response)
    });
    match asked {
        Ok(version) if args.json => {
            super::emit(&format!("{version}\n"));
            ExitCode::SUCCESS
        }
        Ok(version) => {
            let field = |name: &str| version[name].to_string().trim_matches('"').to_owned();
            let mut text = format!(
                "dogd (running) {}.{}.{}",
                field("Major"),
                field("Minor"),
                field("Patch")
            );
            if !field("Pre").is_empty() {
                text.push_str(&format!("-{}", field("Pre")));
            }
            text.push_str(&format!(" - Commit: {}\n", field("Commit")));
            super::emit(&text);
            ExitCode::SUCCESS
        }
        Err(error) => super::remote::fail(&error),
    }
}

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

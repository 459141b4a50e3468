//! The `dogd` command: runs the daemon (`dogd run`) and talks to a running one.

mod cli;
mod logging;
mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dogd_config::{Config, Environment, RawConfig};

/// Exit code when the configuration is invalid (nothing was started).
const EXIT_BAD_CONFIG: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "dogd",
    version,
    about = "A Rust agent core that speaks the Datadog Agent's wire formats",
    propagate_version = true
)]
struct Cli {
    /// Path to datadog.yaml, or to the directory holding it (default: $DD_CONF_PATH, else built-in
    /// defaults with no file).
    #[arg(short = 'c', long = "cfgpath", global = true, value_name = "PATH")]
    cfgpath: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon in the foreground until SIGINT/SIGTERM or `dogd stop`.
    Run,
    /// Print dogd's version, commit and compiler.
    Version(cli::version::VersionArgs),
    /// Print the hostname the running daemon reports.
    Hostname,
    /// Show the running daemon's status (all sections, or one).
    Status(cli::ops::StatusArgs),
    /// Check the running daemon's health; exits non-zero when a component is unhealthy.
    Health(cli::ops::JsonArgs),
    /// Show the running daemon's configuration, or get/set runtime settings.
    Config(cli::ops::ConfigArgs),
    /// List the secret handles in use (never their values), or refresh them.
    Secret(cli::ops::SecretArgs),
    /// Build a flare archive (from the daemon, or locally when it is not running).
    Flare,
    /// Stop the running daemon and wait until it has exited.
    Stop,
    /// Per-metric DogStatsD counts (needs dogstatsd_metrics_stats_enable, also settable at run time).
    #[command(name = "dogstatsd-stats")]
    DogstatsdStats(cli::ops::JsonArgs),
}

fn main() -> ExitCode {
    let Cli { cfgpath, command } = Cli::parse();
    let env = Environment::from_process();
    if let Command::Version(args) = &command
        && !args.remote
    {
        return cli::version::print(args);
    }
    let Some(config) = load_config(cfgpath.as_deref(), &env) else {
        return ExitCode::from(EXIT_BAD_CONFIG);
    };
    match command {
        Command::Run => run::main(config),
        Command::Version(args) => cli::version::print_remote(&config, &args),
        Command::Hostname => cli::hostname::run(&config),
        Command::Status(args) => cli::ops::status(&config, &args),
        Command::Health(args) => cli::ops::health(&config, &args),
        Command::Config(args) => cli::ops::config(&config, &args),
        Command::Secret(args) => cli::ops::secret(&config, &args),
        Command::Flare => cli::ops::flare(&config),
        Command::Stop => cli::ops::stop(&config),
        Command::DogstatsdStats(args) => cli::ops::dogstatsd_stats(&config, &args),
    }
}

/// Loads the configuration, resolving `ENC[]` secrets through the secret backend, and validates
/// it; prints the error when it is invalid.
fn load_config(cfgpath: Option<&Path>, env: &Environment) -> Option<Config> {
    let path = dogd_config::resolve_config_path(cfgpath, env);
    let loaded = RawConfig::load(path.as_deref(), env)
        .map_err(|error| error.to_string())
        .and_then(|raw| {
            let secrets = dogd_ops::secrets::resolve(&raw).map_err(|error| error.to_string())?;
            Config::with_secrets(raw, &secrets).map_err(|error| error.to_string())
        })
        .and_then(|config| {
            run::validate(&config)
                .map(|()| config)
                .map_err(|error| error.to_string())
        });
    match loaded {
        Ok(config) => Some(config),
        Err(error) => {
            eprintln!("dogd: configuration error: {error}");
            None
        }
    }
}

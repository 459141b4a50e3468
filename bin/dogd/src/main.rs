//! The `dogd` command: runs the daemon (`dogd run`) and talks to a running one.

mod cli;
mod logging;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dogd_config::{Config, Environment};

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
    /// Run the daemon in the foreground until SIGINT/SIGTERM.
    Run,
    /// Print dogd's version, commit and compiler.
    Version(cli::version::VersionArgs),
    /// Print the hostname the running daemon reports.
    Hostname,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Load and validate the configuration, then print every effective setting with its source.
    Check(cli::config::CheckArgs),
}

fn main() -> ExitCode {
    let Cli { cfgpath, command } = Cli::parse();
    let env = Environment::from_process();
    match command {
        Command::Version(args) if !args.remote => cli::version::print(&args),
        Command::Version(args) => {
            let Some(config) = load_config(cfgpath.as_deref(), &env) else {
                return ExitCode::from(EXIT_BAD_CONFIG);
            };
            cli::version::print_remote(&config, &args)
        }
        Command::Hostname => {
            let Some(config) = load_config(cfgpath.as_deref(), &env) else {
                return ExitCode::from(EXIT_BAD_CONFIG);
            };
            cli::hostname::run(&config)
        }
        Command::Run => {
            let Some(config) = load_config(cfgpath.as_deref(), &env) else {
                return ExitCode::from(EXIT_BAD_CONFIG);
            };
            run::main(config)
        }
        Command::Config {
            action: ConfigCommand::Check(args),
        } => {
            let Some(config) = load_config(cfgpath.as_deref(), &env) else {
                return ExitCode::from(EXIT_BAD_CONFIG);
            };
            cli::config::check(&config, &args)
        }
    }
}

/// Loads and validates the configuration, printing the error when it is invalid.
fn load_config(cfgpath: Option<&std::path::Path>, env: &Environment) -> Option<Config> {
    let path = dogd_config::resolve_config_path(cfgpath, env);
    match Config::load(path.as_deref(), env)
        .and_then(|config| run::validate(&config).map(|()| config))
    {
        Ok(config) => Some(config),
        Err(error) => {
            eprintln!("dogd: configuration error: {error}");
            None
        }
    }
}

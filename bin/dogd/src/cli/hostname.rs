//! `dogd hostname`: the hostname the running daemon reports.

use std::process::ExitCode;

use dogd_config::{Config, GeneralConfig};

use super::remote::{self, RemoteError};

pub(crate) fn run(config: &Config) -> ExitCode {
    let asked = remote::block_on(async {
        let client = remote::client(config)?;
        let response = remote::success(client.get("/agent/hostname").await?)?;
        remote::json::<String>(&response)
    });
    match asked {
        Ok(hostname) => {
            super::emit(&format!("{hostname}\n"));
            ExitCode::SUCCESS
        }
        // As the agent does: with the daemon down, resolve locally and say so.
        Err(error) if error.is_not_running() => {
            eprintln!("dogd: {error}\ndogd: resolving the hostname locally instead");
            let configured = GeneralConfig::from_config(config)
                .ok()
                .and_then(|general| general.hostname);
            let resolved = remote::block_on(async {
                dogd_hostname::resolve(configured.as_deref())
                    .await
                    .map_err(|error| RemoteError::Decode(error.to_string()))
            });
            match resolved {
                Ok(hostname) => {
                    super::emit(&format!("{hostname}\n"));
                    ExitCode::SUCCESS
                }
                Err(error) => remote::fail(&error),
            }
        }
        Err(error) => remote::fail(&error),
    }
}

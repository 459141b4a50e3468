//! Start-to-ready time and idle memory of the real `dogd run`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use dogd_ipc::{AuthToken, IpcCert, IpcClient};

/// Arguments of `dogd-bench startup`.
#[derive(Debug, clap::Args)]
pub(crate) struct StartupArgs {
    /// The dogd binary to measure (build it with `cargo build --release -p dogd`).
    #[arg(long, default_value = "target/release/dogd")]
    binary: PathBuf,
    /// Number of starts.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Seconds to let the daemon idle before reading its RSS.
    #[arg(long, default_value_t = 3)]
    idle: u64,
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches(" kB").trim().parse().ok())
        .context("no VmRSS in /proc status")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) fn run(args: &StartupArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut ready_ms = Vec::new();
    let mut rss = Vec::new();
    for run in 0..args.runs {
        let home = tempfile::tempdir()?;
        let state = home.path().join("state");
        // The first start of a home creates the token and certificate; measure both kinds.
        let port = free_port()?;
        let spawn = || {
            Command::new(&args.binary)
                .arg("run")
                .env_clear()
                .env("HOME", home.path())
                .env("DD_RUN_PATH", &state)
                .env("DD_CMD_PORT", port.to_string())
                .env("DD_HOSTNAME", "bench-host")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        };
        for fresh in [true, false] {
            let started = Instant::now();
            let mut child =
                spawn().with_context(|| format!("starting {}", args.binary.display()))?;
            let answered = runtime.block_on(async {
                loop {
                    if started.elapsed() > Duration::from_secs(10) {
                        return false;
                    }
                    let token = AuthToken::load(&state.join("auth_token"));
                    let cert = IpcCert::load(&state.join("ipc_cert.pem"));
                    if let (Ok(token), Ok(cert)) = (token, cert)
                        && let Ok(client) = IpcClient::new("127.0.0.1", port, token, &cert)
                        && client
                            .get("/agent/version")
                            .await
                            .is_ok_and(|r| r.status.is_success())
                    {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            });
            let elapsed = started.elapsed();
            if !answered {
                let _ = child.kill();
                bail!("dogd did not answer within 10 s (run {run})");
            }
            ready_ms.push((fresh, elapsed.as_secs_f64() * 1e3));
            if !fresh {
                std::thread::sleep(Duration::from_secs(args.idle));
                rss.push(rss_kib(child.id())?);
            }
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }
    let summarize = |fresh: bool| {
        let mut values: Vec<f64> = ready_ms
            .iter()
            .filter(|(f, _)| *f == fresh)
            .map(|(_, ms)| *ms)
            .collect();
        values.sort_by(f64::total_cmp);
        (values[values.len() / 2], values[values.len() - 1])
    };
    let (first_median, first_max) = summarize(true);
    let (again_median, again_max) = summarize(false);
    rss.sort_unstable();
    println!(
        "dogd start-to-ready ({} runs each; process spawn until an authenticated GET /agent/version answers)\n",
        args.runs
    );
    println!("| Start | median | max |");
    println!("|---|---|---|");
    println!(
        "| first start (creates token + certificate) | {first_median:.1} ms | {first_max:.1} ms |"
    );
    println!("| later start (reuses them) | {again_median:.1} ms | {again_max:.1} ms |");
    #[allow(clippy::cast_precision_loss)]
    let median_rss = rss[rss.len() / 2] as f64 / 1024.0;
    #[allow(clippy::cast_precision_loss)]
    let max_rss = rss[rss.len() - 1] as f64 / 1024.0;
    println!(
        "\nIdle RSS after {} s: median {median_rss:.1} MiB, max {max_rss:.1} MiB",
        args.idle
    );
    Ok(())
}

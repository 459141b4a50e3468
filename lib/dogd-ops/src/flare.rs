//! Flares: a zip of everything support needs to understand a dogd (scrubbed config, runtime
//! settings, status, health, logs, telemetry, environment, version), every file scrubbed.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use dogd_scrubber::Scrubber;

/// Why a flare could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FlareError {
    /// The flare directory or file could not be written.
    #[error("cannot write the flare at {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The zip writer failed.
    #[error("cannot write the flare archive {path}: {source}")]
    Zip {
        /// The path.
        path: PathBuf,
        /// The zip error.
        #[source]
        source: zip::result::ZipError,
    },
}

/// One file of the flare: its path inside the archive and its contents (scrubbed when written).
#[derive(Clone, Debug)]
pub struct FlareEntry {
    /// Path inside the archive, below the flare's top folder (`status.log`, `logs/dogd.log`).
    pub name: String,
    /// Contents before scrubbing.
    pub contents: Vec<u8>,
}

impl FlareEntry {
    /// An entry from text.
    pub fn text(name: &str, contents: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            contents: contents.into().into_bytes(),
        }
    }
}

/// Writes `entries`, each scrubbed, to `<dir>/dogd-flare-<hostname>-<timestamp>.zip` (mode 0600)
/// and returns its path.
pub fn write_flare(
    dir: &Path,
    hostname: &str,
    entries: &[FlareEntry],
    scrubber: &Scrubber,
) -> Result<PathBuf, FlareError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| FlareError::Io { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let stamp = timestamp();
    let safe_host: String = hostname
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("dogd-flare-{safe_host}-{stamp}.zip"));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    let zip_error = |source| FlareError::Zip {
        path: path.clone(),
        source,
    };
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o600);
    for entry in entries {
        zip.start_file(format!("{safe_host}/{}", entry.name), options)
            .map_err(zip_error)?;
        // YAML gets the YAML-aware pass too: it also hides nested values under sensitive keys.
        let scrubbed = if entry.name.ends_with(".yaml") || entry.name.ends_with(".yml") {
            scrubber
                .scrub_yaml(&String::from_utf8_lossy(&entry.contents))
                .into_bytes()
        } else {
            scrubber.scrub_bytes(&entry.contents)
        };
        zip.write_all(&scrubbed).map_err(io(&path))?;
    }
    zip.finish().map_err(zip_error)?;
    Ok(path)
}

/// `YYYYMMDD-HHMMSS.mmm` in UTC, so two flares in one second do not collide.
fn timestamp() -> String {
    let t = dogd_core::clock::UtcTime::now();
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}.{:03}",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
    )
}

/// The last `max_bytes` of a file, starting at a line boundary.
pub fn tail_file(path: &Path, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(max_bytes);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(max_bytes).read_to_end(&mut bytes)?;
    if start > 0
        && let Some(newline) = bytes.iter().position(|b| *b == b'\n')
    {
        bytes.drain(..=newline);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn flare_zip_holds_scrubbed_entries_under_the_host_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let scrubber = Scrubber::new();
        scrubber.add_known_secrets(["hunter2-secret-value".to_owned()]);
        let entries = [
            FlareEntry::text(
                "config.yaml",
                "api_key: 0123456789abcdef0123456789abcdef\nsite: datadoghq.eu\n",
            ),
            FlareEntry::text(
                "logs/dogd.log",
                "resolved hunter2-secret-value from backend\n",
            ),
        ];
        let path =
            write_flare(&dir.path().join("flares"), "web-01", &entries, &scrubber).expect("flare");
        assert!(
            path.file_name()
                .expect("name")
                .to_string_lossy()
                .starts_with("dogd-flare-web-01-")
        );
        let mut archive =
            zip::ZipArchive::new(std::fs::File::open(&path).expect("open")).expect("zip");
        let mut names: Vec<String> = archive
            .file_names()
            .map(|name| name.expect("entry name").to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["web-01/config.yaml", "web-01/logs/dogd.log"]);
        let mut config = String::new();
        archive
            .by_name("web-01/config.yaml")
            .expect("entry")
            .read_to_string(&mut config)
            .expect("read");
        assert!(config.contains("site: datadoghq.eu"), "{config}");
        assert!(!config.contains("0123456789abcdef0123456789a"), "{config}");
        let mut log = String::new();
        archive
            .by_name("web-01/logs/dogd.log")
            .expect("entry")
            .read_to_string(&mut log)
            .expect("read");
        assert!(!log.contains("hunter2-secret-value"), "{log}");
    }

    #[test]
    fn tail_starts_at_a_line_boundary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        std::fs::write(&path, "first line\nsecond line\nthird\n").expect("write");
        assert_eq!(tail_file(&path, 12).expect("tail"), b"third\n");
        assert_eq!(
            tail_file(&path, 1000).expect("tail"),
            b"first line\nsecond line\nthird\n"
        );
    }
}

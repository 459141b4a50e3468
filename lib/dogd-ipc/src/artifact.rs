//! Read-or-create of a private file shared by several processes (the auth token, the IPC
//! certificate), without locks.
//!
//! The agent takes a `flock` and renames a temp file. We write the whole file under a unique temporary
//! name (mode 0600, fsync'd) and then `link(2)` it to the final name: `link` fails when the name
//! exists, so exactly one creator wins and every other process reads the winner's complete file. A
//! reader can never see a half-written file.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::IpcError;

/// One kind of private file.
pub(crate) struct Artifact<'a> {
    /// Human name for messages ("auth token").
    pub(crate) what: &'static str,
    /// The config key that sets the path, for messages.
    pub(crate) key: &'static str,
    pub(crate) path: &'a Path,
}

impl Artifact<'_> {
    fn io(&self, action: &'static str, source: std::io::Error) -> IpcError {
        IpcError::Io {
            what: self.what,
            path: self.path.to_owned(),
            action,
            source,
        }
    }

    /// Reads the file, refusing one that group or others may access.
    pub(crate) fn read(&self) -> Result<Vec<u8>, IpcError> {
        let file = fs::File::open(self.path).map_err(|source| match source.kind() {
            ErrorKind::NotFound => IpcError::Missing {
                what: self.what,
                path: self.path.to_owned(),
                key: self.key,
            },
            _ => self.io("read", source),
        })?;
        let meta = file.metadata().map_err(|source| self.io("stat", source))?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(IpcError::Permissions {
                what: self.what,
                path: self.path.to_owned(),
                mode,
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        std::io::Read::read_to_end(&mut &file, &mut bytes)
            .map_err(|source| self.io("read", source))?;
        Ok(bytes)
    }

    /// Reads the file, or creates it with `generate()` if absent. When several processes race, all
    /// end up reading the same (first-linked) contents.
    pub(crate) fn read_or_create(
        &self,
        generate: impl FnOnce() -> Result<Vec<u8>, IpcError>,
    ) -> Result<Vec<u8>, IpcError> {
        match self.read() {
            Err(IpcError::Missing { .. }) => {}
            other => return other,
        }
        let dir = self
            .path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| self.io("create directory", source))?;

        let contents = generate()?;
        let temp = self.temp_path(dir);
        let written = self.write_private(&temp, &contents).and_then(|()| {
            match fs::hard_link(&temp, self.path) {
                Ok(()) => {
                    tracing::info!("created {} at {}", self.what, self.path.display());
                    // Make the new name durable before anyone relies on it.
                    if let Ok(dir) = fs::File::open(dir) {
                        let _ = dir.sync_all();
                    }
                    Ok(())
                }
                // Another process won the race; its file is complete, read it below.
                Err(error) if error.kind() == ErrorKind::AlreadyExists => Ok(()),
                Err(source) => Err(self.io("link temporary file", source)),
            }
        });
        let _ = fs::remove_file(&temp);
        written?;
        self.read()
    }

    fn temp_path(&self, dir: &Path) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map_or_else(|| "artifact".into(), |name| name.to_string_lossy());
        // Unique per process (pid) and per call within it (counter): `create_new` must not collide.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let seq = NEXT.fetch_add(1, Ordering::Relaxed);
        dir.join(format!(".{name}.tmp-{}-{seq}", std::process::id()))
    }

    fn write_private(&self, temp: &Path, contents: &[u8]) -> Result<(), IpcError> {
        // The name is ours alone (pid + sequence); anything there is a leftover of a dead process
        // that had our pid.
        let _ = fs::remove_file(temp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(temp)
            .map_err(|source| self.io("create temporary file", source))?;
        file.write_all(contents)
            .and_then(|()| file.sync_all())
            .map_err(|source| self.io("write temporary file", source))
    }
}

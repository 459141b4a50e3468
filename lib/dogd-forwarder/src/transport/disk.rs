//! The disk queue: transactions that could not be sent are written to files under the storage
//! directory and read back, oldest file first, when the intake accepts them again.
//!
//! The agent keeps the same idea (`internal/retry/on_disk_retry_queue.go`: one file per batch,
//! bounded total size, oldest files removed first) with a protobuf format; ours is a simple binary
//! format of its own:
//!
//! ```text
//! magic    8 bytes  "DOGDFWQ\n"
//! version  u16 LE   1
//! count    u32 LE   number of records
//! record × count:
//!   endpoint        u8      1 series, 2 sketches, 3 check_run, 4 events
//!   created_at      i64 LE  microseconds since the Unix epoch
//!   content_type    u16 LE length + UTF-8 bytes
//!   content_encoding u8 length + UTF-8 bytes (length 0: none)
//!   body            u32 LE length + bytes
//! crc32    u32 LE   CRC-32 (IEEE) of every byte before it
//! ```
//!
//! Files are written to a `.tmp` name (mode 0600) and renamed to `<millis>-<seq>.retry`, so a crash
//! never leaves a half-written `.retry` file; the names sort in creation order. A file that cannot
//! be decoded is renamed with a `.corrupt` suffix, logged, and skipped.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::config::StorageConfig;
use super::error::ForwarderError;
use super::{Endpoint, Transaction, known_content_encoding, known_content_type};

/// Maps an I/O error of `action` on `path` to the forwarder's storage error.
fn storage_error(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> ForwarderError {
    let path = path.to_owned();
    move |source| ForwarderError::Storage {
        path,
        action,
        source,
    }
}

const MAGIC: &[u8; 8] = b"DOGDFWQ\n";
const VERSION: u16 = 1;
const HEADER_LEN: usize = 8 + 2 + 4;
const TRAILER_LEN: usize = 4;
const EXTENSION: &str = "retry";
const TMP_EXTENSION: &str = "tmp";
const CORRUPT_SUFFIX: &str = ".corrupt";

/// Bytes a record takes in a file.
pub(crate) fn record_len(tx: &Transaction) -> usize {
    1 + 8 + 2 + tx.content_type.len() + 1 + tx.content_encoding.map_or(0, str::len) + 4 + tx.size()
}

/// Encodes transactions as one file's content.
pub(crate) fn encode(transactions: &[Transaction]) -> Vec<u8> {
    let size = HEADER_LEN + transactions.iter().map(record_len).sum::<usize>() + TRAILER_LEN;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(
        &u32::try_from(transactions.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    for tx in transactions {
        out.push(tx.endpoint.code());
        let micros = tx.created_at.duration_since(UNIX_EPOCH).map_or(0, |since| {
            i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
        });
        out.extend_from_slice(&micros.to_le_bytes());
        let content_type = tx.content_type.as_bytes();
        // Both lengths come from our own constants; saturate rather than panic on a odd caller.
        out.extend_from_slice(&(content_type.len().min(u16::MAX as usize) as u16).to_le_bytes());
        out.extend_from_slice(&content_type[..content_type.len().min(u16::MAX as usize)]);
        let encoding = tx.content_encoding.unwrap_or("").as_bytes();
        out.push(encoding.len().min(u8::MAX as usize) as u8);
        out.extend_from_slice(&encoding[..encoding.len().min(u8::MAX as usize)]);
        out.extend_from_slice(&(tx.body.len() as u32).to_le_bytes());
        out.extend_from_slice(&tx.body);
    }
    let mut crc = flate2::Crc::new();
    crc.update(&out);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out
}

/// What a file held.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub(crate) transactions: Vec<Transaction>,
    /// Records skipped because their content type or encoding is unknown to this version.
    pub(crate) skipped: usize,
}

/// Decodes a file's content; any inconsistency is an error naming what is wrong.
pub(crate) fn decode(data: &[u8]) -> Result<Decoded, String> {
    if data.len() < HEADER_LEN + TRAILER_LEN {
        return Err(format!("file too short ({} bytes)", data.len()));
    }
    if &data[..8] != MAGIC {
        return Err("not a dogd forwarder queue file (bad magic)".to_owned());
    }
    let (content, trailer) = data.split_at(data.len() - TRAILER_LEN);
    let mut crc = flate2::Crc::new();
    crc.update(content);
    let stored = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    if crc.sum() != stored {
        return Err("checksum mismatch (the file is truncated or damaged)".to_owned());
    }
    let mut reader = Reader {
        data: content,
        at: 8,
    };
    let version = reader.u16()?;
    if version != VERSION {
        return Err(format!(
            "format version {version} is not supported (this dogd reads version {VERSION})"
        ));
    }
    let count = reader.u32()? as usize;
    let mut transactions = Vec::with_capacity(count.min(4096));
    let mut skipped = 0;
    for index in 0..count {
        let code = reader.u8()?;
        let endpoint = Endpoint::from_code(code)
            .ok_or_else(|| format!("record {index}: unknown endpoint code {code}"))?;
        let micros = reader.i64()?;
        let type_len = reader.u16()? as usize;
        let content_type = reader.str(type_len)?;
        let encoding_len = reader.u8()? as usize;
        let encoding = reader.str(encoding_len)?;
        let body_len = reader.u32()? as usize;
        let body = reader.bytes(body_len)?;
        let content_type = known_content_type(content_type);
        let content_encoding = if encoding.is_empty() {
            Some(None)
        } else {
            known_content_encoding(encoding).map(Some)
        };
        let (Some(content_type), Some(content_encoding)) = (content_type, content_encoding) else {
            skipped += 1;
            continue;
        };
        let created_at =
            UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).unwrap_or_default());
        transactions.push(Transaction {
            endpoint,
            body: Bytes::copy_from_slice(body),
            content_type,
            content_encoding,
            created_at,
        });
    }
    if reader.at != content.len() {
        return Err(format!(
            "{} unexpected bytes after the last record",
            content.len() - reader.at
        ));
    }
    Ok(Decoded {
        transactions,
        skipped,
    })
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.data.len())
            .ok_or_else(|| format!("record runs past the end of the file at byte {}", self.at))?;
        let slice = &self.data[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn str(&mut self, len: usize) -> Result<&'a str, String> {
        let at = self.at;
        std::str::from_utf8(self.bytes(len)?).map_err(|_| format!("invalid UTF-8 at byte {at}"))
    }
}

/// What loading the next file produced.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub(crate) transactions: Vec<Transaction>,
    /// Records that could not be restored (unknown content type or encoding).
    pub(crate) skipped: usize,
    /// Files set aside as corrupt (renamed `.corrupt`) on the way.
    pub(crate) corrupt: Vec<(PathBuf, String)>,
}

/// What storing a batch did.
#[derive(Debug, Default)]
pub(crate) struct Stored {
    /// Transactions written.
    pub(crate) written: usize,
    /// Files written.
    pub(crate) files: usize,
    /// Transactions lost to make room: the batch's oldest when it alone is over the limit, and
    /// those in the oldest files removed.
    pub(crate) dropped: usize,
}

/// What opening the store found.
#[derive(Debug, Default)]
pub(crate) struct Opened {
    pub(crate) files: usize,
    pub(crate) bytes: u64,
    pub(crate) outdated_removed: usize,
}

/// The queue files of one storage directory.
#[derive(Debug)]
pub(crate) struct DiskStore {
    dir: PathBuf,
    max_bytes: u64,
    /// Target size of one file, so that reading one back never overflows the memory queue.
    chunk_bytes: usize,
    /// `(path, size)`, oldest first.
    files: VecDeque<(PathBuf, u64)>,
    bytes: u64,
    seq: u64,
}

impl DiskStore {
    /// Creates (mode 0700) or opens the directory, removes outdated and leftover temporary files,
    /// and lists the queue files from earlier runs.
    pub(crate) fn open(
        config: &StorageConfig,
        chunk_bytes: usize,
    ) -> Result<(Self, Opened), ForwarderError> {
        let dir = config.path.clone();
        create_private_dir(&dir).map_err(storage_error("create directory", &dir))?;
        let mut found = Vec::new();
        let mut opened = Opened::default();
        let now = SystemTime::now();
        for entry in fs::read_dir(&dir).map_err(storage_error("list directory", &dir))? {
            let entry = entry.map_err(storage_error("list directory", &dir))?;
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            match path.extension().and_then(|ext| ext.to_str()) {
                Some(EXTENSION) => {}
                Some(TMP_EXTENSION) => {
                    // An interrupted write: its content never became a queue file.
                    let _ = fs::remove_file(&path);
                    continue;
                }
                _ => continue,
            }
            let age = meta
                .modified()
                .ok()
                .and_then(|modified| now.duration_since(modified).ok());
            if age.is_some_and(|age| age > config.max_age) {
                tracing::warn!(
                    "forwarder: removing queue file {} older than {} days (forwarder_outdated_file_in_days): its points are too old for the intake",
                    path.display(),
                    config.max_age.as_secs() / 86_400
                );
                let _ = fs::remove_file(&path);
                opened.outdated_removed += 1;
                continue;
            }
            found.push((path, meta.len()));
        }
        found.sort();
        let bytes = found.iter().map(|(_, size)| size).sum();
        opened.files = found.len();
        opened.bytes = bytes;
        Ok((
            Self {
                dir,
                max_bytes: config.max_bytes,
                chunk_bytes: chunk_bytes.max(1),
                files: found.into(),
                bytes,
                seq: 0,
            },
            opened,
        ))
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn files(&self) -> usize {
        self.files.len()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Size of the newest file, the next one [`DiskStore::take_newest`] reads.
    pub(crate) fn next_size(&self) -> Option<u64> {
        self.files.back().map(|(_, size)| *size)
    }

    /// Writes transactions (oldest first) to new files of about `chunk_bytes` each, removing the
    /// oldest files when over `max_bytes`.
    pub(crate) fn store(
        &mut self,
        mut transactions: Vec<Transaction>,
    ) -> Result<Stored, ForwarderError> {
        let mut stored = Stored::default();
        transactions.sort_by_key(|tx| tx.created_at);
        // A batch larger than the whole store keeps its newest transactions.
        let overhead = (HEADER_LEN + TRAILER_LEN) as u64;
        let mut total: u64 = overhead
            + transactions
                .iter()
                .map(|tx| record_len(tx) as u64)
                .sum::<u64>();
        let mut skip = 0;
        while total > self.max_bytes && skip < transactions.len() {
            total -= record_len(&transactions[skip]) as u64;
            skip += 1;
        }
        stored.dropped += skip;
        let mut chunk = Vec::new();
        let mut chunk_len = 0;
        for tx in transactions.into_iter().skip(skip) {
            let len = record_len(&tx);
            if !chunk.is_empty() && chunk_len + len > self.chunk_bytes {
                self.write_chunk(std::mem::take(&mut chunk), &mut stored)?;
                chunk_len = 0;
            }
            chunk_len += len;
            chunk.push(tx);
        }
        if !chunk.is_empty() {
            self.write_chunk(chunk, &mut stored)?;
        }
        Ok(stored)
    }

    fn write_chunk(
        &mut self,
        chunk: Vec<Transaction>,
        stored: &mut Stored,
    ) -> Result<(), ForwarderError> {
        let data = encode(&chunk);
        let size = data.len() as u64;
        while !self.files.is_empty() && self.bytes + size > self.max_bytes {
            stored.dropped += self.remove_oldest();
        }
        let (tmp, path) = self.next_names();
        let written = (|| {
            let mut file = create_private_file(&tmp)?;
            file.write_all(&data)?;
            // The point of the file is to survive a crash or a power cut right after stop.
            file.sync_all()
        })();
        if let Err(source) = written {
            let _ = fs::remove_file(&tmp);
            return Err(storage_error("write file", &tmp)(source));
        }
        fs::rename(&tmp, &path).map_err(|source| {
            let _ = fs::remove_file(&tmp);
            storage_error("rename file", &path)(source)
        })?;
        self.bytes += size;
        self.files.push_back((path, size));
        stored.written += chunk.len();
        stored.files += 1;
        Ok(())
    }

    /// Removes the oldest file; returns how many transactions it held (read from its header).
    fn remove_oldest(&mut self) -> usize {
        let Some((path, size)) = self.files.pop_front() else {
            return 0;
        };
        self.bytes = self.bytes.saturating_sub(size);
        let count = read_count(&path).unwrap_or(0);
        tracing::error!(
            "forwarder: the disk queue is full (forwarder_storage_max_size_in_bytes = {}); removing its oldest file {} ({count} transactions dropped)",
            self.max_bytes,
            path.display()
        );
        let _ = fs::remove_file(&path);
        count
    }

    /// Reads and removes the newest file (the agent reads its disk queue back newest first too,
    /// matching the send order). A file that cannot be decoded is renamed `.corrupt` and the next
    /// one is tried.
    pub(crate) fn take_newest(&mut self) -> Loaded {
        let mut loaded = Loaded::default();
        while let Some((path, size)) = self.files.pop_back() {
            self.bytes = self.bytes.saturating_sub(size);
            let result = fs::read(&path)
                .map_err(|error| format!("cannot read it: {error}"))
                .and_then(|data| decode(&data));
            match result {
                Ok(decoded) => {
                    if let Err(error) = fs::remove_file(&path) {
                        // Sending it again on the next start is better than losing it now.
                        tracing::warn!(
                            "forwarder: cannot remove queue file {} after reading it: {error}; its transactions may be sent twice",
                            path.display()
                        );
                    }
                    loaded.transactions = decoded.transactions;
                    loaded.skipped = decoded.skipped;
                    return loaded;
                }
                Err(reason) => {
                    let aside = set_aside(&path);
                    tracing::error!(
                        "forwarder: queue file {} is unreadable ({reason}); moved it to {} and skipped it. Delete it once inspected",
                        path.display(),
                        aside.display()
                    );
                    loaded.corrupt.push((aside, reason));
                }
            }
        }
        loaded
    }

    fn next_names(&mut self) -> (PathBuf, PathBuf) {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        loop {
            self.seq += 1;
            let stem = format!("{millis:016}-{:06}", self.seq);
            let path = self.dir.join(format!("{stem}.{EXTENSION}"));
            if !path.exists() {
                return (self.dir.join(format!("{stem}.{TMP_EXTENSION}")), path);
            }
        }
    }
}

fn read_count(path: &Path) -> Option<usize> {
    let mut header = [0u8; HEADER_LEN];
    File::open(path).ok()?.read_exact(&mut header).ok()?;
    (&header[..8] == MAGIC)
        .then(|| u32::from_le_bytes([header[10], header[11], header[12], header[13]]) as usize)
}

/// Renames a file with the `.corrupt` suffix; returns where it now is.
fn set_aside(path: &Path) -> PathBuf {
    let mut aside = path.as_os_str().to_owned();
    aside.push(CORRUPT_SUFFIX);
    let aside = PathBuf::from(aside);
    match fs::rename(path, &aside) {
        Ok(()) => aside,
        Err(error) => {
            // Never read it again in this run; removing is the only way to make sure of that.
            tracing::warn!(
                "forwarder: cannot rename {} aside ({error}); removing it",
                path.display()
            );
            let _ = fs::remove_file(path);
            path.to_owned()
        }
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        // The files hold API payloads; other users have no business listing them.
        tracing::info!(
            "forwarder: restricting the disk queue directory {} to its owner (mode {mode:04o} → 0700)",
            dir.display()
        );
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

fn create_private_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{CONTENT_TYPE_JSON, CONTENT_TYPE_PROTOBUF};

    fn sample(endpoint: Endpoint, body: &[u8]) -> Transaction {
        Transaction::new(
            endpoint,
            Bytes::copy_from_slice(body),
            CONTENT_TYPE_PROTOBUF,
            Some("zstd"),
        )
    }

    #[test]
    fn a_batch_round_trips_through_the_file_format() {
        let mut json = Transaction::new(
            Endpoint::Events,
            Bytes::from_static(b"{}"),
            CONTENT_TYPE_JSON,
            None,
        );
        json.created_at = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let batch = vec![sample(Endpoint::Series, b"\x01\x02\x03"), json];
        let decoded = decode(&encode(&batch)).expect("decodes");
        assert_eq!(decoded.skipped, 0);
        assert_eq!(decoded.transactions.len(), 2);
        let (first, second) = (&decoded.transactions[0], &decoded.transactions[1]);
        assert_eq!(first.endpoint, Endpoint::Series);
        assert_eq!(&first.body[..], b"\x01\x02\x03");
        assert_eq!(first.content_type, CONTENT_TYPE_PROTOBUF);
        assert_eq!(first.content_encoding, Some("zstd"));
        assert_eq!(second.content_encoding, None);
        assert_eq!(second.created_at, batch[1].created_at);
    }

    #[test]
    fn any_flipped_byte_is_caught_by_the_checksum() {
        let data = encode(&[sample(Endpoint::Sketches, b"payload")]);
        for at in 0..data.len() {
            let mut damaged = data.clone();
            damaged[at] ^= 0x40;
            assert!(decode(&damaged).is_err(), "flip at {at} went unnoticed");
        }
        assert!(decode(&data[..data.len() - 1]).is_err());
    }

    #[test]
    fn store_keeps_the_newest_when_over_the_limit_and_removes_oldest_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Each 100-byte body makes a 160-byte file; three fit in 500 bytes, four do not.
        let config = StorageConfig::new(dir.path().join("q"), 500).expect("enabled");
        let (mut store, opened) = DiskStore::open(&config, 150).expect("open");
        assert_eq!(opened.files, 0);
        let batch: Vec<Transaction> = (0..3u8)
            .map(|i| sample(Endpoint::Series, &[i; 100]))
            .collect();
        let stored = store.store(batch).expect("store");
        assert_eq!(stored.written, 3);
        assert_eq!(stored.files, 3);
        assert_eq!(store.bytes(), 480);
        // A fourth file does not fit: the oldest goes.
        let stored = store
            .store(vec![sample(Endpoint::Series, &[9; 100])])
            .expect("store");
        assert_eq!(stored.dropped, 1);
        assert_eq!(store.files(), 3);
        let newest = store.take_newest();
        assert_eq!(&newest.transactions[0].body[..], &[9; 100]);
        let next = store.take_newest();
        assert_eq!(&next.transactions[0].body[..], &[2; 100]);
    }
}

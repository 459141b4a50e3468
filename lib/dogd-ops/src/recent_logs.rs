//! The last log lines, kept in memory so a flare has logs even when `log_file` is not set.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

/// A bounded ring of recent log lines. Cheap to clone; usable as an `io::Write` sink (each write
/// is split into lines).
#[derive(Clone, Debug)]
pub struct RecentLogs {
    inner: Arc<Mutex<Ring>>,
}

#[derive(Debug)]
struct Ring {
    lines: VecDeque<String>,
    capacity: usize,
    /// A line written in several pieces, not yet ended by a newline.
    partial: String,
}

impl RecentLogs {
    /// Keeps the last `capacity` lines.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Ring {
                lines: VecDeque::with_capacity(capacity.min(4096)),
                capacity,
                partial: String::new(),
            })),
        }
    }

    /// The lines kept, oldest first.
    pub fn snapshot(&self) -> Vec<String> {
        let ring = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        ring.lines.iter().cloned().collect()
    }
}

impl Write for RecentLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut ring = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        ring.partial.push_str(&String::from_utf8_lossy(buf));
        while let Some(end) = ring.partial.find('\n') {
            let line: String = ring.partial.drain(..=end).collect();
            if ring.lines.len() == ring.capacity {
                ring.lines.pop_front();
            }
            if ring.capacity > 0 {
                ring.lines.push_back(line.trim_end_matches('\n').to_owned());
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_joining_partial_writes() {
        let mut logs = RecentLogs::new(2);
        logs.write_all(b"one\ntw").expect("write");
        logs.write_all(b"o\nthree\n").expect("write");
        assert_eq!(logs.snapshot(), ["two", "three"]);
    }
}

//! The IPC auth token: 32 random bytes, hex-encoded, shared through a 0600 file.

use std::path::Path;

use crate::artifact::Artifact;
use crate::error::IpcError;

/// The shortest token accepted (the agent's `authTokenMinimalLen`).
pub const MIN_TOKEN_LEN: usize = 32;

const WHAT: &str = "auth token";
const KEY: &str = "auth_token_file_path";

/// The bearer token every API request must carry. Never printed: `Debug` shows only its length.
#[derive(Clone)]
pub struct AuthToken(String);

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthToken(<{} chars>)", self.0.len())
    }
}

impl AuthToken {
    /// Reads the token at `path`, creating it if absent (what the daemon does at start).
    pub fn load_or_create(path: &Path) -> Result<Self, IpcError> {
        let artifact = Artifact {
            what: WHAT,
            key: KEY,
            path,
        };
        let bytes = artifact.read_or_create(generate)?;
        Self::parse(path, &bytes)
    }

    /// Reads an existing token (what the CLI does); a missing file is an error saying how to get one.
    pub fn load(path: &Path) -> Result<Self, IpcError> {
        let bytes = Artifact {
            what: WHAT,
            key: KEY,
            path,
        }
        .read()?;
        Self::parse(path, &bytes)
    }

    /// Validates token file contents: printable ASCII (it travels in an HTTP header), at least
    /// [`MIN_TOKEN_LEN`] characters. A trailing newline, as `echo` writes, is ignored.
    fn parse(path: &Path, bytes: &[u8]) -> Result<Self, IpcError> {
        let invalid = |reason: String| IpcError::InvalidToken {
            path: path.to_owned(),
            reason,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| invalid("it is not text".to_owned()))?;
        let token = text.trim_end_matches(['\n', '\r']);
        if let Some(bad) = token.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(invalid(format!(
                "it contains {bad:?}; a token is printable ASCII without spaces"
            )));
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(invalid(format!(
                "it is {} characters long, shorter than the minimum of {MIN_TOKEN_LEN}",
                token.len()
            )));
        }
        Ok(Self(token.to_owned()))
    }

    /// Wraps a token value (tests, or a token received from elsewhere). The same rules as for a
    /// file apply.
    pub fn from_value(value: &str) -> Result<Self, IpcError> {
        Self::parse(Path::new("<value>"), value.as_bytes())
    }

    /// The token, for the `Authorization` header of outgoing requests.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this token, compared in constant time.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        // The length of the token is not a secret.
        if expected.len() != candidate.len() {
            return false;
        }
        // Every byte pair is compared, with no exit at the first difference. One `black_box` on
        // the result keeps the optimizer from turning this back into an early-exit comparison;
        // `subtle` puts one on every byte, which showed in the per-request cost.
        let difference = expected
            .iter()
            .zip(candidate)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

/// 32 bytes from the OS CSPRNG, lower-case hex (64 characters), no newline: the agent's format.
fn generate() -> Result<Vec<u8>, IpcError> {
    let mut raw = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw).map_err(|_| {
        IpcError::Generate {
            what: WHAT,
            reason: "the OS random source failed".to_owned(),
        }
    })?;
    Ok(hex(&raw).into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn created_token_is_64_hex_chars_in_a_0600_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/auth_token");
        let token = AuthToken::load_or_create(&path).expect("create");
        assert_eq!(token.expose().len(), 64);
        assert!(
            token
                .expose()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            token.expose()
        );
        // Reused on the next start.
        assert_eq!(
            AuthToken::load_or_create(&path).expect("reuse").expose(),
            token.expose()
        );
        // No temporary file is left behind.
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub"))
                .expect("list")
                .count(),
            1
        );
    }

    #[test]
    fn rejects_token_shorter_than_32_chars() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("auth_token");
        std::fs::write(&path, "0123456789abcdef0123456789abcde").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let error = AuthToken::load_or_create(&path).expect_err("too short");
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(
            message.contains("31 characters long, shorter than the minimum of 32"),
            "{message}"
        );
    }

    #[test]
    fn rejects_token_file_readable_by_others_and_names_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("auth_token");
        std::fs::write(&path, "a".repeat(64)).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let message = AuthToken::load(&path)
            .expect_err("world readable")
            .to_string();
        assert_eq!(
            message,
            format!(
                "auth token at {0} is accessible by group/others (mode 0644): run `chmod 600 {0}`",
                path.display()
            )
        );
    }

    #[test]
    fn rejects_token_with_spaces_or_binary() {
        assert!(AuthToken::from_value(&format!("{} x", "a".repeat(40))).is_err());
        assert!(AuthToken::from_value(&format!("{}\u{7f}", "a".repeat(40))).is_err());
        assert!(AuthToken::from_value(&format!("{}\n", "a".repeat(40))).is_ok());
    }

    #[test]
    fn missing_token_for_the_cli_says_how_to_get_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let message = AuthToken::load(&dir.path().join("auth_token"))
            .expect_err("missing")
            .to_string();
        assert!(
            message.contains("created by the first `dogd run`"),
            "{message}"
        );
        assert!(message.contains("auth_token_file_path"), "{message}");
    }

    #[test]
    fn eight_concurrent_creators_converge_on_one_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("auth_token");
        let barrier = std::sync::Barrier::new(8);
        let tokens: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        AuthToken::load_or_create(&path)
                            .expect("create or read")
                            .expose()
                            .to_owned()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        assert!(tokens.iter().all(|token| token == &tokens[0]), "{tokens:?}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), tokens[0]);
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("list").count(),
            1,
            "temp files cleaned up"
        );
    }

    #[test]
    fn matches_only_the_exact_token() {
        let token = AuthToken::from_value(&"b".repeat(64)).expect("token");
        assert!(token.matches("b".repeat(64).as_bytes()));
        assert!(!token.matches("b".repeat(63).as_bytes()));
        assert!(!token.matches(format!("{}c", "b".repeat(63)).as_bytes()));
        assert!(!token.matches(b""));
    }

    #[test]
    fn debug_does_not_print_the_token() {
        let token = AuthToken::from_value(&"s".repeat(64)).expect("token");
        assert_eq!(format!("{token:?}"), "AuthToken(<64 chars>)");
    }
}

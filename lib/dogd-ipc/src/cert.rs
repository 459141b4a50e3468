//! The IPC certificate: a self-signed ECDSA P-256 certificate and its key, in one 0600 PEM file,
//! shared by the daemon (server) and its clients (which pin it).

use std::path::Path;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivateSec1KeyDer, ServerName};

use crate::artifact::Artifact;
use crate::error::IpcError;

const WHAT: &str = "IPC certificate";
const KEY: &str = "ipc_cert_file_path";

/// Validity of a new certificate, as the agent does: it is pinned, not trusted through a CA, so
/// expiry only gets in the way.
const VALIDITY_DAYS: i64 = 50 * 365;

/// The names every IPC certificate covers.
pub const DEFAULT_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The loaded certificate and key.
#[derive(Clone)]
pub struct IpcCert {
    cert: CertificateDer<'static>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for IpcCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpcCert")
            .field("cert_der_len", &self.cert.len())
            .finish_non_exhaustive()
    }
}

impl IpcCert {
    /// Reads the certificate at `path`, creating it if absent with SANs for [`DEFAULT_HOSTS`] and
    /// `extra_hosts`. An existing certificate is reused as is (clients have pinned it); a configured
    /// host it does not cover is logged as a warning.
    pub fn load_or_create(path: &Path, extra_hosts: &[String]) -> Result<Self, IpcError> {
        let mut hosts: Vec<String> = DEFAULT_HOSTS.iter().map(|h| (*h).to_owned()).collect();
        for host in extra_hosts {
            if !hosts.contains(host) {
                hosts.push(host.clone());
            }
        }
        let artifact = Artifact {
            what: WHAT,
            key: KEY,
            path,
        };
        let pem = artifact.read_or_create(|| generate(&hosts))?;
        let cert = Self::parse(path, &pem)?;
        for host in extra_hosts {
            if !cert.covers(host) {
                tracing::warn!(
                    "IPC certificate at {} does not cover host {host}; clients checking host names will refuse it (delete the file and restart dogd to create one that does)",
                    path.display()
                );
            }
        }
        Ok(cert)
    }

    /// Reads an existing certificate (what the CLI does).
    pub fn load(path: &Path) -> Result<Self, IpcError> {
        let pem = Artifact {
            what: WHAT,
            key: KEY,
            path,
        }
        .read()?;
        Self::parse(path, &pem)
    }

    fn parse(path: &Path, pem: &[u8]) -> Result<Self, IpcError> {
        let corrupt = |reason: String| IpcError::CorruptCertificate {
            path: path.to_owned(),
            reason,
        };
        let cert = CertificateDer::pem_slice_iter(pem)
            .next()
            .ok_or_else(|| corrupt("no CERTIFICATE block".to_owned()))?
            .map_err(|error| corrupt(format!("unreadable CERTIFICATE block: {error}")))?;
        let key = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|error| corrupt(format!("no usable private key block: {error}")))?;
        webpki::EndEntityCert::try_from(&cert)
            .map_err(|error| corrupt(format!("the certificate does not parse: {error}")))?;
        // The key must be the certificate's key, or every handshake would fail later.
        let provider = crate::tls::provider();
        let signing = provider
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|error| corrupt(format!("the private key does not load: {error}")))?;
        CertifiedKey::new(vec![cert.clone()], signing)
            .keys_match()
            .map_err(|error| corrupt(format!("the key does not match the certificate: {error}")))?;
        Ok(Self {
            cert,
            key: Arc::new(key),
        })
    }

    /// The certificate in DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// A copy of the private key, for building TLS configs.
    pub(crate) fn key_der(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    /// Whether `presented` is exactly this certificate.
    pub fn is_this_cert(&self, presented: &CertificateDer<'_>) -> bool {
        self.cert.as_ref() == presented.as_ref()
    }

    /// Whether the certificate's SANs cover `host` (a DNS name or an IP address).
    pub fn covers(&self, host: &str) -> bool {
        let Ok(name) = ServerName::try_from(host) else {
            return false;
        };
        webpki::EndEntityCert::try_from(&self.cert)
            .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
    }
}

/// A new self-signed certificate for `hosts`: ECDSA P-256, usable for both server and client
/// authentication (the daemon serves with it, clients present it for mTLS), not a CA (a pinned
/// certificate does not need to sign others, and rustls refuses CA certificates as end entities).
fn generate(hosts: &[String]) -> Result<Vec<u8>, IpcError> {
    let fail = |reason: String| IpcError::Generate { what: WHAT, reason };
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|error| fail(format!("key generation failed: {error}")))?;
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())
        .map_err(|error| fail(format!("invalid host name: {error}")))?;
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Datadog, Inc.");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "dogd IPC");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(VALIDITY_DAYS);
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params
        .self_signed(&key)
        .map_err(|error| fail(format!("signing failed: {error}")))?;
    // The agent writes the key as SEC1 ("EC PRIVATE KEY"), which its Go clients expect; rcgen only
    // gives PKCS#8, so the key is re-encoded.
    let sec1 = sec1::from_p256_pkcs8(&key.serialize_der())
        .ok_or_else(|| fail("unexpected PKCS#8 layout from the key generator".to_owned()))?;
    let key_pem = PrivateSec1KeyDer::from(sec1);
    let mut pem = cert.pem();
    pem.push_str(&pem_block("EC PRIVATE KEY", key_pem.secret_sec1_der()));
    Ok(pem.into_bytes())
}

fn pem_block(label: &str, der: &[u8]) -> String {
    let encoded = base64_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn base64_encode(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Re-encoding a P-256 PKCS#8 key as SEC1 `ECPrivateKey` (RFC 5915) with the curve named.
mod sec1 {
    /// `1.2.840.10045.3.1.7`, prime256v1.
    const P256_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

    /// Reads one DER TLV at the start of `input`: (tag, contents, rest).
    fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 2 || rest.len() < count {
                return None;
            }
            let len = rest[..count]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[count..])
        };
        if rest.len() < len {
            return None;
        }
        Some((tag, &rest[..len], &rest[len..]))
    }

    fn encode(tag: u8, contents: &[u8], out: &mut Vec<u8>) {
        out.push(tag);
        match contents.len() {
            len @ 0..=0x7f => out.push(len as u8),
            len @ 0x80..=0xff => out.extend([0x81, len as u8]),
            len => out.extend([0x82, (len >> 8) as u8, len as u8]),
        }
        out.extend_from_slice(contents);
    }

    /// PKCS#8 `SEQUENCE { INTEGER 0, AlgorithmIdentifier, OCTET STRING { ECPrivateKey } }`, where
    /// the inner ECPrivateKey (as ring writes it) has no curve parameters. Returns a SEC1 key with
    /// `[0] prime256v1` added, as Go's `x509.MarshalECPrivateKey` writes.
    pub(super) fn from_p256_pkcs8(pkcs8: &[u8]) -> Option<Vec<u8>> {
        let (0x30, outer, _) = tlv(pkcs8)? else {
            return None;
        };
        let (0x02, _version, rest) = tlv(outer)? else {
            return None;
        };
        let (0x30, _algorithm, rest) = tlv(rest)? else {
            return None;
        };
        let (0x04, inner, _) = tlv(rest)? else {
            return None;
        };
        let (0x30, ec, _) = tlv(inner)? else {
            return None;
        };
        let (0x02, version, rest) = tlv(ec)? else {
            return None;
        };
        let (0x04, secret, mut rest) = tlv(rest)? else {
            return None;
        };
        let mut public_key = None;
        while !rest.is_empty() {
            let (tag, contents, next) = tlv(rest)?;
            if tag == 0xa1 {
                public_key = Some(contents);
            }
            rest = next;
        }
        let mut body = Vec::with_capacity(128);
        encode(0x02, version, &mut body);
        encode(0x04, secret, &mut body);
        let mut oid = Vec::with_capacity(10);
        encode(0x06, P256_OID, &mut oid);
        encode(0xa0, &oid, &mut body);
        if let Some(public_key) = public_key {
            encode(0xa1, public_key, &mut body);
        }
        let mut out = Vec::with_capacity(body.len() + 4);
        encode(0x30, &body, &mut out);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn created_certificate_is_a_0600_pem_with_cert_then_sec1_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ipc_cert.pem");
        let cert =
            IpcCert::load_or_create(&path, &["cmd.example.internal".to_owned()]).expect("create");
        let pem = std::fs::read_to_string(&path).expect("read");
        let cert_at = pem
            .find("-----BEGIN CERTIFICATE-----")
            .expect("certificate block");
        let key_at = pem
            .find("-----BEGIN EC PRIVATE KEY-----")
            .expect("SEC1 key block");
        assert!(cert_at < key_at);
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        for host in ["localhost", "127.0.0.1", "::1", "cmd.example.internal"] {
            assert!(cert.covers(host), "{host}");
        }
        assert!(!cert.covers("example.com"));
    }

    #[test]
    fn certificate_is_reused_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ipc_cert.pem");
        let first = IpcCert::load_or_create(&path, &[]).expect("create");
        let second = IpcCert::load_or_create(&path, &[]).expect("reuse");
        assert!(first.is_this_cert(second.cert_der()));
        let loaded = IpcCert::load(&path).expect("read-only load");
        assert!(first.is_this_cert(loaded.cert_der()));
    }

    #[test]
    fn corrupt_certificate_is_an_error_and_is_not_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ipc_cert.pem");
        let garbage = "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n";
        std::fs::write(&path, garbage).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let message = IpcCert::load_or_create(&path, &[])
            .expect_err("corrupt")
            .to_string();
        assert!(
            message.starts_with(&format!("IPC certificate at {} is corrupt", path.display())),
            "{message}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).expect("still there"),
            garbage
        );
    }

    #[test]
    fn certificate_with_another_key_is_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.pem"), dir.path().join("b.pem"));
        IpcCert::load_or_create(&a, &[]).expect("a");
        IpcCert::load_or_create(&b, &[]).expect("b");
        let a_pem = std::fs::read_to_string(&a).expect("read a");
        let b_pem = std::fs::read_to_string(&b).expect("read b");
        let key_at = |pem: &str| pem.find("-----BEGIN EC PRIVATE KEY-----").expect("key");
        let mixed = format!("{}{}", &a_pem[..key_at(&a_pem)], &b_pem[key_at(&b_pem)..]);
        std::fs::write(&a, mixed).expect("write mixed");
        let message = IpcCert::load(&a).expect_err("mismatched key").to_string();
        assert!(
            message.contains("the key does not match the certificate"),
            "{message}"
        );
    }

    #[test]
    fn eight_concurrent_creators_converge_on_one_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ipc_cert.pem");
        let barrier = std::sync::Barrier::new(8);
        let certs: Vec<IpcCert> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        IpcCert::load_or_create(&path, &[]).expect("create or read")
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        assert!(
            certs
                .iter()
                .all(|cert| certs[0].is_this_cert(cert.cert_der()))
        );
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }
}

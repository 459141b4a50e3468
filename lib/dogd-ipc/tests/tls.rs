//! Real TLS handshakes between the IPC server and client configurations.

use std::sync::Arc;

use dogd_ipc::{ClientAuth, IpcCert, PeerIdentity, client_config, server_config};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn cert_in(dir: &tempfile::TempDir, name: &str) -> IpcCert {
    IpcCert::load_or_create(&dir.path().join(name), &[]).expect("certificate")
}

/// Accepts one connection with `server_cert`, reports what it saw, echoes one byte.
async fn serve_once(
    server_cert: IpcCert,
    ipc_cert: IpcCert,
) -> (
    u16,
    tokio::task::JoinHandle<Option<(PeerIdentity, Option<Vec<u8>>)>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let acceptor = TlsAcceptor::from(server_config(&server_cert).expect("server config"));
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.ok()?;
        let mut tls = acceptor.accept(tcp).await.ok()?;
        let (_, session) = tls.get_ref();
        let identity = PeerIdentity::of(&ipc_cert, session.peer_certificates());
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.ok()?;
        tls.write_all(&byte).await.ok()?;
        tls.shutdown().await.ok()?;
        Some((identity, alpn))
    });
    (port, task)
}

async fn connect(port: u16, config: Arc<rustls::ClientConfig>) -> std::io::Result<()> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut tls = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await?;
    tls.write_all(b"x").await?;
    let mut byte = [0u8; 1];
    tls.read_exact(&mut byte).await?;
    Ok(())
}

#[tokio::test]
async fn pinned_client_with_ipc_certificate_is_identified_as_the_ipc_peer_over_h2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = cert_in(&dir, "ipc_cert.pem");
    let (port, server) = serve_once(cert.clone(), cert.clone()).await;
    let client = client_config(&cert, ClientAuth::IpcCertificate, &[b"h2"]).expect("client config");
    connect(port, client).await.expect("handshake");
    let (identity, alpn) = server.await.expect("server task").expect("server side");
    assert_eq!(identity, PeerIdentity::IpcCertificate);
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn token_only_client_is_anonymous_and_http11_alpn_is_offered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = cert_in(&dir, "ipc_cert.pem");
    let (port, server) = serve_once(cert.clone(), cert.clone()).await;
    let client =
        client_config(&cert, ClientAuth::TokenOnly, &[b"http/1.1"]).expect("client config");
    connect(port, client).await.expect("handshake");
    let (identity, alpn) = server.await.expect("server task").expect("server side");
    assert_eq!(identity, PeerIdentity::Anonymous);
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn pinned_client_refuses_a_server_with_another_self_signed_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ipc = cert_in(&dir, "ipc_cert.pem");
    let impostor = cert_in(&dir, "impostor.pem");
    let (port, server) = serve_once(impostor, ipc.clone()).await;
    let client = client_config(&ipc, ClientAuth::TokenOnly, &[b"h2"]).expect("client config");
    let error = connect(port, client).await.expect_err("impostor refused");
    assert!(
        error.to_string().contains("invalid peer certificate"),
        "{error}"
    );
    assert!(server.await.expect("server task").is_none());
}

#[tokio::test]
async fn client_presenting_another_certificate_is_anonymous_not_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ipc = cert_in(&dir, "ipc_cert.pem");
    let stranger = cert_in(&dir, "stranger.pem");
    let (port, server) = serve_once(ipc.clone(), ipc.clone()).await;
    // The stranger pins the real server certificate but presents its own as client certificate.
    let config =
        client_config(&ipc, ClientAuth::OtherCertificate(stranger), &[b"h2"]).expect("config");
    connect(port, config).await.expect("handshake succeeds");
    let (identity, _) = server.await.expect("server task").expect("server side");
    assert_eq!(identity, PeerIdentity::Anonymous);
}

#[test]
fn openssl_reads_the_key_as_a_named_curve_sec1_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ipc_cert.pem");
    IpcCert::load_or_create(&path, &[]).expect("certificate");
    let output = std::process::Command::new("openssl")
        .args(["ec", "-noout", "-text", "-in"])
        .arg(&path)
        .output()
        .expect("openssl is installed");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("ASN1 OID: prime256v1"), "{text}");
    let cert = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&path)
        .output()
        .expect("openssl x509");
    let text = String::from_utf8_lossy(&cert.stdout);
    assert!(
        text.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
        "{text}"
    );
    assert!(
        text.contains("DNS:localhost") && text.contains("IP Address:127.0.0.1"),
        "{text}"
    );
}

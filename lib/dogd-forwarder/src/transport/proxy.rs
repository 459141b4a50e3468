//! Intake connections through an HTTP proxy (`proxy.https`, `proxy.http`, `proxy.no_proxy`): the
//! connection is a CONNECT tunnel through the proxy, with TLS to the intake inside it, so the
//! proxy never sees the API key or the payloads. `proxy.http` is used for `http://` intake URLs
//! (fake intakes, local relays) the same way, so that proxy must allow CONNECT to their port.

use std::fmt;

use base64::Engine as _;
use http::Uri;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The most a proxy's answer to CONNECT may hold before its blank line.
const MAX_CONNECT_ANSWER: usize = 8 * 1024;

/// One proxy: where it listens and the credentials it wants, if any.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// `http://host:port`: what the connector dials, and what messages show.
    uri: Uri,
    /// The `Proxy-Authorization` header value (`Basic …`), from the URL's `user:password@`.
    authorization: Option<String>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credentials stay out of logs and status output.
        f.debug_struct("Proxy")
            .field("uri", &self.uri)
            .field("credentials", &self.authorization.is_some())
            .finish()
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.uri.to_string().trim_end_matches('/'))
    }
}

impl Proxy {
    /// Parses `http://[user[:password]@]host[:port]` (port 80 when absent, as the agent's Go
    /// HTTP client assumes; the scheme may be left out).
    ///
    /// # Errors
    ///
    /// A scheme other than `http`, no host, a bad port, or a path: the reason, for the config error.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let rest = match raw.split_once("://") {
            Some(("http", rest)) => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "the proxy scheme must be http (the tunnel to the intake is TLS already), not {scheme}"
                ));
            }
            None => raw,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err("a proxy URL has no path".to_owned());
        }
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((credentials, address)) => (Some(credentials), address),
            None => (None, rest),
        };
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (
                host,
                port.parse::<u16>()
                    .map_err(|_| format!("{port:?} is not a port"))?,
            ),
            _ => (address, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("the proxy URL has no host".to_owned());
        }
        let bracketed = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let uri = format!("http://{bracketed}:{port}")
            .parse::<Uri>()
            .map_err(|error| format!("{host:?} is not a host name or address: {error}"))?;
        let authorization = credentials.map(|credentials| {
            let decoded = percent_decode(credentials);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(decoded)
            )
        });
        Ok(Self { uri, authorization })
    }

    /// The proxy's own URL (`http://host:port`, no credentials), to open the TCP connection to.
    pub(crate) fn uri(&self) -> &Uri {
        &self.uri
    }

    #[cfg(test)]
    fn address(&self) -> (String, u16) {
        let host = self.uri.host().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        (host.to_owned(), self.uri.port_u16().unwrap_or_default())
    }
}

/// `%XX` escapes in URL credentials (a password with `@` or `:` has to be written escaped).
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    decoded
}

/// The proxies of the forwarder and the hosts reached without them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    /// For `http://` intake URLs (`proxy.http`).
    pub http: Option<Proxy>,
    /// For `https://` intake URLs (`proxy.https`).
    pub https: Option<Proxy>,
    /// Hosts reached directly (`proxy.no_proxy`): an exact host, or a domain (`example.com` or
    /// `.example.com`) covering its subdomains; `*` bypasses the proxy for everything.
    pub no_proxy: Vec<String>,
}

impl ProxyConfig {
    /// Whether any proxy is set.
    pub fn is_enabled(&self) -> bool {
        self.http.is_some() || self.https.is_some()
    }

    /// The proxy to reach `uri` through, if any. `localhost` and loopback addresses are always
    /// reached directly, as the agent's Go proxy function does.
    pub fn for_target(&self, uri: &Uri) -> Option<&Proxy> {
        let proxy = match uri.scheme_str() {
            Some("https") => self.https.as_ref(),
            _ => self.http.as_ref(),
        }?;
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
        if host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
        {
            return None;
        }
        let bypassed = self.no_proxy.iter().any(|entry| {
            let entry = entry.trim();
            let domain = entry.trim_start_matches('.');
            entry == "*"
                || host.eq_ignore_ascii_case(domain)
                || (host.len() > domain.len()
                    && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
                    && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain))
        });
        (!bypassed).then_some(proxy)
    }
}

/// Asks the proxy on `stream` for a tunnel to `authority` (`host:port`) and waits for its 200.
/// The stream then carries the intake connection.
pub(crate) async fn open_tunnel(
    stream: &mut TcpStream,
    proxy: &Proxy,
    authority: &str,
) -> Result<(), String> {
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(authorization) = &proxy.authorization {
        request.push_str("Proxy-Authorization: ");
        request.push_str(authorization);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|error| format!("proxy {proxy}: cannot send CONNECT: {error}"))?;
    // Read the answer a byte at a time: anything after its blank line already belongs to the
    // tunnel, and a proxy's answer is a few dozen bytes.
    let mut answer = Vec::with_capacity(128);
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() >= MAX_CONNECT_ANSWER {
            return Err(format!(
                "proxy {proxy}: its answer to CONNECT is over {MAX_CONNECT_ANSWER} bytes"
            ));
        }
        let byte = stream.read_u8().await.map_err(|error| {
            format!("proxy {proxy}: connection ended during CONNECT to {authority}: {error}")
        })?;
        answer.push(byte);
    }
    let status_line = answer
        .split(|byte| *byte == b'\n')
        .next()
        .map(|line| String::from_utf8_lossy(line).trim_end().to_owned())
        .unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(200..=299) => Ok(()),
        Some(407) => Err(format!(
            "proxy {proxy} wants credentials (407{}); set them in the proxy URL as http://user:password@host:port",
            if proxy.authorization.is_some() {
                ", and refused the ones given"
            } else {
                ""
            }
        )),
        _ => Err(format!(
            "proxy {proxy} refused the tunnel to {authority}: {status_line:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_and_credentials() {
        let proxy = Proxy::parse("http://user:p%40ss@proxy.internal:3128").expect("valid");
        assert_eq!(proxy.address(), ("proxy.internal".to_owned(), 3128));
        // base64("user:p@ss")
        assert_eq!(proxy.authorization.as_deref(), Some("Basic dXNlcjpwQHNz"));
        assert_eq!(proxy.to_string(), "http://proxy.internal:3128");
        assert!(!format!("{proxy:?}").contains("dXNl"));

        let bare = Proxy::parse("10.0.0.1").expect("valid");
        assert_eq!(bare.address(), ("10.0.0.1".to_owned(), 80));
        assert_eq!(bare.authorization, None);
        let v6 = Proxy::parse("http://[::1]:8888/").expect("valid");
        assert_eq!(v6.address(), ("::1".to_owned(), 8888));
    }

    #[test]
    fn rejects_proxy_urls_it_cannot_use() {
        for (raw, reason) in [
            ("https://proxy:443", "scheme"),
            ("socks5://proxy:1080", "scheme"),
            ("http://proxy:99999", "port"),
            ("http://:3128", "host"),
            ("http://proxy:3128/path", "path"),
        ] {
            let error = Proxy::parse(raw).expect_err(raw);
            assert!(error.contains(reason), "{raw}: {error}");
        }
    }

    #[test]
    fn no_proxy_matches_hosts_and_domains_only() {
        let config = ProxyConfig {
            http: None,
            https: Proxy::parse("http://proxy:3128").ok(),
            no_proxy: vec![
                "localhost".to_owned(),
                ".corp.example".to_owned(),
                "datadoghq.eu".to_owned(),
            ],
        };
        let through = |url: &str| {
            config
                .for_target(&url.parse::<Uri>().expect("uri"))
                .is_some()
        };
        assert!(through("https://7-0-0-app.agent.datadoghq.com"));
        assert!(!through("https://localhost:8443"));
        assert!(!through("https://intake.corp.example"));
        assert!(!through("https://app.datadoghq.eu"));
        assert!(through("https://notdatadoghq.eu"));
        // Loopback is never proxied.
        assert!(!through("https://127.0.0.1:8443"));
        assert!(!through("https://[::1]:8443"));
        // No http proxy set: http URLs go direct.
        assert!(!through("http://intake.example:8080"));
    }
}

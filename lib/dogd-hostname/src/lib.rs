//! The hostname dogd reports: the configured `hostname`, else the OS hostname (its FQDN when the
//! resolver knows one), validated per RFC 1123.

#![warn(missing_docs)]

use std::time::Duration;

/// Longest hostname accepted (RFC 1123 / the agent's check).
pub const MAX_LEN: usize = 255;

/// How long the FQDN lookup may take before the short OS hostname is used instead; a slow resolver
/// must not hold up start-up.
const FQDN_LOOKUP_TIMEOUT: Duration = Duration::from_millis(500);

/// `AI_CANONNAME` on Linux: ask getaddrinfo for the canonical (fully qualified) name.
const AI_CANONNAME: i32 = 0x0002;

/// Why no valid hostname could be determined.
#[derive(Debug, thiserror::Error)]
pub enum HostnameError {
    /// The configured or OS hostname breaks RFC 1123.
    #[error("invalid hostname {name:?} (from {origin}): {reason}")]
    Invalid {
        /// The name.
        name: String,
        /// `the hostname setting` or `the OS`.
        origin: &'static str,
        /// What rule it breaks.
        reason: String,
    },
    /// The OS hostname could not be read.
    #[error("cannot read the OS hostname: {0}; set `hostname` in datadog.yaml or DD_HOSTNAME")]
    Os(#[source] std::io::Error),
}

/// Resolves the hostname to report. A configured name is validated and used as is; otherwise the
/// OS hostname, upgraded to its FQDN when the resolver answers quickly with a valid one.
pub async fn resolve(configured: Option<&str>) -> Result<String, HostnameError> {
    if let Some(name) = configured {
        validate(name).map_err(|reason| HostnameError::Invalid {
            name: name.to_owned(),
            origin: "the hostname setting",
            reason,
        })?;
        return Ok(name.to_owned());
    }
    let os = nix::unistd::gethostname()
        .map_err(|errno| HostnameError::Os(errno.into()))?
        .to_string_lossy()
        .into_owned();
    validate(&os).map_err(|reason| HostnameError::Invalid {
        name: os.clone(),
        origin: "the OS",
        reason: format!("{reason}; set `hostname` in datadog.yaml or DD_HOSTNAME"),
    })?;
    if let Some(fqdn) = fqdn(&os).await
        && fqdn != os
    {
        tracing::debug!("using FQDN {fqdn} of OS hostname {os}");
        return Ok(fqdn);
    }
    Ok(os)
}

/// The canonical name the resolver gives for `host`, if it answers in time with a valid,
/// non-local name.
async fn fqdn(host: &str) -> Option<String> {
    let owned = host.to_owned();
    let lookup = tokio::task::spawn_blocking(move || {
        let hints = dns_lookup::AddrInfoHints {
            flags: AI_CANONNAME,
            address: 0,
            socktype: 0,
            protocol: 0,
        };
        dns_lookup::getaddrinfo(Some(&owned), None, Some(hints))
            .ok()?
            .filter_map(Result::ok)
            .find_map(|info| info.canonname)
    });
    let canonical = tokio::time::timeout(FQDN_LOOKUP_TIMEOUT, lookup)
        .await
        .ok()?
        .ok()??;
    (validate(&canonical).is_ok() && canonical.contains('.')).then_some(canonical)
}

/// Checks RFC 1123 syntax (labels of 1–63 letters, digits and hyphens, not starting or ending with
/// a hyphen; 255 characters in all) and refuses local-only names, as the agent does. Returns why
/// not.
pub fn validate(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".to_owned());
    }
    if name.len() > MAX_LEN {
        return Err(format!(
            "it is {} characters long, more than {MAX_LEN}",
            name.len()
        ));
    }
    let lower = name.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "localhost" | "localhost.localdomain" | "localhost6.localdomain6" | "ip6-localhost"
    ) {
        return Err("it is a local-only name".to_owned());
    }
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() {
            return Err("it has an empty label (two dots in a row, or a leading dot)".to_owned());
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 characters"));
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!(
                "it contains {bad:?}; only letters, digits, '-' and '.' are allowed"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with '-'"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_rfc1123_names() {
        for name in [
            "web-01",
            "web-01.example.com",
            "a",
            "1abc",
            "ip-10-0-0-1.ec2.internal",
            "HOST.Example.COM",
        ] {
            assert_eq!(validate(name), Ok(()), "{name}");
        }
        assert_eq!(validate(&format!("{}.com", "a".repeat(63))), Ok(()));
    }

    #[test]
    fn rejects_names_breaking_rfc1123_with_the_reason() {
        let cases = [
            ("", "it is empty"),
            ("web_01", "it contains '_'"),
            ("-web", "starts or ends with '-'"),
            ("web-", "starts or ends with '-'"),
            ("a..b", "empty label"),
            ("has space", "it contains ' '"),
            ("localhost", "local-only"),
        ];
        for (name, reason) in cases {
            let error = validate(name).expect_err(name);
            assert!(error.contains(reason), "{name}: {error}");
        }
        assert!(validate(&"a".repeat(64)).is_err());
        assert!(validate(&["a"; 130].join(".")).is_err());
    }

    #[tokio::test]
    async fn configured_hostname_is_used_as_is_when_valid() {
        assert_eq!(
            resolve(Some("web-01.example.com")).await.expect("valid"),
            "web-01.example.com"
        );
        let error = resolve(Some("bad_host"))
            .await
            .expect_err("invalid")
            .to_string();
        assert_eq!(
            error,
            "invalid hostname \"bad_host\" (from the hostname setting): it contains '_'; only letters, digits, '-' and '.' are allowed"
        );
    }

    #[tokio::test]
    async fn os_hostname_is_resolved_when_not_configured() {
        let os = nix::unistd::gethostname()
            .expect("gethostname")
            .to_string_lossy()
            .into_owned();
        let resolved = resolve(None).await.expect("OS hostname resolves");
        // Either the OS name itself or an FQDN that starts with it.
        assert!(
            resolved == os || resolved.starts_with(&format!("{os}.")),
            "{resolved} vs {os}"
        );
    }
}

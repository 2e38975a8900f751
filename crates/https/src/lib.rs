//! The outbound HTTPS policy Switchyard's clients share (the webhook delivery engine,
//! `ExecutionContext::fetch`, the metadata API client): one place to change it.
//!
//! - rustls with the *ring* provider and its safe default protocol versions (TLS 1.2 and
//!   1.3), no client certificates;
//! - the platform's root certificates;
//! - HTTP/1.1, with `http://` URLs passed through to the inner connector (loopback
//!   receivers, tests) and `https://` ones verified;
//! - on a machine with no root certificates, a warning naming what will fail, and a
//!   connector whose `https://` connections fail their certificate check: verification is
//!   never skipped.
//!
//! ```
//! use hyper_util::client::legacy::connect::HttpConnector;
//!
//! let mut http = HttpConnector::new();
//! http.enforce_http(false); // the TLS layer takes https:// URLs
//! let https = switchyard_https::connector(http, "example requests")?;
//! # let _ = https;
//! # Ok::<(), switchyard_https::Error>(())
//! ```
//!
//! The crate has no cargo features.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::sync::Arc;

pub use hyper_rustls::HttpsConnector;

/// Why the TLS client could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// rustls refused the configuration (its provider supports none of the protocol
    /// versions asked for).
    #[error("could not set up TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// `inner` (a connector for plain TCP, e.g. hyper-util's `HttpConnector` with
/// `enforce_http(false)`) wrapped in TLS under the policy above. `what` names what the
/// client is for, in the warning logged when the platform has no root certificates
/// (e.g. `"https deliveries"`).
///
/// # Errors
/// [`Error::Tls`] when rustls refuses the configuration; a missing set of root certificates
/// is not an error.
pub fn connector<H>(inner: H, what: &str) -> Result<HttpsConnector<H>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(Arc::clone(&provider))
    {
        Ok(builder) => builder,
        Err(error) => {
            tracing::warn!(%error, "no system CA certificates: {what} to https URLs will fail");
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    Ok(builder.https_or_http().enable_http1().wrap_connector(inner))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Test code.

    use hyper_util::client::legacy::connect::HttpConnector;
    use tokio::io::AsyncWriteExt;
    use tower_service::Service;

    /// A loopback listener that answers every connection with bytes that are not TLS.
    async fn plain_listener() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
            }
        });
        address
    }

    #[tokio::test]
    async fn http_urls_connect_in_the_clear_and_https_ones_only_through_tls() {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let mut connector = super::connector(http, "test requests").unwrap();
        let address = plain_listener().await;
        let plain: http::Uri = format!("http://{address}/").parse().unwrap();
        let stream = connector.call(plain).await.unwrap();
        assert!(matches!(stream, hyper_rustls::MaybeHttpsStream::Http(_)));
        // The same server under https:// is a TLS handshake that fails: never a plain
        // connection handed back as if it were secure.
        let secure: http::Uri = format!("https://{address}/").parse().unwrap();
        assert!(connector.call(secure).await.is_err());
    }
}

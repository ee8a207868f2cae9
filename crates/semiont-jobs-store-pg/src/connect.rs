//! Connections: the client configuration a store uses (durability as
//! `synchronous_commit`, application name, timeouts), TLS through rustls,
//! the pool for calls, and single connections for the listener.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use semiont_jobs_store::Durability;
use tokio_postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{DatabaseUrl, PgOptions};

/// How the server's certificate is checked, as libpq's `sslmode` says:
/// `prefer` and `require` encrypt without checking who answers (libpq's
/// meaning of those modes); `verify-ca` and `verify-full` check the chain
/// against `sslrootcert` (or the webpki roots) and the host name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Verify {
    /// Encrypt when the server offers it; accept its certificate.
    #[default]
    Encrypt,
    /// Check the certificate chain and host name against these roots
    /// (PEM file) or the webpki roots.
    Full(Option<std::path::PathBuf>),
}

/// The TLS connector: rustls with the ring provider.
pub(crate) fn tls(verify: &Verify) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match verify {
        Verify::Encrypt => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
        Verify::Full(roots_file) => {
            let mut roots = rustls::RootCertStore::empty();
            match roots_file {
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
                Some(path) => {
                    use rustls::pki_types::pem::PemObject;
                    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                        .map_err(|e| format!("cannot read sslrootcert {}: {e}", path.display()))?;
                    for cert in certs {
                        let cert = cert.map_err(|e| {
                            format!("cannot read sslrootcert {}: {e}", path.display())
                        })?;
                        roots.add(cert).map_err(|e| {
                            format!("bad certificate in sslrootcert {}: {e}", path.display())
                        })?;
                    }
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// Accepts the server's certificate (libpq's `sslmode=prefer/require`),
/// still checking that the handshake is signed by its key.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client configuration for a store's connections.
pub(crate) fn config(url: &DatabaseUrl, opts: &PgOptions) -> Config {
    let mut config = url.config().clone();
    if config.get_application_name().is_none() {
        // The process id tells an operator (and the fault tests) which
        // process a connection belongs to.
        config.application_name(format!("semiont-jobs/{}", std::process::id()));
    }
    config.connect_timeout(opts.connect_timeout);
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(30));
    let sync = match opts.durability {
        Durability::Fsync => "on",
        Durability::None => "off",
    };
    // A client stuck inside a transaction must not hold row locks forever.
    // No JIT: the queue's statements are short index walks, but a claim's
    // cost estimate grows with the pending backlog (the whole index is the
    // bound the planner sees), and past `jit_above_cost` (at about a
    // million pending jobs) every claim and peek compiled its expressions
    // again: 5 ms of a 7 ms claim, and a peek past `jit_optimize_above_cost`
    // ~50 ms (docs/postgres-performance.md, item 12).
    let ours = format!(
        "-c synchronous_commit={sync} -c idle_in_transaction_session_timeout=60000 -c jit=off"
    );
    let options = match config.get_options() {
        Some(theirs) if !theirs.trim().is_empty() => format!("{theirs} {ours}"),
        _ => ours,
    };
    config.options(&options);
    config
}

/// The pool of connections for a store's calls.
pub(crate) fn pool(config: Config, tls: MakeRustlsConnect, opts: &PgOptions) -> Pool {
    let manager = Manager::from_config(
        config,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(opts.pool_size)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(opts.connect_timeout))
        .wait_timeout(Some(opts.connect_timeout * 2))
        .recycle_timeout(Some(opts.connect_timeout))
        .build()
        .expect("a tokio runtime is configured")
}

/// A connection of its own, with the stream of its server messages
/// (notifications, notices) delivered on `messages`. The connection closes
/// when the client is dropped.
pub(crate) async fn connect_one(
    config: &Config,
    tls: MakeRustlsConnect,
) -> Result<
    (
        Client,
        tokio::sync::mpsc::UnboundedReceiver<
            Result<tokio_postgres::AsyncMessage, tokio_postgres::Error>,
        >,
    ),
    tokio_postgres::Error,
> {
    let (client, mut connection) = config.connect(tls).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let next = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
            match next {
                Some(Ok(message)) => {
                    if tx.send(Ok(message)).is_err() {
                        // Nobody listens any more; keep driving the
                        // connection until the client is dropped.
                    }
                }
                Some(Err(e)) => {
                    let _ = tx.send(Err(e));
                    return;
                }
                None => return,
            }
        }
    });
    Ok((client, rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options_of(url: &str) -> String {
        let url = DatabaseUrl::parse(url).expect("a valid url");
        config(&url, &PgOptions::default())
            .get_options()
            .expect("options are set")
            .to_owned()
    }

    #[test]
    fn sessions_run_without_jit_and_keep_the_users_options() {
        let ours = options_of("postgres://u@localhost/db");
        assert!(ours.contains("-c jit=off"), "{ours}");
        assert!(ours.contains("-c synchronous_commit=on"), "{ours}");
        let both = options_of("postgres://u@localhost/db?options=-c%20statement_timeout%3D5000");
        assert!(both.starts_with("-c statement_timeout=5000 "), "{both}");
        assert!(both.contains("-c jit=off"), "{both}");
    }
}

//! `--tls`: HTTPS with a certificate made at start for `localhost` and `127.0.0.1`, signed by
//! a CA made with it, whose PEM clients are given to trust (`--tls-ca-out`). Nothing is
//! written but that PEM; the keys live in memory only.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A server certificate and the CA that signed it.
pub struct Identity {
    /// The CA certificate, PEM: what a client trusts.
    pub ca_pem: String,
    /// The TLS configuration that serves the server certificate.
    pub config: Arc<rustls::ServerConfig>,
}

fn error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("cannot make the TLS certificate: {e}"))
}

/// Makes a CA and a server certificate for `localhost` and `127.0.0.1` signed by it.
pub fn identity() -> std::io::Result<Identity> {
    let ca_key = KeyPair::generate().map_err(error)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(error)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "mde-sim local CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(error)?;

    let key = KeyPair::generate().map_err(error)?;
    let mut server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(error)?;
    server
        .distinguished_name
        .push(DnType::CommonName, "mde-sim");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    // Python's strict verification (3.13) wants the issuer's key id in the certificate.
    server.use_authority_key_identifier_extension = true;
    let cert = server.signed_by(&key, &ca_cert, &ca_key).map_err(error)?;

    let chain = vec![cert.der().clone(), ca_cert.der().clone()];
    let private = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).map_err(error)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(error)?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(error)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Identity {
        ca_pem: ca_cert.pem(),
        config: Arc::new(config),
    })
}

/// Serves `app` over TLS on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    config: Arc<rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            // A client that gives up on the handshake (an untrusted certificate) is its own
            // business; the server goes on.
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
        });
    }
}

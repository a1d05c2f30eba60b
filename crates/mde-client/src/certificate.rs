//! Signing in with a client certificate (feature `azure-identity`): the identity library's
//! `ClientAssertionCredential` with a client assertion signed here with the certificate's key,
//! as Entra ID takes it (RS256, the certificate's `x5t`, audience the tenant's token URL,
//! ten minutes). `azure_identity`'s own `ClientCertificateCredential` needs OpenSSL (a C
//! library and its headers, which a consumer's machine may lack); `jsonwebtoken` signs the
//! assertion instead, with `ring`, already the client's TLS provider. PEM (a certificate and
//! its PKCS#8 or PKCS#1 key in one file) and PKCS#12 (`.pfx`, `.p12`) are read.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::ClientMethodOptions;
use azure_identity::{
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha1::{Digest, Sha1};

use crate::error::Error;

/// How long an assertion is valid: Entra ID takes up to ten minutes.
const ASSERTION_LIFETIME: i64 = 600;

/// A certificate and its private key, ready to sign client assertions.
#[derive(Clone)]
pub struct ClientCertificate {
    key: jsonwebtoken::EncodingKey,
    /// base64url of the certificate's SHA-1 (Entra ID's `x5t`).
    thumbprint: String,
}

/// Never the key.
impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

fn unusable(what: impl fmt::Display) -> Error {
    Error::Configuration(format!("the client certificate: {what}"))
}

impl ClientCertificate {
    /// A PEM file's certificate and key, or a PKCS#12 file's (`password` for it; none is the
    /// empty one). Which it is, is read from the content.
    pub fn from_file(path: &Path, password: Option<&str>) -> Result<ClientCertificate, Error> {
        let bytes = std::fs::read(path)
            .map_err(|e| unusable(format_args!("cannot read {}: {e}", path.display())))?;
        if bytes.starts_with(b"-----") || bytes.iter().take(64).all(|b| b.is_ascii()) {
            ClientCertificate::from_pem(&bytes)
        } else {
            ClientCertificate::from_pkcs12(&bytes, password.unwrap_or_default()).map_err(|e| {
                // A MAC that does not match is, nearly always, the password: say which fix.
                let fix = match password {
                    None => "it is a PKCS#12 archive and no password was given: set AZURE_CLIENT_CERTIFICATE_PASSWORD to its password",
                    Some(_) => "the password given (AZURE_CLIENT_CERTIFICATE_PASSWORD) does not open this PKCS#12 archive",
                };
                unusable(format_args!("{}: {fix} ({e})", path.display()))
            })
        }
    }

    /// A certificate and its key in PEM (any order; other blocks are skipped).
    pub fn from_pem(pem: &[u8]) -> Result<ClientCertificate, Error> {
        let blocks = pem::parse_many(pem).map_err(|e| unusable(format_args!("not PEM: {e}")))?;
        let certificate = blocks
            .iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .ok_or_else(|| unusable("no CERTIFICATE block"))?;
        let key = blocks
            .iter()
            .find(|b| b.tag() == "PRIVATE KEY" || b.tag() == "RSA PRIVATE KEY")
            .ok_or_else(|| unusable("no PRIVATE KEY block (an encrypted key is not read: decrypt it, or use PKCS#12)"))?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem::encode(key).as_bytes())
            .map_err(|e| unusable(format_args!("the key is not an RSA key: {e}")))?;
        Ok(ClientCertificate {
            key,
            thumbprint: URL_SAFE_NO_PAD.encode(Sha1::digest(certificate.contents())),
        })
    }

    /// A PKCS#12 archive's first key and its certificate.
    pub fn from_pkcs12(bytes: &[u8], password: &str) -> Result<ClientCertificate, Error> {
        let store = p12_keystore::KeyStore::from_pkcs12(
            bytes,
            password,
            p12_keystore::Pkcs12ImportPolicy::Strict,
        )
        .map_err(|e| {
            unusable(format_args!(
                "not a PKCS#12 archive this password opens: {e}"
            ))
        })?;
        let (_, chain) = store
            .private_key_chain()
            .ok_or_else(|| unusable("the PKCS#12 archive holds no key with its certificate"))?;
        let certificate = chain
            .certs()
            .first()
            .ok_or_else(|| unusable("the PKCS#12 archive's key has no certificate"))?;
        let key = pem::Pem::new("PRIVATE KEY", chain.key().as_der().to_vec());
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem::encode(&key).as_bytes())
            .map_err(|e| unusable(format_args!("the key is not an RSA key: {e}")))?;
        Ok(ClientCertificate {
            key,
            thumbprint: URL_SAFE_NO_PAD.encode(Sha1::digest(certificate.as_der())),
        })
    }

    /// The identity library's credential for the app `client_id` of `tenant`, signing in at
    /// `authority` (Entra ID's, or a cloud's, or a simulator's over HTTPS) with `options`.
    pub fn credential(
        self,
        authority: &str,
        tenant: &str,
        client_id: &str,
        options: ClientAssertionCredentialOptions,
    ) -> Result<Arc<dyn TokenCredential>, Error> {
        let assertion = Assertion {
            certificate: self,
            client_id: client_id.to_string(),
            audience: crate::token_url(authority, tenant),
        };
        let credential = ClientAssertionCredential::new(
            tenant.to_string(),
            client_id.to_string(),
            assertion,
            Some(options),
        )
        .map_err(|e| Error::Configuration(format!("the client certificate credential: {e}")))?;
        Ok(credential)
    }
}

/// Signs a new assertion for each token request.
#[derive(Debug)]
struct Assertion {
    certificate: ClientCertificate,
    client_id: String,
    audience: String,
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

#[async_trait::async_trait]
impl ClientAssertion for Assertion {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.x5t = Some(self.certificate.thumbprint.clone());
        let claims = Claims {
            aud: &self.audience,
            iss: &self.client_id,
            sub: &self.client_id,
            jti: format!("{:032x}", u128::from_le_bytes(rand_bytes())),
            nbf: now,
            iat: now,
            exp: now + ASSERTION_LIFETIME,
        };
        jsonwebtoken::encode(&header, &claims, &self.certificate.key).map_err(|e| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                format!("cannot sign the client assertion: {e}"),
            )
        })
    }
}

/// Sixteen bytes no other assertion has: the clock's nanoseconds mixed with a counter.
fn rand_bytes() -> [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos()) as u64;
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let digest = Sha1::digest([nanos.to_le_bytes(), n.to_le_bytes()].concat());
    let mut out = [0; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

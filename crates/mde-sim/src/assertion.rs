//! Client assertions at the token endpoint: a JWT the app signs with a certificate's key
//! (RS256), checked against the certificate registered with the app (`--app-cert`), as Entra
//! ID checks it: the `x5t` names the certificate, the signature is its key's, the audience is
//! the tenant's token URL, the issuer and subject are the app, and it is within its time.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha1::{Digest, Sha1};

use crate::error::AadError;

/// A certificate registered with an app.
#[derive(Clone)]
pub struct RegisteredCert {
    pub(crate) tenant: String,
    pub(crate) client_id: String,
    /// The certificate's SHA-1 (`x5t`) and SHA-256 (`x5t#S256`).
    sha1: Vec<u8>,
    sha256: Vec<u8>,
    key: jsonwebtoken::DecodingKey,
}

impl std::fmt::Debug for RegisteredCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredCert")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("x5t", &URL_SAFE_NO_PAD.encode(&self.sha1))
            .finish_non_exhaustive()
    }
}

impl RegisteredCert {
    /// The certificate of a PEM text (its first CERTIFICATE block), for the app.
    pub fn from_pem(
        tenant: &str,
        client_id: &str,
        pem_text: &str,
    ) -> Result<RegisteredCert, String> {
        let blocks = pem::parse_many(pem_text).map_err(|e| format!("not PEM: {e}"))?;
        let der = blocks
            .iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .ok_or("no CERTIFICATE block")?
            .contents()
            .to_vec();
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let spki = pem::Pem::new("PUBLIC KEY", cert.public_key().raw.to_vec());
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(pem::encode(&spki).as_bytes())
            .map_err(|e| format!("not an RSA certificate: {e}"))?;
        Ok(RegisteredCert {
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
            sha1: Sha1::digest(&der).to_vec(),
            sha256: <sha2::Sha256 as Digest>::digest(&der).to_vec(),
            key,
        })
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

fn invalid(code: u32, description: impl Into<String>) -> AadError {
    AadError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        code,
        description.into(),
    )
}

/// Checks the client assertion of the app `client_id` of `tenant`, whose token URL is
/// `audience`.
pub fn check(
    certs: &[RegisteredCert],
    (tenant, client_id): (&str, &str),
    audience: &str,
    jwt: &str,
) -> Result<(), AadError> {
    let header = jsonwebtoken::decode_header(jwt)
        .map_err(|e| invalid(50027, format!("JWT token is invalid or malformed: {e}.")))?;
    // Clients write the thumbprint in base64url (Entra ID's examples) or in standard base64
    // with padding (MSAL for Python): either names the same certificate.
    let bytes = |text: &Option<String>| {
        let text = text.as_deref()?.trim_end_matches('=');
        URL_SAFE_NO_PAD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .ok()
    };
    let (sha1, sha256) = (bytes(&header.x5t), bytes(&header.x5t_s256));
    let thumbprint = header
        .x5t
        .clone()
        .or(header.x5t_s256.clone())
        .unwrap_or_default();
    let cert = certs
        .iter()
        .filter(|c| c.tenant == tenant && c.client_id == client_id)
        .find(|c| sha1.as_ref() == Some(&c.sha1) || sha256.as_ref() == Some(&c.sha256))
        .ok_or_else(|| {
            invalid(
                700027,
                format!("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}']"),
            )
        })?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[client_id]);
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    validation.leeway = 60;
    let claims = jsonwebtoken::decode::<Claims>(jwt, &cert.key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as Kind;
        match e.kind() {
            Kind::ExpiredSignature | Kind::ImmatureSignature => invalid(
                700024,
                "Client assertion is not within its valid time range.",
            ),
            Kind::InvalidSignature => {
                invalid(700027, "Client assertion failed signature validation.")
            }
            Kind::InvalidAudience => invalid(
                700212,
                format!("No matching audience found: the audience must be {audience}."),
            ),
            Kind::InvalidIssuer => invalid(
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.",
            ),
            other => invalid(
                50027,
                format!("JWT token is invalid or malformed: {other:?}."),
            ),
        }
    })?;
    if claims.claims.sub != client_id {
        return Err(invalid(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        ));
    }
    Ok(())
}

//! An OpenID Connect issuer of the simulator's own, for workload identity federation: it
//! mints the tokens a Kubernetes or GitHub Actions workload would hold (ES256, audience
//! `api://AzureADTokenExchange`), serves its discovery document and keys, and the token
//! endpoint takes such a token as the client assertion of an app that trusts its subject.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::AadError;

/// Where the issuer is on the simulator.
pub const PATH: &str = "/federation";

/// The audience Entra ID takes federated tokens for.
pub const AUDIENCE: &str = "api://AzureADTokenExchange";

/// The subject the default app trusts, as a Kubernetes service account writes it.
pub const DEFAULT_SUBJECT: &str = "system:serviceaccount:mde:mde";

/// The key id of the issuer's one key.
const KID: &str = "mde-sim-federation";

/// The issuer: its URL and its signing key.
pub struct Issuer {
    pub(crate) url: String,
    encoding: jsonwebtoken::EncodingKey,
    decoding: jsonwebtoken::DecodingKey,
    /// The key's public point: x and y, base64url.
    x: String,
    y: String,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    iat: i64,
    nbf: i64,
    exp: i64,
}

impl Issuer {
    /// An issuer at `base_url`, with a new P-256 key.
    pub fn new(base_url: &str) -> Result<Issuer, String> {
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let encoding = jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes())
            .map_err(|e| e.to_string())?;
        // The uncompressed point: 0x04, then x and y.
        let point = key.public_key_raw();
        let (x, y) = point.get(1..).ok_or("no public key")?.split_at(32);
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        let decoding =
            jsonwebtoken::DecodingKey::from_ec_components(&x, &y).map_err(|e| e.to_string())?;
        Ok(Issuer {
            url: format!("{base_url}{PATH}"),
            encoding,
            decoding,
            x,
            y,
        })
    }

    /// A token for `subject`, valid `lifetime_s` seconds from now (wall-clock time; a
    /// negative one is already expired).
    pub fn token(&self, subject: &str, lifetime_s: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: self.url.clone(),
            sub: subject.to_string(),
            aud: AUDIENCE.to_string(),
            iat: now.min(now + lifetime_s),
            nbf: now.min(now + lifetime_s) - 60,
            exp: now + lifetime_s,
        };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(KID.into());
        jsonwebtoken::encode(&header, &claims, &self.encoding).unwrap_or_default()
    }

    /// The discovery document.
    pub fn discovery(&self) -> serde_json::Value {
        serde_json::json!({
            "issuer": self.url,
            "jwks_uri": format!("{}/keys", self.url),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    }

    /// The keys document.
    pub fn keys(&self) -> serde_json::Value {
        serde_json::json!({ "keys": [{
            "kty": "EC", "crv": "P-256", "x": self.x, "y": self.y,
            "kid": KID, "use": "sig", "alg": "ES256",
        }]})
    }

    /// Whether `jwt` claims to be one of this issuer's (its `iss`), without checking it.
    pub fn claims_to_be_ours(&self, jwt: &str) -> bool {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.insecure_disable_signature_validation();
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<serde_json::Value>(jwt, &self.decoding, &validation)
            .ok()
            .and_then(|t| {
                t.claims
                    .get("iss")
                    .and_then(|i| i.as_str())
                    .map(|i| i == self.url)
            })
            .unwrap_or(false)
    }

    /// Checks a federated token presented for an app trusting `subjects`.
    pub fn check(&self, jwt: &str, subjects: &[&str]) -> Result<(), AadError> {
        let invalid = |code, text: String| {
            AadError::new(StatusCode::BAD_REQUEST, "invalid_client", code, text)
        };
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[&self.url]);
        validation.leeway = 60;
        let token = jsonwebtoken::decode::<Claims>(jwt, &self.decoding, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as Kind;
            match e.kind() {
                Kind::ExpiredSignature => invalid(
                    700024,
                    "Client assertion is not within its valid time range.".into(),
                ),
                Kind::InvalidAudience => invalid(
                    700212,
                    format!("No matching federated identity record found for presented assertion audience; it must be {AUDIENCE}."),
                ),
                other => invalid(50027, format!("JWT token is invalid or malformed: {other:?}.")),
            }
        })?;
        if !subjects.contains(&token.claims.sub.as_str()) {
            return Err(invalid(
                70021,
                format!(
                    "No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'.",
                    token.claims.iss, token.claims.sub
                ),
            ));
        }
        Ok(())
    }
}

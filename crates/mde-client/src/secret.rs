//! Secrets: what the client is given (a client secret, an access token) and what the service
//! sends that is a credential (`x-secret` in the spec: a package link, whose query is a SAS
//! token).

use std::fmt;
use std::sync::Arc;

/// A secret. It never prints: `Debug` shows `Secret([redacted])`, and there is no `Display`;
/// [`Secret::expose`] gives it where it belongs. It serializes and compares as its text, so
/// the API's own bodies carry it whole.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(Arc::from(secret.into()))
    }

    /// The secret itself, for sending it where it belongs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Secret {
        Secret::new(secret)
    }
}

impl From<&str> for Secret {
    fn from(secret: &str) -> Secret {
        Secret::new(secret)
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

#[cfg(feature = "schemars")]
impl schemars::JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_text_and_never_debugs_it() {
        let json = r#""\"https://host/package.zip?token=S3CRET\"""#;
        let secret: Secret = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&secret).unwrap(), json);
        assert_eq!(secret.expose(), "\"https://host/package.zip?token=S3CRET\"");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        assert_eq!(
            format!("{:#?}", Some(secret)),
            "Some(\n    Secret([redacted]),\n)"
        );
    }
}

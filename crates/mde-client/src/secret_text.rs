//! Text the service sends that is a credential (`x-secret` in the spec): a package link,
//! whose query is a SAS token.

use std::fmt;

/// A credential the service sent, as it came: serialized and compared as its text, but
/// `Debug` shows `SecretText([redacted])`, so that printing an answer, a log or an error
/// never shows it. There is no `Display`; [`SecretText::expose`] gives the text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretText(String);

impl SecretText {
    /// The text itself, for using it where it belongs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText([redacted])")
    }
}

impl From<String> for SecretText {
    fn from(text: String) -> SecretText {
        SecretText(text)
    }
}

impl From<&str> for SecretText {
    fn from(text: &str) -> SecretText {
        SecretText(text.to_string())
    }
}

impl serde::Serialize for SecretText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SecretText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<SecretText, D::Error> {
        String::deserialize(deserializer).map(SecretText)
    }
}

#[cfg(feature = "schemars")]
impl schemars::JsonSchema for SecretText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SecretText".into()
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
        let text: SecretText = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&text).unwrap(), json);
        assert_eq!(text.expose(), "\"https://host/package.zip?token=S3CRET\"");
        assert_eq!(format!("{text:?}"), "SecretText([redacted])");
        assert_eq!(
            format!("{:#?}", Some(text)),
            "Some(\n    SecretText([redacted]),\n)"
        );
    }
}

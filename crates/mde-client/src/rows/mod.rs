//! One row of a hunting answer (the spec's `HuntingRowResult`, an open object), kept as the
//! JSON text the service wrote: a 100,000-row answer then costs about its text, where a map a
//! row costs several times it. [`split`] cuts the rows out of an answer as it arrives.

pub(crate) mod split;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A row: an object whose members are the query's columns, as the JSON text it came in.
#[derive(Clone, Debug, Serialize)]
#[serde(transparent)]
pub struct Row(Box<RawValue>);

impl PartialEq for Row {
    fn eq(&self, other: &Row) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Row {}

impl Default for Row {
    fn default() -> Row {
        Row::from(Map::new())
    }
}

impl Row {
    /// A row of this JSON text (an object).
    pub(crate) fn from_raw(raw: Box<RawValue>) -> Row {
        Row(raw)
    }

    /// The row's JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The row's members, read from its text.
    pub fn members(&self) -> Map<String, Value> {
        serde_json::from_str(self.as_str()).unwrap_or_default()
    }
}

impl From<Map<String, Value>> for Row {
    fn from(members: Map<String, Value>) -> Row {
        // A map always writes as JSON; `null` stands in for what cannot happen.
        Row(serde_json::value::to_raw_value(&members).unwrap_or_default())
    }
}

impl<'de> Deserialize<'de> for Row {
    /// Any JSON object, its text kept as it came (from a `Value`, written compact).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Row, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        match raw.get().trim_start().starts_with('{') {
            true => Ok(Row(raw)),
            false => Err(serde::de::Error::custom("a row must be a JSON object")),
        }
    }
}

#[cfg(feature = "schemars")]
impl schemars::JsonSchema for Row {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HuntingRowResult".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "object", "additionalProperties": true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_keeps_its_members_in_order_and_refuses_what_is_not_an_object() {
        let text = r#"{"Timestamp":"2024-03-26T09:39:50.7688641Z","FileName":"cmd.exe","n":3}"#;
        let row: Row = serde_json::from_str(text).unwrap();
        assert_eq!(row.as_str(), text);
        assert_eq!(serde_json::to_string(&row).unwrap(), text);
        let again: Row = serde_json::from_value(serde_json::from_str(text).unwrap()).unwrap();
        assert_eq!(again, row);
        assert!(serde_json::from_str::<Row>("[1]").is_err());
    }
}

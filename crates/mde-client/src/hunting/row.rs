//! One row of a hunting answer (the spec's `HuntingRowResult`, an open object), kept as the
//! compact JSON text the service wrote: a 100,000-row answer then costs about its text, where
//! a map a row costs several times it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A row: an object whose members are the query's columns, as compact JSON text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row(Box<str>);

impl Default for Row {
    fn default() -> Row {
        Row("{}".into())
    }
}

impl Row {
    /// The row's JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The row's members, read from its text.
    pub fn members(&self) -> Map<String, Value> {
        serde_json::from_str(&self.0).unwrap_or_default()
    }
}

impl From<Map<String, Value>> for Row {
    fn from(members: Map<String, Value>) -> Row {
        Row(Value::Object(members).to_string().into())
    }
}

impl<'de> Deserialize<'de> for Row {
    /// Any JSON object: read member by member, written back as text.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Row, D::Error> {
        Map::<String, Value>::deserialize(deserializer).map(Row::from)
    }
}

impl Serialize for Row {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.members().serialize(serializer)
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

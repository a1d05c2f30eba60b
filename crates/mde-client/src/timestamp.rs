//! Timestamps that come back exactly as the service wrote them.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};

/// An instant, with the text the service wrote for it.
///
/// The service writes 7 fractional digits (`2017-12-04T12:09:24.1785079Z`), sometimes none;
/// `chrono` would write 9. A `Timestamp` serializes back to the text it was read from, so
/// nothing changes on a round trip. Equality, ordering and hashing follow the instant.
#[derive(Clone)]
pub struct Timestamp {
    instant: DateTime<Utc>,
    text: String,
}

/// A text that is not an RFC 3339 date-time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampError {
    text: String,
    reason: String,
}

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an RFC 3339 date-time: {}",
            self.text, self.reason
        )
    }
}

impl std::error::Error for TimestampError {}

impl Timestamp {
    /// Reads an RFC 3339 date-time, keeping its text.
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        let instant = DateTime::parse_from_rfc3339(text).map_err(|e| TimestampError {
            // Bounded: a hostile answer must not put megabytes into an error message.
            text: crate::error::shorten(text, 64),
            reason: e.to_string(),
        })?;
        Ok(Timestamp {
            instant: instant.with_timezone(&Utc),
            text: text.to_string(),
        })
    }

    /// The instant in UTC.
    pub fn instant(&self) -> DateTime<Utc> {
        self.instant
    }

    /// The text as the service wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Written as the service writes it: UTC, `Z`, 7 fractional digits (100 ns ticks).
impl From<DateTime<Utc>> for Timestamp {
    fn from(instant: DateTime<Utc>) -> Timestamp {
        let ticks = instant.timestamp_subsec_nanos() / 100;
        let seconds = instant.to_rfc3339_opts(SecondsFormat::Secs, true);
        let text = format!("{}.{ticks:07}Z", seconds.trim_end_matches('Z'));
        Timestamp { instant, text }
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(text: &str) -> Result<Timestamp, TimestampError> {
        Timestamp::parse(text)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Timestamp").field(&self.text).finish()
    }
}

impl PartialEq for Timestamp {
    fn eq(&self, other: &Timestamp) -> bool {
        self.instant == other.instant
    }
}

impl Eq for Timestamp {}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Timestamp) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Timestamp) -> std::cmp::Ordering {
        self.instant.cmp(&other.instant)
    }
}

impl Hash for Timestamp {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.instant.hash(state);
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "schemars")]
impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "date-time" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_seven_fractional_digits() {
        let t: Timestamp = serde_json::from_str("\"2017-12-04T12:09:24.1785079Z\"").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2017-12-04T12:09:24.1785079Z\""
        );
        assert_eq!(t.instant().timestamp_subsec_nanos(), 178_507_900);
    }

    #[test]
    fn written_from_an_instant_with_seven_digits() {
        let t = Timestamp::parse("2020-01-06T15:05:15.5+02:00").unwrap();
        assert_eq!(
            Timestamp::from(t.instant()).as_str(),
            "2020-01-06T13:05:15.5000000Z"
        );
        assert_eq!(Timestamp::from(t.instant()), t);
    }

    #[test]
    fn rejects_what_is_not_a_date_time_with_a_bounded_message() {
        let long = "x".repeat(10_000);
        let e = Timestamp::parse(&long).unwrap_err().to_string();
        assert!(e.len() < 200, "{e}");
        assert!(serde_json::from_str::<Timestamp>("\"2017-13-04T12:09:24Z\"").is_err());
    }
}

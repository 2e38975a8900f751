//! RFC 3339 timestamps that keep their original text and offset through a round trip.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone};

use crate::{Error, Rule};

/// An RFC 3339 timestamp, the CloudEvents `Timestamp` type.
///
/// Parsing keeps the exact text it was given, so an event passed through this crate
/// renders `time` byte for byte as it arrived (offset, fraction digits and all).
/// Timestamps built from a [`chrono::DateTime`] render in the canonical form, with `Z`
/// for UTC and only as many fraction digits as needed.
///
/// Two timestamps are equal when they denote the same instant with the same offset.
///
/// ```
/// use switchyard_cloudevents::Timestamp;
///
/// let t: Timestamp = "2018-04-05T18:31:00+01:00".parse().unwrap();
/// assert_eq!(t.to_string(), "2018-04-05T18:31:00+01:00");
/// assert_eq!(t.as_datetime().offset().local_minus_utc(), 3600);
/// assert!("2018-04-05T18:31Z".parse::<Timestamp>().is_err());
/// ```
#[derive(Clone)]
pub struct Timestamp {
    text: Box<str>,
    value: DateTime<FixedOffset>,
}

impl Timestamp {
    /// Parses an RFC 3339 timestamp; `attribute` names the attribute in the error.
    pub(crate) fn parse_for(attribute: &str, text: &str) -> Result<Self, Error> {
        match DateTime::parse_from_rfc3339(text) {
            Ok(value) => Ok(Timestamp {
                text: text.into(),
                value,
            }),
            Err(_) => Err(Error::invalid(attribute, Rule::Rfc3339)),
        }
    }

    /// The parsed date and time, in its original offset.
    pub fn as_datetime(&self) -> &DateTime<FixedOffset> {
        &self.value
    }

    /// The timestamp's text as it will be written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl<Tz: TimeZone> From<DateTime<Tz>> for Timestamp {
    fn from(value: DateTime<Tz>) -> Self {
        let value = value.fixed_offset();
        Timestamp {
            text: value.to_rfc3339_opts(SecondsFormat::AutoSi, true).into(),
            value,
        }
    }
}

impl FromStr for Timestamp {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Timestamp::parse_for("time", text)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.text)
    }
}

impl PartialEq for Timestamp {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value && self.value.offset() == other.value.offset()
    }
}

impl Eq for Timestamp {}

impl Hash for Timestamp {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.timestamp().hash(state);
        self.value.timestamp_subsec_nanos().hash(state);
        self.value.offset().local_minus_utc().hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_original_text_and_offset() {
        for text in [
            "2018-04-05T17:31:00Z",
            "2018-04-05T17:31:00.000000000Z",
            "2018-04-05T18:31:00+01:00",
            "2018-04-05T16:31:00-01:00",
            "2018-04-05T17:31:00.5+00:00",
        ] {
            let t: Timestamp = text.parse().unwrap();
            assert_eq!(t.to_string(), text);
        }
    }

    #[test]
    fn same_instant_different_offset_is_not_equal() {
        let a: Timestamp = "2018-04-05T17:31:00Z".parse().unwrap();
        let b: Timestamp = "2018-04-05T18:31:00+01:00".parse().unwrap();
        let c: Timestamp = "2018-04-05T17:31:00.000Z".parse().unwrap();
        assert_ne!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn rejects_what_the_conformance_suite_rejects() {
        for text in [
            "lunchtime",
            "2018-04-05T18:31Z",
            "2018-04-05T18:31:00X",
            "2018-04-05T18:31:00+25:00",
            "2018-04-05T18:31:00+xx:00",
            "2018-04-05T18:31:00+05",
            "",
        ] {
            let error = text.parse::<Timestamp>().unwrap_err();
            assert!(
                matches!(error, Error::InvalidAttribute { ref name, rule: Rule::Rfc3339 } if name == "time"),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn from_datetime_renders_canonically() {
        let dt = DateTime::parse_from_rfc3339("2020-01-02T03:04:05.120+00:00").unwrap();
        assert_eq!(Timestamp::from(dt).to_string(), "2020-01-02T03:04:05.120Z");
    }
}

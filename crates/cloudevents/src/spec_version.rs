//! The CloudEvents specification versions this crate speaks: 0.3 and 1.0.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A CloudEvents specification version.
///
/// ```
/// use switchyard_cloudevents::SpecVersion;
///
/// assert_eq!("1.0".parse::<SpecVersion>().unwrap(), SpecVersion::V1_0);
/// assert_eq!(SpecVersion::V0_3.as_str(), "0.3");
/// assert!("0.9".parse::<SpecVersion>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum SpecVersion {
    /// CloudEvents 0.3 (`schemaurl`, `datacontentencoding`, Map-typed extensions).
    V0_3,
    /// CloudEvents 1.0 (1.0.2 is the current patch release); the default.
    #[default]
    V1_0,
}

impl SpecVersion {
    /// The value of the `specversion` attribute for this version.
    pub const fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V0_3 => "0.3",
            SpecVersion::V1_0 => "1.0",
        }
    }

    /// The context attributes this version defines; extensions may not reuse these names.
    pub const fn context_attributes(self) -> &'static [&'static str] {
        match self {
            SpecVersion::V0_3 => &[
                "specversion",
                "id",
                "source",
                "type",
                "datacontenttype",
                "datacontentencoding",
                "schemaurl",
                "subject",
                "time",
            ],
            SpecVersion::V1_0 => &[
                "specversion",
                "id",
                "source",
                "type",
                "datacontenttype",
                "dataschema",
                "subject",
                "time",
            ],
        }
    }

    /// Whether `name` is a context attribute of this version.
    pub fn is_context_attribute(self, name: &str) -> bool {
        self.context_attributes().contains(&name)
    }
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SpecVersion {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "1.0" => Ok(SpecVersion::V1_0),
            "0.3" => Ok(SpecVersion::V0_3),
            other => Err(Error::UnsupportedSpecVersion {
                found: other.to_owned(),
            }),
        }
    }
}

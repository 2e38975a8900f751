//! The three states of a field in a Svix `PATCH` body: left out (unchanged), `null`
//! (cleared), or a value (set). serde's `Option` folds the first two together.

use serde::{Deserialize, Deserializer};

/// A nullable field of a `PATCH` body. Use with `#[serde(default, deserialize_with =
/// "patch::field")]`, so that a missing field stays [`Field::Absent`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Field<T> {
    /// Not in the body: keep what is stored.
    #[default]
    Absent,
    /// `null`: clear it.
    Null,
    /// A new value.
    Value(T),
}

impl<T> Field<T> {
    /// What the field is after the patch, given what it is now.
    pub(crate) fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Self::Absent => current,
            Self::Null => None,
            Self::Value(value) => Some(value),
        }
    }

    /// Whether the body names the field (as a value or as `null`).
    pub(crate) fn is_given(&self) -> bool {
        !matches!(self, Self::Absent)
    }
}

impl<T: Clone> Field<T> {
    /// [`Field::apply`] without consuming the field.
    pub(crate) fn applied(&self, current: Option<T>) -> Option<T> {
        self.clone().apply(current)
    }
}

/// Deserializes a present field: `null` is [`Field::Null`], anything else a value.
pub(crate) fn field<'de, D, T>(deserializer: D) -> Result<Field<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(match Option::<T>::deserialize(deserializer)? {
        None => Field::Null,
        Some(value) => Field::Value(value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "field")]
        uid: Field<String>,
    }

    #[test]
    fn absent_null_and_value_are_told_apart() {
        let parse = |text: &str| serde_json::from_str::<Body>(text).unwrap().uid;
        assert_eq!(parse("{}"), Field::Absent);
        assert_eq!(parse(r#"{"uid": null}"#), Field::Null);
        assert_eq!(parse(r#"{"uid": "a"}"#), Field::Value("a".to_owned()));
        assert_eq!(Field::Absent.apply(Some(1)), Some(1));
        assert_eq!(Field::<i32>::Null.apply(Some(1)), None);
        assert_eq!(Field::Value(2).apply(Some(1)), Some(2));
    }
}

//! JSON Schema (Draft 7) handling: checking a schema when its event type is registered,
//! compiling it once, and validating payloads with every violation reported.

use std::sync::Arc;

use jsonschema::{Draft, Validator};
use serde_json::Value;

use crate::error::{SchemaError, Violation};

/// A schema checked against the Draft 7 meta-schema and compiled, ready to validate payloads.
#[derive(Clone)]
pub(crate) struct CompiledSchema(Arc<Validator>);

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompiledSchema")
    }
}

impl CompiledSchema {
    /// Checks `schema` against the Draft 7 meta-schema, then compiles it. Remote `$ref`s are
    /// not fetched (a schema must be self-contained).
    ///
    /// `format` is an annotation unless `assert_formats` is set: Draft 7 leaves format
    /// assertion optional, and neither swh-webhooks (it validates without a format checker)
    /// nor Svix (it does not validate payloads) rejects a naive `date-time`.
    pub(crate) fn compile(schema: &Value, assert_formats: bool) -> Result<Self, SchemaError> {
        if let Err(error) = jsonschema::draft7::meta::validate(schema) {
            return Err(SchemaError::InvalidSchema {
                path: error.instance_path().as_str().to_owned(),
                message: error.to_string(),
            });
        }
        let validator = jsonschema::options()
            .with_draft(Draft::Draft7)
            .should_validate_formats(assert_formats)
            .build(schema)
            .map_err(|error| SchemaError::InvalidSchema {
                path: error.instance_path().as_str().to_owned(),
                message: error.to_string(),
            })?;
        Ok(Self(Arc::new(validator)))
    }

    /// Validates a payload, listing every violation with its JSON Pointer.
    pub(crate) fn validate(&self, payload: &Value) -> Result<(), SchemaError> {
        let violations: Vec<Violation> = self
            .0
            .iter_errors(payload)
            .map(|error| Violation {
                path: error.instance_path().as_str().to_owned(),
                message: error.to_string(),
            })
            .collect();
        if violations.is_empty() {
            Ok(())
        } else {
            Err(SchemaError::InvalidPayload { violations })
        }
    }
}

/// Parses a payload, refusing an object that has a key twice ([`SchemaError::DuplicateKey`]
/// naming where) and text that is not JSON ([`SchemaError::NotJson`]).
pub(crate) fn parse_payload(text: &str) -> Result<Value, SchemaError> {
    use serde::de::DeserializeSeed as _;

    let path = std::cell::RefCell::new(Vec::new());
    let duplicate = std::cell::RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = Unique {
        path: &path,
        duplicate: &duplicate,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    match (parsed, duplicate.into_inner()) {
        (_, Some((path, key))) => Err(SchemaError::DuplicateKey { path, key }),
        (Ok(value), None) => Ok(value),
        (Err(error), None) => Err(SchemaError::NotJson {
            message: error.to_string(),
        }),
    }
}

/// A JSON value built while checking that no object repeats a key. `path` is where the
/// value being read sits (JSON Pointer segments); the first duplicate found is left in
/// `duplicate` and ends the parse.
struct Unique<'a> {
    path: &'a std::cell::RefCell<Vec<String>>,
    duplicate: &'a std::cell::RefCell<Option<(String, String)>>,
}

impl Unique<'_> {
    fn pointer(&self) -> String {
        self.path
            .borrow()
            .iter()
            .map(|segment| format!("/{}", segment.replace('~', "~0").replace('/', "~1")))
            .collect()
    }

    fn child(&self) -> Unique<'_> {
        Unique {
            path: self.path,
            duplicate: self.duplicate,
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Unique<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Unique<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            self.path.borrow_mut().push(items.len().to_string());
            let next = seq.next_element_seed(self.child());
            self.path.borrow_mut().pop();
            match next? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let at = self.pointer();
                *self.duplicate.borrow_mut() = Some((at, key));
                return Err(serde::de::Error::custom("duplicate key"));
            }
            self.path.borrow_mut().push(key.clone());
            let value = map.next_value_seed(self.child());
            self.path.borrow_mut().pop();
            object.insert(key, value?);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bad_schemas_name_the_path() {
        let err = CompiledSchema::compile(
            &json!({
                "type": "object",
                "properties": {"origin": {"type": "strin"}}
            }),
            false,
        )
        .unwrap_err();
        let SchemaError::InvalidSchema { path, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(path, "/properties/origin/type");

        let err = CompiledSchema::compile(&json!({"type": "string", "pattern": "(["}), false)
            .unwrap_err();
        assert!(matches!(err, SchemaError::InvalidSchema { .. }), "{err:?}");
        let err = CompiledSchema::compile(&json!({"$ref": "https://example.com/s.json"}), false)
            .unwrap_err();
        assert!(matches!(err, SchemaError::InvalidSchema { .. }), "{err:?}");
    }

    #[test]
    fn every_violation_is_listed_with_its_path() {
        let schema = CompiledSchema::compile(&json!({
            "type": "object",
            "required": ["origin", "visit"],
            "properties": {
                "origin": {"type": "string"},
                "visit": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}
            }
        }), false)
        .unwrap();
        assert!(
            schema
                .validate(&json!({"origin": "x", "visit": {"n": 3}}))
                .is_ok()
        );
        let SchemaError::InvalidPayload { violations } = schema
            .validate(&json!({"origin": 5, "visit": {"n": 0}}))
            .unwrap_err()
        else {
            panic!()
        };
        let paths: Vec<&str> = violations.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths.len(), 2, "{violations:?}");
        assert!(
            paths.contains(&"/origin") && paths.contains(&"/visit/n"),
            "{paths:?}"
        );
    }

    #[test]
    fn formats_are_annotations_unless_asserted() {
        let schema = json!({
            "type": "object",
            "properties": {"visit_date": {"type": "string", "format": "date-time"}}
        });
        // Python's `datetime.now().isoformat()`: no time zone, so not an RFC 3339 date-time.
        let naive = json!({"visit_date": "2026-12-05T15:15:16.123456"});
        let annotated = CompiledSchema::compile(&schema, false).unwrap();
        assert!(annotated.validate(&naive).is_ok());
        let asserted = CompiledSchema::compile(&schema, true).unwrap();
        let SchemaError::InvalidPayload { violations } = asserted.validate(&naive).unwrap_err()
        else {
            panic!()
        };
        assert_eq!(violations[0].path, "/visit_date", "{violations:?}");
        assert!(
            asserted
                .validate(&json!({"visit_date": "2026-12-05T15:15:16Z"}))
                .is_ok()
        );
        // Types are still checked either way.
        assert!(annotated.validate(&json!({"visit_date": 5})).is_err());
    }

    #[test]
    fn duplicate_keys_are_refused_with_their_place() {
        assert_eq!(
            parse_payload(r#"{"a": 1, "b": {"c": [1, 2]}}"#).unwrap(),
            json!({"a": 1, "b": {"c": [1, 2]}})
        );
        for (text, path, key) in [
            (r#"{"a": 1, "a": 2}"#, "", "a"),
            (r#"{"x": {"n": 1, "n": 1}}"#, "/x", "n"),
            (r#"{"list": [{}, {"k/~": 0, "k/~": 1}]}"#, "/list/1", "k/~"),
            (r#"{"w/e": [[{"q": 1, "q": 2}]]}"#, "/w~1e/0/0", "q"),
        ] {
            assert_eq!(
                parse_payload(text).unwrap_err(),
                SchemaError::DuplicateKey {
                    path: path.to_owned(),
                    key: key.to_owned()
                },
                "{text}"
            );
        }
        // Equal keys in different objects are fine.
        assert!(parse_payload(r#"{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}"#).is_ok());
        for bad in ["{", r#"{"a": 1} x"#, ""] {
            assert!(
                matches!(parse_payload(bad), Err(SchemaError::NotJson { .. })),
                "{bad}"
            );
        }
    }
}

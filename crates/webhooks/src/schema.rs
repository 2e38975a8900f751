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
}

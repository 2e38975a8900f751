//! JSON Schema handling: compiling a config's schemas once (Draft 7), repairing the legacy
//! quirks real configs carry, and validating values with violations in the original's shape.

use std::fmt;
use std::sync::Arc;

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::{Location, LocationSegment};
use jsonschema::{Draft, Validator};
use serde_json::Value;

/// A JSON Schema from a config, checked against the Draft 7 meta-schema and compiled once at
/// load. Cloning is cheap (the compiled form is shared).
#[derive(Clone)]
pub struct Schema {
    raw: Arc<Value>,
    validator: Arc<Validator>,
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schema").field(&self.raw).finish()
    }
}

/// Something in a schema that the original SDK tolerated and that we repaired while loading,
/// with where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repair {
    /// JSON path segments below the schema's own path.
    pub(crate) segments: Vec<String>,
    pub(crate) message: String,
}

/// Where a schema failed to compile: path segments below the schema, and the message.
pub(crate) struct CompileError {
    pub(crate) segments: Vec<String>,
    pub(crate) message: String,
}

impl Schema {
    /// Repairs the known legacy quirks (returned as [`Repair`]s), checks the result against the
    /// Draft 7 meta-schema and compiles it. `validate_formats` turns `format` into an assertion.
    pub(crate) fn compile(
        mut raw: Value,
        validate_formats: bool,
    ) -> Result<(Self, Vec<Repair>), CompileError> {
        let mut repairs = Vec::new();
        repair_boolean_required(&mut raw, &mut Vec::new(), &mut repairs);
        // `build` checks the schema against the Draft 7 meta-schema first.
        let validator = jsonschema::options()
            .with_draft(Draft::Draft7)
            .should_validate_formats(validate_formats)
            .build(&raw)
            .map_err(|error| CompileError {
                segments: segments(error.instance_path()),
                message: error.to_string(),
            })?;
        Ok((
            Self {
                raw: Arc::new(raw),
                validator: Arc::new(validator),
            },
            repairs,
        ))
    }

    /// The schema as loaded (after legacy repairs).
    #[must_use]
    pub fn as_json(&self) -> &Value {
        &self.raw
    }

    /// Whether `value` satisfies the schema. Faster than [`Schema::violations`]: it stops at the
    /// first violation and builds no messages.
    #[must_use]
    pub fn is_valid(&self, value: &Value) -> bool {
        self.validator.is_valid(value)
    }

    /// Every violation of the schema by `value`, ordered by where in `value` it is.
    #[must_use]
    pub fn violations(&self, value: &Value) -> Vec<Violation> {
        self.collect(value, false)
    }

    /// As [`Schema::violations`], but no part of `value` appears in the result: messages say
    /// `[redacted]` where they would quote it and every [`Violation::value`] is `null`. For
    /// credentials.
    #[must_use]
    pub fn violations_redacted(&self, value: &Value) -> Vec<Violation> {
        self.collect(value, true)
    }

    fn collect(&self, value: &Value, redact: bool) -> Vec<Violation> {
        let mut found: Vec<Violation> = self
            .validator
            .iter_errors(value)
            .map(|error| {
                let mut pointer = error.instance_path().as_str().to_owned();
                let mut value = error.instance().clone().into_owned();
                if let ValidationErrorKind::Required { property } = error.kind() {
                    // Point at the missing property itself, which has no value.
                    if let Some(name) = property.as_str() {
                        pointer.push('/');
                        pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
                    }
                    value = Value::Null;
                }
                let message = if redact {
                    value = Value::Null;
                    error.masked_with("[redacted]").to_string()
                } else {
                    error.to_string()
                };
                Violation {
                    pointer,
                    schema_path: segments(error.schema_path()),
                    message,
                    value,
                }
            })
            .collect();
        found.sort_by(|a, b| a.pointer.cmp(&b.pointer));
        found
    }
}

/// One way a value fails a schema.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Violation {
    /// JSON Pointer (RFC 6901) to the failing value; for a missing required property, the
    /// pointer to where it should be.
    pub pointer: String,
    /// The path of the failing keyword inside the schema (`["properties", "name", "type"]`).
    pub schema_path: Vec<String>,
    /// What is wrong, as the validator words it.
    pub message: String,
    /// The failing value (`null` for a missing property).
    pub value: Value,
}

/// Renders violations the way the original SDK builds its validation message: for each error,
/// the Python list of its schema path, its message, and `",\n "`.
pub(crate) fn python_message(violations: &[Violation]) -> String {
    let mut message = String::new();
    for violation in violations {
        message.push('[');
        for (i, segment) in violation.schema_path.iter().enumerate() {
            if i > 0 {
                message.push_str(", ");
            }
            if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
                message.push_str(segment);
            } else {
                message.push('\'');
                message.push_str(&segment.replace('\\', "\\\\").replace('\'', "\\'"));
                message.push('\'');
            }
        }
        message.push_str("], ");
        message.push_str(&violation.message);
        message.push_str(",\n ");
    }
    message
}

fn segments(location: &Location) -> Vec<String> {
    location
        .segments()
        .map(|segment| match segment {
            LocationSegment::Property(name) => name.into_owned(),
            LocationSegment::Index(index) => index.to_string(),
        })
        .collect()
}

/// Keywords whose value is one subschema.
const SUBSCHEMA: &[&str] = &[
    "items",
    "additionalItems",
    "additionalProperties",
    "contains",
    "propertyNames",
    "if",
    "then",
    "else",
    "not",
];
/// Keywords whose value is an array of subschemas.
const SUBSCHEMA_ARRAYS: &[&str] = &["allOf", "anyOf", "oneOf", "items"];
/// Keywords whose value maps names to subschemas.
const SUBSCHEMA_MAPS: &[&str] = &[
    "properties",
    "patternProperties",
    "definitions",
    "dependencies",
];

/// Removes `"required": true|false` from every subschema (a Draft 3 habit: in Draft 7
/// `required` is an array on the parent). The original SDK never checks its schemas, and its
/// validator only looks at `required` on objects, so a boolean there never did anything; we
/// drop it and say so. Walks only schema positions, so a property *named* `required` is kept.
fn repair_boolean_required(schema: &mut Value, at: &mut Vec<String>, repairs: &mut Vec<Repair>) {
    let Value::Object(object) = schema else {
        return;
    };
    if let Some(Value::Bool(flag)) = object.get("required") {
        let flag = *flag;
        object.remove("required");
        let mut segments = at.clone();
        segments.push("required".to_owned());
        repairs.push(Repair {
            segments,
            message: format!(
                "`\"required\": {flag}` inside a property is Draft 3 syntax and has no effect; \
                 removed (list required properties in the parent's `required` array)"
            ),
        });
    }
    for (key, value) in object.iter_mut() {
        let key = key.as_str();
        if SUBSCHEMA_MAPS.contains(&key) {
            if let Value::Object(map) = value {
                for (name, sub) in map.iter_mut() {
                    at.push(key.to_owned());
                    at.push(name.clone());
                    repair_boolean_required(sub, at, repairs);
                    at.pop();
                    at.pop();
                }
            }
        } else if SUBSCHEMA_ARRAYS.contains(&key) && value.is_array() {
            if let Value::Array(items) = value {
                for (index, sub) in items.iter_mut().enumerate() {
                    at.push(key.to_owned());
                    at.push(index.to_string());
                    repair_boolean_required(sub, at, repairs);
                    at.pop();
                    at.pop();
                }
            }
        } else if SUBSCHEMA.contains(&key) {
            at.push(key.to_owned());
            repair_boolean_required(value, at, repairs);
            at.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn boolean_required_is_removed_only_in_schema_positions() {
        let (schema, repairs) = Schema::compile(
            json!({
                "type": "object",
                "properties": {
                    "token": {"type": "string", "required": false},
                    "required": {"type": "boolean"},
                    "nested": {"type": "array", "items": {"required": true}}
                },
                "default": {"required": true}
            }),
            false,
        )
        .unwrap_or_else(|e| panic!("{}", e.message));
        let paths: Vec<String> = repairs.iter().map(|r| r.segments.join(".")).collect();
        assert_eq!(
            paths,
            [
                "properties.nested.items.required",
                "properties.token.required"
            ]
        );
        assert!(schema.as_json()["properties"]["required"].is_object());
        assert_eq!(schema.as_json()["default"], json!({"required": true}));
    }

    #[test]
    fn violations_point_at_the_failing_value_and_missing_properties() {
        let (schema, _) = Schema::compile(
            json!({
                "type": "object",
                "required": ["name"],
                "properties": {"count": {"type": "integer"}, "tags": {"items": {"type": "string"}}}
            }),
            false,
        )
        .unwrap_or_else(|e| panic!("{}", e.message));
        let found = schema.violations(&json!({"count": "x", "tags": ["a", 3]}));
        let pointers: Vec<&str> = found.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(pointers, ["/count", "/name", "/tags/1"]);
        assert_eq!(found[0].value, json!("x"));
        assert_eq!(found[1].value, Value::Null);
        assert_eq!(found[0].schema_path, ["properties", "count", "type"]);
        let message = python_message(&found[..1]);
        assert!(
            message.starts_with("['properties', 'count', 'type'], "),
            "{message}"
        );
        assert!(message.ends_with(",\n "), "{message:?}");
    }

    #[test]
    fn format_is_an_annotation_unless_asked_for() {
        let raw = json!({"type": "string", "format": "email"});
        let (lenient, _) =
            Schema::compile(raw.clone(), false).unwrap_or_else(|e| panic!("{}", e.message));
        let (strict, _) = Schema::compile(raw, true).unwrap_or_else(|e| panic!("{}", e.message));
        assert!(lenient.is_valid(&json!("not an address")));
        assert!(!strict.is_valid(&json!("not an address")));
        // Formats the validator does not know (Autohive's "password", "text") never fail.
        let (custom, _) = Schema::compile(json!({"type": "string", "format": "password"}), true)
            .unwrap_or_else(|e| panic!("{}", e.message));
        assert!(custom.is_valid(&json!("hunter2")));
    }

    #[test]
    fn bad_schemas_say_where() {
        let Err(error) = Schema::compile(json!({"properties": {"a": {"type": "strin"}}}), false)
        else {
            panic!("compiled")
        };
        assert_eq!(error.segments, ["properties", "a", "type"]);
        assert!(Schema::compile(json!({"type": "string", "pattern": "(["}), false).is_err());
        assert!(Schema::compile(json!({"$ref": "https://example.com/s.json"}), false).is_err());
    }
}

//! Step specs: loading them (JSON or YAML), the references they may hold (`Secret`,
//! `Connection`, `Output`, `Parameter`), and looking a [`Path`] up with those references
//! resolved.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path as FsPath;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::SpecError;
use crate::path::{Path, Segment};
use crate::value::{
    ConnectionRef, OutputRef, ParameterRef, SecretRef, SecretValue, Unresolvable, encode_bytes,
};

/// A value in a spec that stands for something supplied elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reference {
    /// `{"$type": "Secret", "name": …}`.
    Secret {
        /// Secret name.
        name: String,
    },
    /// `{"$type": "Connection", "type": …, "name": …}`.
    Connection {
        /// Connection type.
        kind: String,
        /// Connection name.
        name: String,
    },
    /// `{"$type": "Output", "taskName": …, "name": …}` (`from` in older specs).
    Output {
        /// The step that sets the output.
        step: String,
        /// Output name.
        name: String,
    },
    /// `{"$type": "Parameter", "name": …}`.
    Parameter {
        /// Parameter name.
        name: String,
    },
}

impl Reference {
    /// Reads a reference from an object, if it is one. `Ok(None)`: not a reference (no
    /// `$type`, or a `$type` this crate does not resolve, which stays plain data).
    ///
    /// # Errors
    /// A known `$type` with a missing or non-string field; the message names the field.
    pub fn from_object(object: &Map<String, Value>) -> Result<Option<Reference>, String> {
        let Some(kind) = object.get("$type").and_then(Value::as_str) else {
            return Ok(None);
        };
        let field = |name: &str| -> Result<String, String> {
            match object.get(name) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(format!(
                    "`{name}` must be a string, found {}",
                    json_type(other)
                )),
                None => Err(format!("missing `{name}`")),
            }
        };
        let reference = match kind {
            "Secret" => Reference::Secret {
                name: field("name")?,
            },
            "Connection" => Reference::Connection {
                kind: field("type")?,
                name: field("name")?,
            },
            "Output" => {
                let step = if object.contains_key("taskName") {
                    field("taskName")?
                } else if object.contains_key("from") {
                    field("from")?
                } else {
                    return Err("missing `taskName` (or `from`)".into());
                };
                Reference::Output {
                    step,
                    name: field("name")?,
                }
            }
            "Parameter" => Reference::Parameter {
                name: field("name")?,
            },
            _ => return Ok(None),
        };
        Ok(Some(reference))
    }

    fn record(&self, unresolvable: &mut Unresolvable) {
        match self {
            Reference::Secret { name } => {
                unresolvable.secrets.push(SecretRef { name: name.clone() });
            }
            Reference::Connection { kind, name } => unresolvable.connections.push(ConnectionRef {
                kind: kind.clone(),
                name: name.clone(),
            }),
            Reference::Output { step, name } => unresolvable.outputs.push(OutputRef {
                from: step.clone(),
                name: name.clone(),
            }),
            Reference::Parameter { name } => {
                unresolvable
                    .parameters
                    .push(ParameterRef { name: name.clone() });
            }
        }
    }
}

/// The spec of one step, checked: an object whose references are all well formed.
///
/// ```
/// use switchyard_metadata::{Reference, SpecSource};
///
/// let spec = SpecSource::from_yaml(r#"
/// azure:
///   connection: {$type: Connection, type: azure, name: prod}
/// password: {$type: Secret, name: db-password}
/// "#)?;
/// assert!(spec.references().any(|r| r == &Reference::Secret { name: "db-password".into() }));
///
/// let bad = SpecSource::from_json(r#"{"x": {"$type": "Secret", "nmae": "typo"}}"#).unwrap_err();
/// assert_eq!(bad.to_string(), "<string>: bad Secret reference at `x`: missing `name`");
/// # Ok::<(), switchyard_metadata::SpecError>(())
/// ```
#[derive(Debug, Clone)]
pub struct SpecSource {
    spec: Arc<Value>,
    references: Arc<[Reference]>,
}

impl SpecSource {
    /// Reads a spec file: YAML when the name ends in `.yaml` or `.yml`, JSON otherwise.
    ///
    /// # Errors
    /// [`SpecError`] naming the file.
    pub fn from_file(path: impl AsRef<FsPath>) -> Result<Self, SpecError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
            path: path.to_owned(),
            source,
        })?;
        let origin = path.display().to_string();
        let yaml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
        if yaml {
            Self::parse_yaml(&text, origin)
        } else {
            Self::parse_json(&text, origin)
        }
    }

    /// Parses a JSON spec.
    ///
    /// # Errors
    /// [`SpecError::Json`] with line and column, or a bad reference.
    pub fn from_json(text: &str) -> Result<Self, SpecError> {
        Self::parse_json(text, "<string>".into())
    }

    /// Parses a YAML spec.
    ///
    /// # Errors
    /// [`SpecError::Yaml`], or a bad reference.
    pub fn from_yaml(text: &str) -> Result<Self, SpecError> {
        Self::parse_yaml(text, "<string>".into())
    }

    /// Uses a value already in memory.
    ///
    /// # Errors
    /// Not an object, or a bad reference.
    pub fn from_value(spec: Value) -> Result<Self, SpecError> {
        Self::check(spec, "<value>".into())
    }

    fn parse_json(text: &str, origin: String) -> Result<Self, SpecError> {
        let spec = serde_json::from_str(text).map_err(|e| SpecError::Json {
            origin: origin.clone(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        Self::check(spec, origin)
    }

    fn parse_yaml(text: &str, origin: String) -> Result<Self, SpecError> {
        let spec = serde_yaml_ng::from_str(text).map_err(|e| SpecError::Yaml {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
        Self::check(spec, origin)
    }

    fn check(spec: Value, origin: String) -> Result<Self, SpecError> {
        if !spec.is_object() {
            return Err(SpecError::NotAnObject {
                origin,
                found: json_type(&spec),
            });
        }
        let mut references = Vec::new();
        collect_references(&spec, &mut Path::default(), &mut references).map_err(
            |(at, kind, reason)| SpecError::BadReference {
                origin,
                kind,
                at: at.to_string(),
                reason,
            },
        )?;
        Ok(SpecSource {
            spec: Arc::new(spec),
            references: references.into(),
        })
    }

    /// The spec as written, references unresolved.
    #[must_use]
    pub fn value(&self) -> &Value {
        &self.spec
    }

    /// Every reference in the spec, in document order.
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.references.iter()
    }
}

type BadReference = (Path, String, String);

fn collect_references(
    value: &Value,
    at: &mut Path,
    out: &mut Vec<Reference>,
) -> Result<(), BadReference> {
    match value {
        Value::Object(object) => match Reference::from_object(object) {
            Ok(Some(reference)) => out.push(reference),
            Ok(None) => {
                for (key, child) in object {
                    at.push(Segment::Key(key.clone()));
                    collect_references(child, at, out)?;
                    at.pop();
                }
            }
            Err(reason) => {
                let kind = object
                    .get("$type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                return Err((at.clone(), kind, reason));
            }
        },
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                at.push(Segment::Index(i));
                collect_references(child, at, out)?;
                at.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What a reference resolves against for one request.
pub(crate) struct Resolver<'a> {
    pub(crate) secrets: &'a HashMap<String, SecretValue>,
    pub(crate) connections: &'a HashMap<(String, String), Value>,
    pub(crate) parameters: &'a Map<String, Value>,
    /// The outputs the lookup needs (see [`outputs_needed`]), fetched for this request.
    pub(crate) outputs: HashMap<(String, String), Value>,
}

impl Resolver<'_> {
    fn resolve(&self, reference: &Reference) -> Option<Value> {
        match reference {
            Reference::Secret { name } => self.secrets.get(name).map(|s| encode_bytes(s.expose())),
            Reference::Connection { kind, name } => {
                self.connections.get(&(kind.clone(), name.clone())).cloned()
            }
            Reference::Output { step, name } => {
                self.outputs.get(&(step.clone(), name.clone())).cloned()
            }
            Reference::Parameter { name } => self.parameters.get(name).cloned(),
        }
    }

    /// Replaces every reference in a spec subtree; unresolved ones stay as written.
    fn resolve_tree(&self, value: &Value, unresolvable: &mut Unresolvable) -> Value {
        match value {
            Value::Object(object) => {
                if let Ok(Some(reference)) = Reference::from_object(object) {
                    return self.resolve(&reference).unwrap_or_else(|| {
                        reference.record(unresolvable);
                        value.clone()
                    });
                }
                Value::Object(
                    object
                        .iter()
                        .map(|(k, v)| (k.clone(), self.resolve_tree(v, unresolvable)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.resolve_tree(v, unresolvable))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// The outputs a [`lookup`] of `path` will read: the first `Output` reference met along the
/// path (what lies beyond it is data), or else those in the subtree the path ends at. Lets
/// the service fetch only these from its store.
pub(crate) fn outputs_needed(spec: &Value, path: &Path) -> Vec<(String, String)> {
    let mut node = Cow::Borrowed(spec);
    for segment in path.segments() {
        if let Value::Object(object) = node.as_ref()
            && let Ok(Some(reference)) = Reference::from_object(object)
        {
            return match reference {
                Reference::Output { step, name } => vec![(step, name)],
                // Secrets, connections and parameters resolve to data: no outputs beyond.
                _ => Vec::new(),
            };
        }
        node = match child(node, segment) {
            Ok(next) => next,
            Err(_) => return Vec::new(),
        };
    }
    let mut references = Vec::new();
    let _ = collect_references(&node, &mut Path::default(), &mut references);
    let mut needed: Vec<(String, String)> = references
        .into_iter()
        .filter_map(|r| match r {
            Reference::Output { step, name } => Some((step, name)),
            _ => None,
        })
        .collect();
    needed.sort();
    needed.dedup();
    needed
}

/// The outcome of looking a path up in a spec.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// A value (complete when `unresolvable` is empty).
    Found {
        value: Value,
        unresolvable: Unresolvable,
    },
    /// Nothing there.
    Missing { reason: String },
}

/// Walks `path` through `spec`, resolving references met on the way; a reference that cannot
/// be resolved stops the walk and is returned in place, incomplete (as Relay did).
pub(crate) fn lookup(spec: &Value, path: &Path, resolver: &Resolver<'_>) -> Lookup {
    let mut node: Cow<'_, Value> = Cow::Borrowed(spec);
    // Values from parameters, outputs, connections and secrets are data: a `$type` in them
    // is not followed.
    let mut in_spec = true;
    for (depth, segment) in path.segments().iter().enumerate() {
        if in_spec
            && let Value::Object(object) = node.as_ref()
            && let Ok(Some(reference)) = Reference::from_object(object)
        {
            match resolver.resolve(&reference) {
                Some(resolved) => {
                    node = Cow::Owned(resolved);
                    in_spec = false;
                }
                None => {
                    let mut unresolvable = Unresolvable::default();
                    reference.record(&mut unresolvable);
                    return Lookup::Found {
                        value: node.into_owned(),
                        unresolvable,
                    };
                }
            }
        }
        node = match child(node, segment) {
            Ok(next) => next,
            Err(why) => {
                return Lookup::Missing {
                    reason: format!("`{}` {why}", display_prefix(path, depth)),
                };
            }
        };
    }
    let mut unresolvable = Unresolvable::default();
    let value = if in_spec {
        resolver.resolve_tree(&node, &mut unresolvable)
    } else {
        node.into_owned()
    };
    unresolvable.normalize();
    Lookup::Found {
        value,
        unresolvable,
    }
}

fn display_prefix(path: &Path, depth: usize) -> String {
    if depth == 0 {
        "the spec".to_owned()
    } else {
        path.prefix(depth).to_string()
    }
}

/// One step down. Keys index arrays when they are decimal numbers, and indexes look up
/// objects by their decimal form, so `x["0"]` (all Python can send) reaches an array element.
fn child<'v>(node: Cow<'v, Value>, segment: &Segment) -> Result<Cow<'v, Value>, String> {
    let key_of_index;
    let (key, index): (Option<&str>, Option<usize>) = match segment {
        Segment::Key(key) => (
            Some(key.as_str()),
            key.parse::<usize>().ok().filter(|i| i.to_string() == *key),
        ),
        Segment::Index(i) => {
            key_of_index = i.to_string();
            (Some(key_of_index.as_str()), Some(*i))
        }
    };
    let describe = |v: &Value| -> String {
        match (v, key, index) {
            (Value::Object(_), Some(k), _) => {
                let mut quoted = String::new();
                let _ = crate::path::write_python_json_string(&mut quoted, k);
                format!("has no key {quoted}")
            }
            (Value::Array(items), _, Some(i)) => {
                format!("has no index {i} (length {})", items.len())
            }
            (Value::Array(_), _, None) => "is an array: use an integer index".to_owned(),
            (other, _, _) => format!("is {}, not an object or array", json_type(other)),
        }
    };
    match node {
        Cow::Borrowed(v) => {
            let found = match (v, key, index) {
                (Value::Object(o), Some(k), _) => o.get(k),
                (Value::Array(a), _, Some(i)) => a.get(i),
                _ => None,
            };
            found.map(Cow::Borrowed).ok_or_else(|| describe(v))
        }
        Cow::Owned(mut v) => {
            let found = match (&mut v, key, index) {
                (Value::Object(o), Some(k), _) => o.get_mut(k),
                (Value::Array(a), _, Some(i)) => a.get_mut(i),
                _ => None,
            };
            match found {
                Some(found) => Ok(Cow::Owned(found.take())),
                None => Err(describe(&v)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fixture {
        secrets: HashMap<String, SecretValue>,
        connections: HashMap<(String, String), Value>,
        parameters: Map<String, Value>,
    }

    impl Fixture {
        fn new() -> Self {
            let mut secrets = HashMap::new();
            secrets.insert("pw".to_owned(), SecretValue::from("hunter2"));
            secrets.insert("key".to_owned(), SecretValue::new(vec![0xff, 0x00]));
            let mut connections = HashMap::new();
            connections.insert(
                ("azure".to_owned(), "prod".to_owned()),
                json!({"clientID": "abc", "secret": "s3"}),
            );
            let mut parameters = Map::new();
            parameters.insert(
                "cfg".into(),
                json!({"region": "eu", "nested": {"$type": "Secret", "name": "pw"}}),
            );
            Fixture {
                secrets,
                connections,
                parameters,
            }
        }

        fn resolver(&self) -> Resolver<'_> {
            let mut outputs = HashMap::new();
            outputs.insert(("build".to_owned(), "image".to_owned()), json!("repo:1.2"));
            Resolver {
                secrets: &self.secrets,
                connections: &self.connections,
                parameters: &self.parameters,
                outputs,
            }
        }
    }

    fn spec() -> Value {
        json!({
            "azure": {"connection": {"$type": "Connection", "type": "azure", "name": "prod"}},
            "pw": {"$type": "Secret", "name": "pw"},
            "key": {"$type": "Secret", "name": "key"},
            "image": {"$type": "Output", "taskName": "build", "name": "image"},
            "old": {"$type": "Output", "from": "build", "name": "image"},
            "cfg": {"$type": "Parameter", "name": "cfg"},
            "later": {"$type": "Output", "taskName": "deploy", "name": "url"},
            "mixed": {"a": {"$type": "Secret", "name": "pw"}, "b": {"$type": "Secret", "name": "nope"},
                      "c": {"$type": "Secret", "name": "nope"}},
            "items": [{"name": "first"}, {"name": "second"}],
            "text": "plain",
        })
    }

    fn found(spec: &Value, path: &str, fixture: &Fixture) -> (Value, Unresolvable) {
        let path = Path::parse(path).expect("path");
        match lookup(spec, &path, &fixture.resolver()) {
            Lookup::Found {
                value,
                unresolvable,
            } => (value, unresolvable),
            Lookup::Missing { reason } => panic!("{path}: {reason}"),
        }
    }

    fn missing(spec: &Value, path: &str, fixture: &Fixture) -> String {
        let path = Path::parse(path).expect("path");
        match lookup(spec, &path, &fixture.resolver()) {
            Lookup::Missing { reason } => reason,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn resolves_through_references() {
        let f = Fixture::new();
        let s = spec();
        assert_eq!(found(&s, "azure.connection.secret", &f).0, json!("s3"));
        assert_eq!(
            found(&s, "azure", &f).0,
            json!({"connection": {"clientID": "abc", "secret": "s3"}})
        );
        assert_eq!(found(&s, "pw", &f).0, json!("hunter2"));
        assert_eq!(
            found(&s, "key", &f).0,
            json!({"$encoding": "base64", "data": "/wA="})
        );
        assert_eq!(found(&s, "image", &f).0, json!("repo:1.2"));
        assert_eq!(found(&s, "old", &f).0, json!("repo:1.2"));
        assert_eq!(found(&s, "cfg.region", &f).0, json!("eu"));
        assert_eq!(found(&s, "items[1].name", &f).0, json!("second"));
        assert_eq!(found(&s, r#"items["1"]["name"]"#, &f).0, json!("second"));
    }

    #[test]
    fn only_the_outputs_a_lookup_reads_are_needed() {
        let s = spec();
        let needed = |p: &str| outputs_needed(&s, &Path::parse(p).expect("path"));
        let image = vec![("build".to_owned(), "image".to_owned())];
        assert_eq!(needed("image"), image);
        assert_eq!(needed("image.deeper"), image);
        assert_eq!(needed("old"), image);
        assert_eq!(needed("azure.connection.secret"), Vec::new());
        assert_eq!(needed("items[0]"), Vec::new());
        assert_eq!(needed("nope.x"), Vec::new());
        assert_eq!(
            needed(""),
            vec![
                ("build".to_owned(), "image".to_owned()),
                ("deploy".to_owned(), "url".to_owned())
            ]
        );
    }

    #[test]
    fn parameter_values_are_data() {
        let f = Fixture::new();
        let (value, unresolvable) = found(&spec(), "cfg.nested", &f);
        assert_eq!(value, json!({"$type": "Secret", "name": "pw"}));
        assert!(unresolvable.is_empty());
    }

    #[test]
    fn unresolved_references_stay_in_place() {
        let f = Fixture::new();
        let s = spec();
        let (value, unresolvable) = found(&s, "later", &f);
        assert_eq!(
            value,
            json!({"$type": "Output", "taskName": "deploy", "name": "url"})
        );
        assert_eq!(
            serde_json::to_value(&unresolvable).expect("json"),
            json!({"outputs": [{"from": "deploy", "name": "url"}]})
        );
        let (value, unresolvable) = found(&s, "mixed", &f);
        assert_eq!(value["a"], json!("hunter2"));
        assert_eq!(value["b"], json!({"$type": "Secret", "name": "nope"}));
        assert_eq!(
            serde_json::to_value(&unresolvable).expect("json"),
            json!({"secrets": [{"name": "nope"}]})
        );
        // A path through an unresolved reference stops there.
        let (value, unresolvable) = found(&s, "later.deeper", &f);
        assert_eq!(value["$type"], json!("Output"));
        assert_eq!(unresolvable.outputs.len(), 1);
    }

    #[test]
    fn missing_paths_say_where() {
        let f = Fixture::new();
        let s = spec();
        assert_eq!(missing(&s, "nope", &f), r#"`the spec` has no key "nope""#);
        assert_eq!(
            missing(&s, "azure.connection.nope", &f),
            r#"`azure["connection"]` has no key "nope""#
        );
        assert_eq!(
            missing(&s, "items[5]", &f),
            "`items` has no index 5 (length 2)"
        );
        assert_eq!(
            missing(&s, "text.x", &f),
            "`text` is a string, not an object or array"
        );
        assert_eq!(
            missing(&s, "items.x", &f),
            "`items` is an array: use an integer index"
        );
    }

    #[test]
    fn bad_references_are_refused_at_load() {
        let cases = [
            (
                json!({"a": [{"$type": "Connection", "name": "x"}]}),
                "<value>: bad Connection reference at `a[0]`: missing `type`",
            ),
            (
                json!({"$type": "Output", "name": "x"}),
                "<value>: bad Output reference at ``: missing `taskName` (or `from`)",
            ),
            (
                json!({"p": {"$type": "Parameter", "name": 5}}),
                "<value>: bad Parameter reference at `p`: `name` must be a string, found a number",
            ),
        ];
        for (spec, message) in cases {
            let err = SpecSource::from_value(spec).expect_err(message);
            assert_eq!(err.to_string(), message);
        }
        assert!(matches!(
            SpecSource::from_value(json!([1])),
            Err(SpecError::NotAnObject { .. })
        ));
        let unknown = SpecSource::from_value(json!({"x": {"$type": "Answer", "askRef": "a"}}))
            .expect("unknown $type is data");
        assert_eq!(unknown.references().count(), 0);
    }

    #[test]
    fn json_and_yaml_errors_have_positions() {
        match SpecSource::from_json("{\n  \"a\": }") {
            Err(SpecError::Json { line, column, .. }) => assert_eq!((line, column), (2, 8)),
            other => panic!("{other:?}"),
        }
        match SpecSource::from_yaml("a: [1, 2\nb: 3") {
            Err(SpecError::Yaml { message, .. }) => assert!(message.contains("line"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}

//! JSON to CEL: how an event's `data` and `event_type` become the two filter variables.
//!
//! The conversion borrows: strings and map keys point into the event's own JSON, so binding
//! a payload allocates one box per JSON node and copies no text. Integers bind as CEL `int`
//! (not `uint`, which `serde_json` would suggest for positive numbers) so that
//! `data.count + 1` type-checks the way a filter author expects; integers beyond `i64` bind
//! as `uint`, and everything else with a fraction or exponent as `double`.

use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::Val;
use serde_json::Value as Json;
use std::collections::HashMap;

/// Converts a JSON value into a CEL value that borrows the JSON's strings.
///
/// ```
/// use cel::{Context, Env, Value};
/// use std::sync::Arc;
///
/// let json = serde_json::json!({"count": 41, "tags": ["a", "b"]});
/// let env = Arc::new(Env::stdlib());
/// let mut context = Context::with_env(env.clone());
/// context.add_variable_as_val("data", switchyard_runtime_events::bind_json(&json));
/// let program = env.compile("data.count + 1 == 42 && 'b' in data.tags").unwrap();
/// assert_eq!(program.execute(&context), Ok(Value::Bool(true)));
/// ```
pub fn bind_json(json: &Json) -> Box<dyn Val + '_> {
    match json {
        Json::Null => Box::new(CelNull),
        Json::Bool(b) => Box::new(CelBool::from(*b)),
        Json::Number(n) => number(n),
        Json::String(s) => Box::new(CelString::from(s.as_str())),
        Json::Array(items) => Box::new(CelList::from(
            items.iter().map(bind_json).collect::<Vec<_>>(),
        )),
        Json::Object(entries) => bind_object(Some(entries)),
    }
}

/// Converts a JSON object into a CEL map (an empty one for `None`), borrowing its strings.
pub(crate) fn bind_object(entries: Option<&serde_json::Map<String, Json>>) -> Box<dyn Val + '_> {
    let Some(entries) = entries else {
        return Box::new(CelMap::from(
            HashMap::<CelMapKey<'_>, Box<dyn Val + '_>>::new(),
        ));
    };
    let mut map: HashMap<CelMapKey<'_>, Box<dyn Val + '_>> = HashMap::with_capacity(entries.len());
    for (key, value) in entries {
        map.insert(CelMapKey::from(key.as_str()), bind_json(value));
    }
    Box::new(CelMap::from(map))
}

fn number(n: &serde_json::Number) -> Box<dyn Val + 'static> {
    if let Some(i) = n.as_i64() {
        Box::new(CelInt::from(i))
    } else if let Some(u) = n.as_u64() {
        Box::new(CelUInt::from(u))
    } else {
        // `as_f64` only fails for arbitrary-precision numbers, which this crate does not enable.
        Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cel::{Context, Env, Value};
    use std::sync::Arc;

    fn eval(expr: &str, data: &Json) -> Result<Value, cel::ExecutionError> {
        let env = Arc::new(Env::stdlib());
        let mut context = Context::with_env(env.clone());
        context.add_variable_as_val("data", bind_json(data));
        let program = env.compile(expr).expect("compiles");
        program.execute(&context)
    }

    #[test]
    fn integers_are_int_and_big_ones_uint() {
        let data = serde_json::json!({"n": 5, "neg": -3, "big": u64::MAX, "f": 1.5});
        assert_eq!(eval("type(data.n) == int", &data), Ok(Value::Bool(true)));
        assert_eq!(eval("data.n + 1", &data), Ok(Value::Int(6)));
        assert_eq!(eval("data.neg * 2", &data), Ok(Value::Int(-6)));
        assert_eq!(eval("type(data.big) == uint", &data), Ok(Value::Bool(true)));
        assert_eq!(eval("data.f * 2.0", &data), Ok(Value::Float(3.0)));
    }

    #[test]
    fn nested_values_and_has() {
        let data = serde_json::json!({"a": {"b": [null, true, "x"]}});
        assert_eq!(eval("data.a.b[2] == 'x'", &data), Ok(Value::Bool(true)));
        assert_eq!(eval("data.a.b[0] == null", &data), Ok(Value::Bool(true)));
        assert_eq!(eval("has(data.a.b)", &data), Ok(Value::Bool(true)));
        assert_eq!(eval("has(data.a.c)", &data), Ok(Value::Bool(false)));
        assert!(eval("data.a.c == 1", &data).is_err());
    }
}

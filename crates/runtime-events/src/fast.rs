//! A direct evaluator for the filters people write most: comparisons of `event_type` and
//! `data` paths with literals, joined by `&&`, `||` and `!`.
//!
//! It reads the event's JSON in place, without binding it to CEL values, and gives the same
//! answer as the CEL interpreter whenever it gives one: where CEL's answer would be an error,
//! or depends on a case this evaluator does not model (a double compared with an int, a list
//! compared with a string), it answers "unknown" and the interpreter decides. CEL's `&&` and
//! `||` absorb errors (`false && error` is `false`), and so does this evaluator with its
//! unknowns, so a definite answer here is the interpreter's answer. A property test checks
//! that against the interpreter on random events.

use cel::common::ast::{CallExpr, Expr, IdedExpr, LiteralValue, operators};
use regex::Regex;
use serde_json::Value as Json;
use std::sync::Arc;

/// A compiled plan; see the module docs.
#[derive(Debug)]
pub(crate) enum Plan {
    And(Box<Plan>, Box<Plan>),
    Or(Box<Plan>, Box<Plan>),
    Not(Box<Plan>),
    Const(bool),
    Eq {
        operand: Operand,
        literal: Literal,
        negate: bool,
    },
    In {
        operand: Operand,
        literals: Vec<Literal>,
    },
    Str {
        operand: Operand,
        test: StrTest,
        arg: String,
    },
    Matches {
        operand: Operand,
        regex: Arc<Regex>,
    },
    Has {
        operand: Operand,
        field: String,
    },
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum StrTest {
    StartsWith,
    EndsWith,
    Contains,
}

#[derive(Debug)]
pub(crate) enum Operand {
    EventType,
    Data(Vec<Step>),
}

#[derive(Debug)]
pub(crate) enum Step {
    Field(String),
    Index(i64),
}

#[derive(Debug)]
pub(crate) enum Literal {
    Str(String),
    Int(i64),
    Bool(bool),
    Null,
}

/// True, false, or unknown (an error, or a case left to the interpreter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    T,
    F,
    U,
}

impl From<bool> for Tri {
    fn from(b: bool) -> Self {
        if b { Tri::T } else { Tri::F }
    }
}

/// The value an operand resolves to.
enum Resolved<'a> {
    Str(&'a str),
    Json(&'a Json),
}

/// Plans `e`, or `None` when any part of it is outside what this evaluator models.
pub(crate) fn plan(e: &IdedExpr) -> Option<Plan> {
    match &e.expr {
        Expr::Literal(LiteralValue::Boolean(b)) => Some(Plan::Const(**b)),
        Expr::Select(select) if select.test => Some(Plan::Has {
            operand: operand(&select.operand)?,
            field: select.field.clone(),
        }),
        Expr::Call(call) => plan_call(call),
        _ => None,
    }
}

fn plan_call(call: &CallExpr) -> Option<Plan> {
    match (
        call.func_name.as_str(),
        call.target.as_deref(),
        call.args.as_slice(),
    ) {
        (operators::LOGICAL_AND, None, [a, b]) => {
            Some(Plan::And(Box::new(plan(a)?), Box::new(plan(b)?)))
        }
        (operators::LOGICAL_OR, None, [a, b]) => {
            Some(Plan::Or(Box::new(plan(a)?), Box::new(plan(b)?)))
        }
        (operators::LOGICAL_NOT, None, [a]) => Some(Plan::Not(Box::new(plan(a)?))),
        (op @ (operators::EQUALS | operators::NOT_EQUALS), None, [a, b]) => {
            let negate = op == operators::NOT_EQUALS;
            let (operand, literal) = match (operand(a), literal(b)) {
                (Some(o), Some(l)) => (o, l),
                _ => (operand(b)?, literal(a)?),
            };
            Some(Plan::Eq {
                operand,
                literal,
                negate,
            })
        }
        (operators::IN, None, [a, list]) => {
            let Expr::List(list) = &list.expr else {
                return None;
            };
            Some(Plan::In {
                operand: operand(a)?,
                literals: list
                    .elements
                    .iter()
                    .map(literal)
                    .collect::<Option<Vec<_>>>()?,
            })
        }
        (name @ ("startsWith" | "endsWith" | "contains"), Some(target), [arg]) => {
            let Some(Literal::Str(arg)) = literal(arg) else {
                return None;
            };
            let test = match name {
                "startsWith" => StrTest::StartsWith,
                "endsWith" => StrTest::EndsWith,
                _ => StrTest::Contains,
            };
            Some(Plan::Str {
                operand: operand(target)?,
                test,
                arg,
            })
        }
        ("matches", Some(target), [pattern]) | ("matches", None, [target, pattern]) => {
            let Some(Literal::Str(pattern)) = literal(pattern) else {
                return None;
            };
            Some(Plan::Matches {
                operand: operand(target)?,
                // Shared with the pattern table, where the checker pinned it: compiled once.
                regex: crate::pattern::lookup(&pattern).ok()?,
            })
        }
        _ => None,
    }
}

fn operand(e: &IdedExpr) -> Option<Operand> {
    let mut steps = Vec::new();
    let mut at = e;
    loop {
        match &at.expr {
            Expr::Ident(name) if name == "event_type" && steps.is_empty() => {
                return Some(Operand::EventType);
            }
            Expr::Ident(name) if name == "data" => {
                steps.reverse();
                return Some(Operand::Data(steps));
            }
            Expr::Select(select) if !select.test => {
                steps.push(Step::Field(select.field.clone()));
                at = &select.operand;
            }
            Expr::Call(call) if call.func_name == operators::INDEX && call.target.is_none() => {
                let [inner, index] = call.args.as_slice() else {
                    return None;
                };
                match literal(index)? {
                    Literal::Str(key) => steps.push(Step::Field(key)),
                    Literal::Int(i) => steps.push(Step::Index(i)),
                    _ => return None,
                }
                at = inner;
            }
            _ => return None,
        }
    }
}

fn literal(e: &IdedExpr) -> Option<Literal> {
    match &e.expr {
        Expr::Literal(LiteralValue::String(s)) => Some(Literal::Str(s.inner().to_owned())),
        Expr::Literal(LiteralValue::Int(i)) => Some(Literal::Int(**i)),
        Expr::Literal(LiteralValue::Boolean(b)) => Some(Literal::Bool(**b)),
        Expr::Literal(LiteralValue::Null) => Some(Literal::Null),
        _ => None,
    }
}

impl Plan {
    /// The filter's answer for this event, or `None` when the interpreter must decide.
    pub(crate) fn evaluate(&self, event_type: &str, data: &Json) -> Option<bool> {
        match self.tri(event_type, data) {
            Tri::T => Some(true),
            Tri::F => Some(false),
            Tri::U => None,
        }
    }

    fn tri(&self, event_type: &str, data: &Json) -> Tri {
        match self {
            Plan::Const(b) => (*b).into(),
            Plan::And(a, b) => match a.tri(event_type, data) {
                Tri::F => Tri::F,
                first => match (first, b.tri(event_type, data)) {
                    (_, Tri::F) => Tri::F,
                    (Tri::T, Tri::T) => Tri::T,
                    _ => Tri::U,
                },
            },
            Plan::Or(a, b) => match a.tri(event_type, data) {
                Tri::T => Tri::T,
                first => match (first, b.tri(event_type, data)) {
                    (_, Tri::T) => Tri::T,
                    (Tri::F, Tri::F) => Tri::F,
                    _ => Tri::U,
                },
            },
            Plan::Not(a) => match a.tri(event_type, data) {
                Tri::T => Tri::F,
                Tri::F => Tri::T,
                Tri::U => Tri::U,
            },
            Plan::Eq {
                operand,
                literal,
                negate,
            } => match resolve(operand, event_type, data).map(|v| equals(&v, literal)) {
                Some(Tri::T) => (!negate).into(),
                Some(Tri::F) => (*negate).into(),
                _ => Tri::U,
            },
            Plan::In { operand, literals } => {
                let Some(value) = resolve(operand, event_type, data) else {
                    return Tri::U;
                };
                let mut result = Tri::F;
                for literal in literals {
                    match equals(&value, literal) {
                        Tri::T => return Tri::T,
                        Tri::U => result = Tri::U,
                        Tri::F => {}
                    }
                }
                result
            }
            Plan::Str { operand, test, arg } => match resolve(operand, event_type, data) {
                Some(value) => match as_str(&value) {
                    Some(s) => match test {
                        StrTest::StartsWith => s.starts_with(arg.as_str()),
                        StrTest::EndsWith => s.ends_with(arg.as_str()),
                        StrTest::Contains => s.contains(arg.as_str()),
                    }
                    .into(),
                    None => Tri::U,
                },
                None => Tri::U,
            },
            Plan::Matches { operand, regex } => {
                match resolve(operand, event_type, data).as_ref().and_then(as_str) {
                    Some(s) => regex.is_match(s).into(),
                    None => Tri::U,
                }
            }
            Plan::Has { operand, field } => match resolve(operand, event_type, data) {
                Some(Resolved::Json(Json::Object(map))) => map.contains_key(field).into(),
                _ => Tri::U,
            },
        }
    }
}

fn as_str<'a>(value: &Resolved<'a>) -> Option<&'a str> {
    match value {
        Resolved::Str(s) => Some(s),
        Resolved::Json(Json::String(s)) => Some(s),
        Resolved::Json(_) => None,
    }
}

/// Follows the operand's path; `None` where CEL would fail (a missing key, an index out of
/// range, a field of a non-map).
fn resolve<'a>(operand: &Operand, event_type: &'a str, data: &'a Json) -> Option<Resolved<'a>> {
    let steps = match operand {
        Operand::EventType => return Some(Resolved::Str(event_type)),
        Operand::Data(steps) => steps,
    };
    let mut at = data;
    for step in steps {
        at = match (step, at) {
            (Step::Field(name), Json::Object(map)) => map.get(name)?,
            (Step::Index(i), Json::Array(items)) => items.get(usize::try_from(*i).ok()?)?,
            _ => return None,
        };
    }
    Some(Resolved::Json(at))
}

/// CEL `==` between a bound JSON value and a literal, where it is certain.
fn equals(value: &Resolved<'_>, literal: &Literal) -> Tri {
    let json = match value {
        Resolved::Str(s) => {
            return match literal {
                Literal::Str(l) => (*s == l.as_str()).into(),
                _ => Tri::F,
            };
        }
        Resolved::Json(json) => json,
    };
    match (json, literal) {
        (Json::String(s), Literal::Str(l)) => (s == l).into(),
        (Json::Bool(b), Literal::Bool(l)) => (b == l).into(),
        (Json::Null, Literal::Null) => Tri::T,
        (Json::Number(n), Literal::Int(l)) => match n.as_i64() {
            Some(i) => (i == *l).into(),
            // A uint beyond i64 equals no int; a double is left to the interpreter.
            None if n.is_u64() => Tri::F,
            None => Tri::U,
        },
        // Different scalar kinds are unequal in CEL; anything involving a list or a map is
        // left to the interpreter.
        (Json::Array(_) | Json::Object(_), _) => Tri::U,
        (Json::Number(_), _) => Tri::F,
        (Json::String(_) | Json::Bool(_) | Json::Null, _) => Tri::F,
    }
}

#[cfg(test)]
mod tests {
    use crate::{Event, Filter};
    use proptest::prelude::*;
    use serde_json::{Value as Json, json};

    /// Filters the direct evaluator plans, over the keys the generator below produces.
    const FILTERS: &[&str] = &[
        "data.method in ['GET', 'HEAD'] && data.url.path.endsWith('/meow')",
        "data.method == 'GET' || data.n == 1",
        "!(data.n != 2) && has(data.url)",
        "data.list[0] == 'a' || data.list[1] == null",
        "data['method'] == true || data.url['path'].startsWith('/a')",
        "data.url.path.contains('e') && !has(data.url.query)",
        "event_type == 'x' || event_type.startsWith('y') || data.n in [1, 'a', true, null]",
        "data.method.matches('^G') || matches(data.url.path, 'w$')",
        "data == null || data.n == -3",
    ];

    fn scalar() -> impl Strategy<Value = Json> {
        prop_oneof![
            Just(json!(null)),
            any::<bool>().prop_map(Json::from),
            (-3i64..4).prop_map(Json::from),
            Just(json!(u64::MAX)),
            Just(json!(1.0)),
            Just(json!(2.5)),
            prop::sample::select(vec![
                "GET", "HEAD", "POST", "a", "/meow", "/a/meow", "/w", ""
            ])
            .prop_map(Json::from),
        ]
    }

    fn value() -> impl Strategy<Value = Json> {
        scalar().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Json::Array),
                prop::collection::btree_map(
                    prop::sample::select(vec!["method", "url", "path", "query", "n", "list"])
                        .prop_map(str::to_owned),
                    inner,
                    0..4,
                )
                .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn every_listed_filter_has_a_plan() {
        for source in FILTERS {
            let filter = Filter::compile(source).expect(source);
            assert!(filter.fast.is_some(), "{source}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Wherever the direct evaluator answers, the CEL interpreter answers the same.
        #[test]
        fn agrees_with_the_interpreter(
            data in value(),
            event_type in prop::sample::select(vec!["x", "y1", "z"]),
        ) {
            let event = Event::new("s", event_type, data);
            for source in FILTERS {
                let filter = Filter::compile(source).expect("compiles");
                let interpreted = filter.interpret(&event);
                if let Some(fast) = filter.evaluate_fast(&event) {
                    prop_assert_eq!(Ok(fast), interpreted, "{} on {:?}", source, event.data);
                }
            }
        }
    }
}

//! CEL filters: compiled and checked once at subscribe, evaluated once per published event.
//!
//! A filter sees three variables: `event_type` (a string), `data` (the JSON payload) and
//! `cloudevent` (the context attributes of an event that arrived as a CloudEvent: `id`,
//! `source`, `type`, `specversion`, `subject`, `time`, `datacontenttype`, `dataschema` or
//! `schemaurl`, and its extensions; an empty map for any other event, so
//! `has(cloudevent.subject)` is false there), and the standard CEL library with the strings, math, lists and encoders extensions. At
//! compile time [`Filter::compile`] rejects, with the column and the reason:
//!
//! * text that does not parse, or nests deeper than [`FilterLimits::max_depth`];
//! * any other variable (`event.type`, `payload`), and any function the environment does not
//!   have (`endswith` is not `endsWith`; the error says so);
//! * a filter that can be seen not to yield a boolean (`event_type`, `size(data) + 1`);
//! * a literal `matches()` pattern that is not a valid regular expression;
//! * constructs whose cost per event is unbounded: macros nested more than
//!   [`FilterLimits::max_macro_nesting`] deep, `lists.range` with a computed or huge argument.
//!
//! Compiling also extracts what the filter requires of `event_type` (an equality, an `in`
//! list, a `startsWith` prefix, combined through `&&` and `||`), which the [`Hub`](crate::Hub)
//! uses to skip filters that cannot match an event without evaluating them.

use crate::binding::{bind_json, bind_object};
use crate::budget;
use crate::error::{EvalError, FilterError};
use crate::event::Event;
use crate::fast::{self, Plan};
use crate::pattern::{self, Pin};
use cel::common::ast::{
    CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue, SourceInfo, operators,
};
use cel::common::types::CelString;
use cel::{Context, Env, Value};
use std::sync::{Arc, OnceLock};

/// Bounds on what a filter may be, so that a hostile filter is rejected at subscribe instead
/// of exhausting the stack, memory or time at publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterLimits {
    /// The longest filter text accepted, in bytes (default 4,096).
    pub max_len: usize,
    /// The deepest nesting of the expression: parentheses, brackets, calls, operators,
    /// field selections (default 64).
    pub max_depth: usize,
    /// How deeply comprehension macros (`all`, `exists`, `exists_one`, `map`, `filter`) may
    /// nest (default 2), which bounds one evaluation to the payload's size to that power.
    pub max_macro_nesting: usize,
    /// The largest literal argument of `lists.range` (default 10,000); a computed argument is
    /// rejected.
    pub max_range: i64,
    /// The most comprehension iterations one evaluation may run (default 100,000; a few
    /// tenths of a second at most). Each comprehension is charged its range's size before it
    /// iterates; an evaluation that would go over fails, and counts as no match. A filter
    /// whose literal ranges alone (`lists.range(n)`, list literals) go over is rejected when
    /// it is compiled.
    pub max_iterations: u64,
}

impl Default for FilterLimits {
    fn default() -> Self {
        FilterLimits {
            max_len: 4096,
            max_depth: 64,
            max_macro_nesting: 2,
            max_range: 10_000,
            max_iterations: 100_000,
        }
    }
}

/// A compiled filter.
///
/// ```
/// use switchyard_runtime_events::{Event, Filter};
///
/// let filter = Filter::compile("data.method in ['GET', 'HEAD'] && data.url.path.endsWith('/meow')")?;
/// let get = Event::new("webhook", "get", serde_json::json!({"method": "GET", "url": {"path": "/cat/meow"}}));
/// let post = Event::new("webhook", "post", serde_json::json!({"method": "POST", "url": {"path": "/meow"}}));
/// assert_eq!(filter.matches(&get), Ok(true));
/// assert_eq!(filter.matches(&post), Ok(false));
///
/// // The seed document's own example uses Python's spelling; CEL's is `endsWith`.
/// let error = Filter::compile("data.url.path.endswith('/meow')").unwrap_err();
/// assert!(error.to_string().contains("did you mean `endsWith`"));
/// # Ok::<(), switchyard_runtime_events::FilterError>(())
/// ```
pub struct Filter {
    source: String,
    program: Option<IdedExpr>,
    pub(crate) fast: Option<Plan>,
    keys: Option<Vec<TypeKey>>,
    uses: Uses,
    /// Iterations one evaluation may run ([`FilterLimits::max_iterations`]).
    budget: u64,
    _pins: Vec<Pin>,
}

/// Which of the event's variables a filter names, so only those are bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Uses {
    /// `data`.
    pub data: bool,
    /// `cloudevent`.
    pub cloudevent: bool,
}

impl std::ops::BitOr for Uses {
    type Output = Uses;

    fn bitor(self, other: Uses) -> Uses {
        Uses {
            data: self.data || other.data,
            cloudevent: self.cloudevent || other.cloudevent,
        }
    }
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("source", &self.source)
            .field("event_type_keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// A condition on `event_type` that a filter requires to be true.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum TypeKey {
    /// `event_type == "…"`.
    Exact(String),
    /// `event_type.startsWith("…")`.
    Prefix(String),
}

/// A function adding declarations to an environment.
type Extension = fn(&mut Env) -> Result<(), cel::DeclarationError>;

/// The one environment every filter is compiled and evaluated in.
pub(crate) fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        // Optional syntax (`a.?b`) is off: it is not part of the filter language AutoKitteh
        // documents, and the `optional` functions are not on the known-function list.
        let mut env = Env::stdlib().with_optional_support(false);
        let extensions: [(&str, Extension); 6] = [
            ("strings", cel::extensions::strings),
            ("math", cel::extensions::math),
            ("lists", cel::extensions::lists),
            ("encoders", cel::extensions::encoders),
            ("matches", pattern::register),
            ("budget", budget::register),
        ];
        for (name, extension) in extensions {
            if let Err(error) = env.add_extension(extension) {
                // Only a change in the `cel` crate can cause this; the unit tests catch it.
                tracing::error!(extension = name, %error, "CEL extension failed to register");
            }
        }
        Arc::new(env)
    })
}

impl Filter {
    /// Compiles `source` with the default [`FilterLimits`]. An empty (or all-blank) filter
    /// matches every event.
    ///
    /// # Errors
    ///
    /// A [`FilterError`] giving the column and the reason, as listed in the module docs.
    pub fn compile(source: &str) -> Result<Filter, FilterError> {
        Filter::compile_with(source, &FilterLimits::default())
    }

    /// Compiles `source` within `limits`.
    ///
    /// # Errors
    ///
    /// As [`Filter::compile`].
    pub fn compile_with(source: &str, limits: &FilterLimits) -> Result<Filter, FilterError> {
        if source.trim().is_empty() {
            return Ok(Filter {
                source: source.to_owned(),
                program: None,
                fast: None,
                keys: None,
                uses: Uses::default(),
                budget: limits.max_iterations,
                _pins: Vec::new(),
            });
        }
        if source.len() > limits.max_len {
            return Err(FilterError::TooLong {
                len: source.len(),
                limit: limits.max_len,
            });
        }
        check_nesting(source, limits.max_depth)?;
        // The parser and the checks recurse over the expression. They run on a thread with a
        // stack of their own, so no input can overflow the caller's (possibly small) stack;
        // the depth checks then keep evaluation, which recurses on the caller's stack, shallow.
        let compiled = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("cel-compile".to_owned())
                .stack_size(COMPILE_STACK)
                .spawn_scoped(scope, || compile_checked(source, limits))
                .map(|handle| handle.join())
        });
        let (program, pins, uses) = match compiled {
            Ok(Ok(result)) => result?,
            Ok(Err(_panic)) => {
                return Err(FilterError::Syntax {
                    column: 1,
                    message: "the CEL parser failed on this input".to_owned(),
                });
            }
            // No thread could be started: compile here (the depth pre-check above applies).
            Err(_) => compile_checked(source, limits)?,
        };
        let keys = type_keys(&program);
        let fast = fast::plan(&program);
        let mut program = program;
        let mut next_id = budget::max_id(&program);
        budget::instrument(&mut program, &mut next_id);
        Ok(Filter {
            source: source.to_owned(),
            keys,
            fast,
            program: Some(program),
            uses,
            budget: limits.max_iterations,
            _pins: pins,
        })
    }

    /// The filter as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether `event` matches. Evaluation errors (a missing field, a type mismatch) are
    /// returned as [`EvalError`]; a [`Hub`](crate::Hub) counts them as "no match".
    ///
    /// This builds a fresh evaluation context for the one event; a hub publishing to many
    /// subscriptions builds one and shares it.
    ///
    /// # Errors
    ///
    /// [`EvalError`] when the filter fails on this event or yields something other than a
    /// boolean.
    pub fn matches(&self, event: &Event) -> Result<bool, EvalError> {
        if self.program.is_none() {
            return Ok(true);
        }
        if !self.admits_type(&event.event_type) {
            return Ok(false);
        }
        if let Some(answer) = self.evaluate_fast(event) {
            return Ok(answer);
        }
        self.interpret(event)
    }

    /// The CEL interpreter's answer, bypassing the direct evaluator.
    pub(crate) fn interpret(&self, event: &Event) -> Result<bool, EvalError> {
        let Some(program) = &self.program else {
            return Ok(true);
        };
        let mut context = Context::with_env(Arc::clone(env()));
        bind_event(&mut context, event, self.uses);
        self.evaluate(program, &context)
    }

    /// The direct evaluator's answer, when it has a definite one (see the `fast` module).
    pub(crate) fn evaluate_fast(&self, event: &Event) -> Option<bool> {
        match (&self.program, &self.fast) {
            (None, _) => Some(true),
            (Some(_), Some(plan)) => plan.evaluate(&event.event_type, &event.data),
            (Some(_), None) => None,
        }
    }

    #[cfg(feature = "hub")]
    /// Evaluates in a context already holding the event's variables.
    pub(crate) fn evaluate_in(&self, context: &Context<'_, '_>) -> Result<bool, EvalError> {
        match &self.program {
            None => Ok(true),
            Some(program) => self.evaluate(program, context),
        }
    }

    /// Evaluates the program within the filter's iteration budget.
    fn evaluate(&self, program: &IdedExpr, context: &Context<'_, '_>) -> Result<bool, EvalError> {
        budget::with_budget(self.budget, || evaluate(program, context))
    }

    #[cfg(feature = "hub")]
    /// Which event variables the filter references (so only those need binding).
    pub(crate) fn uses(&self) -> Uses {
        self.uses
    }

    #[cfg(feature = "hub")]
    /// What the filter requires of `event_type`, when it can be extracted.
    pub(crate) fn keys(&self) -> Option<&[TypeKey]> {
        self.keys.as_deref()
    }

    /// Whether the extracted `event_type` conditions let `event_type` through.
    pub(crate) fn admits_type(&self, event_type: &str) -> bool {
        match &self.keys {
            None => true,
            Some(keys) => keys.iter().any(|key| match key {
                TypeKey::Exact(exact) => exact == event_type,
                TypeKey::Prefix(prefix) => event_type.starts_with(prefix.as_str()),
            }),
        }
    }
}

/// The stack the parser and checker run on.
const COMPILE_STACK: usize = 32 << 20;

/// Parses and checks `source`: the expression, the patterns it pinned, the variables it uses.
fn compile_checked(
    source: &str,
    limits: &FilterLimits,
) -> Result<(IdedExpr, Vec<Pin>, Uses), FilterError> {
    let depth = u16::try_from(limits.max_depth.saturating_mul(2)).unwrap_or(u16::MAX);
    let (expr, info) = env()
        .parser()
        .max_recursion_depth(depth)
        .enable_ident_escape_syntax(true)
        .parse_with_source_info(source)
        .map_err(|errors| syntax_error(source, &errors, limits.max_depth))?;
    let mut checker = Checker {
        info: &info,
        limits,
        scopes: Vec::new(),
        macro_depth: 0,
        depth: 0,
        pins: Vec::new(),
        uses: Uses::default(),
        nested: 1,
        static_cost: 0,
    };
    checker.walk(&expr)?;
    let Checker { pins, uses, .. } = checker;
    if let (Kind::Not(found), id) = kind(&expr, &[]) {
        return Err(FilterError::NotBoolean {
            found,
            column: column(&info, id),
        });
    }
    Ok((expr, pins, uses))
}

/// Binds `event_type`, and `data` and `cloudevent` when used, into `context`.
pub(crate) fn bind_event<'v>(context: &mut Context<'_, 'v>, event: &'v Event, uses: Uses) {
    context.add_variable_as_val(
        "event_type",
        Box::new(CelString::from(event.event_type.as_str())),
    );
    if uses.data {
        context.add_variable_as_val("data", bind_json(&event.data));
    }
    if uses.cloudevent {
        context.add_variable_as_val("cloudevent", bind_object(event.cloudevent.as_ref()));
    }
}

fn evaluate(program: &IdedExpr, context: &Context<'_, '_>) -> Result<bool, EvalError> {
    match Value::resolve(program, context) {
        Ok(Value::Bool(matched)) => Ok(matched),
        Ok(other) => Err(EvalError {
            message: format!("filter yielded {:?}, not a boolean", other.type_of()),
        }),
        Err(error) => Err(EvalError {
            message: error.to_string(),
        }),
    }
}

/// Rejects nesting deeper than `limit` before the parser (which recurses) sees it.
fn check_nesting(source: &str, limit: usize) -> Result<(), FilterError> {
    let mut depth = 0usize;
    let mut unary = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (column, c) in source.chars().enumerate().map(|(i, c)| (i + 1, c)) {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        // A run of prefix operators (`!!!!x`, `- - -1`) nests like parentheses.
        match c {
            '!' | '-' => unary += 1,
            c if c.is_whitespace() => {}
            _ => unary = 0,
        }
        if depth + unary > limit {
            return Err(FilterError::TooDeep { column, limit });
        }
    }
    Ok(())
}

fn syntax_error(source: &str, errors: &cel::ParseErrors, limit: usize) -> FilterError {
    let Some(first) = errors.errors.first() else {
        return FilterError::Syntax {
            column: 1,
            message: "invalid filter".to_owned(),
        };
    };
    let message = first.msg.clone();
    let (line, col) = first.pos;
    // Filters are one line; should one contain newlines, count columns from the start.
    let column = if line <= 1 {
        usize::try_from(col).unwrap_or(0) + 1
    } else {
        source
            .lines()
            .take(usize::try_from(line - 1).unwrap_or(0))
            .map(|l| l.chars().count() + 1)
            .sum::<usize>()
            + usize::try_from(col).unwrap_or(0)
            + 1
    };
    if message.contains("recursion") || message.contains("depth") {
        return FilterError::TooDeep { column, limit };
    }
    FilterError::Syntax { column, message }
}

fn column(info: &SourceInfo, id: u64) -> usize {
    info.offset_for(id)
        .map(|(start, _)| start as usize + 1)
        .unwrap_or(1)
}

/// The variables a filter may name.
const VARIABLES: [&str; 3] = ["event_type", "data", "cloudevent"];

/// Names that evaluate to type values (`type(data.x) == int`).
const TYPE_NAMES: [&str; 10] = [
    "bool",
    "bytes",
    "double",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "type",
    "uint",
];

/// Qualified names of the types of timestamps and durations (`type(x) == google.protobuf.Timestamp`).
const QUALIFIED_TYPES: [&str; 2] = ["google.protobuf.Timestamp", "google.protobuf.Duration"];

/// Whether `e` is `google.protobuf.Timestamp` or `google.protobuf.Duration`.
fn qualified_type(e: &IdedExpr) -> bool {
    let mut parts = Vec::new();
    let mut at = e;
    loop {
        match &at.expr {
            Expr::Select(select) if !select.test => {
                parts.push(select.field.as_str());
                at = &select.operand;
            }
            Expr::Ident(name) => {
                parts.push(name.as_str());
                break;
            }
            _ => return false,
        }
    }
    parts.reverse();
    let name = parts.join(".");
    QUALIFIED_TYPES.contains(&name.as_str())
}

/// Namespaces of the extensions' global functions.
const NAMESPACES: [&str; 4] = ["math", "strings", "base64", "lists"];

/// Global functions and operators, after macro expansion.
pub(crate) const GLOBAL_FUNCTIONS: &[&str] = &[
    operators::CONDITIONAL,
    operators::LOGICAL_AND,
    operators::LOGICAL_OR,
    operators::LOGICAL_NOT,
    operators::SUBSTRACT,
    operators::ADD,
    operators::MULTIPLY,
    operators::DIVIDE,
    operators::MODULO,
    operators::EQUALS,
    operators::NOT_EQUALS,
    operators::GREATER_EQUALS,
    operators::LESS_EQUALS,
    operators::GREATER,
    operators::LESS,
    operators::NEGATE,
    operators::INDEX,
    operators::NOT_STRICTLY_FALSE,
    operators::IN,
    "size",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "type",
    "dyn",
    "duration",
    "timestamp",
    "matches",
    "math.ceil",
    "math.floor",
    "math.round",
    "math.trunc",
    "math.isInf",
    "math.isNaN",
    "math.isFinite",
    "math.abs",
    "math.sign",
    "math.bitAnd",
    "math.bitOr",
    "math.bitXor",
    "math.bitNot",
    "math.bitShiftLeft",
    "math.bitShiftRight",
    "math.sqrt",
    "math.@max",
    "math.@min",
    "strings.quote",
    "base64.encode",
    "base64.decode",
    "lists.range",
];

/// Functions called on a receiver (`x.f(…)`).
pub(crate) const MEMBER_FUNCTIONS: &[&str] = &[
    "contains",
    "endsWith",
    "startsWith",
    "matches",
    "size",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getFullYear",
    "getHours",
    "getMilliseconds",
    "getMinutes",
    "getMonth",
    "getSeconds",
    "charAt",
    "indexOf",
    "lastIndexOf",
    "join",
    "lowerAscii",
    "upperAscii",
    "trim",
    "replace",
    "split",
    "substring",
    "format",
    "reverse",
    "slice",
    "flatten",
    "distinct",
    "sort",
    // What `sortBy(x, key)` expands to.
    "@sortByAssociatedKeys",
];

struct Checker<'a> {
    info: &'a SourceInfo,
    limits: &'a FilterLimits,
    scopes: Vec<String>,
    macro_depth: usize,
    depth: usize,
    pins: Vec<Pin>,
    uses: Uses,
    /// The product of the literal range sizes of the comprehensions enclosing the node being
    /// checked (1 at the top).
    nested: u128,
    /// What the literal ranges alone will charge every evaluation (see [`budget`]).
    static_cost: u128,
}

impl Checker<'_> {
    fn column(&self, id: u64) -> usize {
        column(self.info, id)
    }

    /// The column where a call's function name starts (the call's own node sits at its `(`).
    fn name_column(&self, id: u64, name: &str) -> usize {
        let at = self.column(id) - 1;
        let before: String = self.info.source.chars().take(at).collect();
        let trimmed = before.trim_end();
        let short = name.rsplit('.').next().unwrap_or(name);
        if trimmed.ends_with(short) {
            trimmed.chars().count() - short.chars().count() + 1
        } else {
            at + 1
        }
    }

    fn in_scope(&self, name: &str) -> bool {
        self.scopes.iter().any(|scope| scope == name)
    }

    fn walk(&mut self, e: &IdedExpr) -> Result<(), FilterError> {
        if self.depth >= self.limits.max_depth {
            return Err(FilterError::TooDeep {
                column: self.column(e.id),
                limit: self.limits.max_depth,
            });
        }
        self.depth += 1;
        let result = self.walk_node(e);
        self.depth -= 1;
        result
    }

    fn walk_node(&mut self, e: &IdedExpr) -> Result<(), FilterError> {
        match &e.expr {
            Expr::Unspecified | Expr::Literal(_) => Ok(()),
            Expr::Ident(name) => {
                if self.in_scope(name) || TYPE_NAMES.contains(&name.as_str()) {
                    Ok(())
                } else if VARIABLES.contains(&name.as_str()) {
                    self.uses.data |= name == "data";
                    self.uses.cloudevent |= name == "cloudevent";
                    Ok(())
                } else {
                    Err(FilterError::UnknownVariable {
                        name: name.clone(),
                        column: self.column(e.id),
                    })
                }
            }
            Expr::Select(_) if qualified_type(e) => Ok(()),
            Expr::Select(select) => self.walk(&select.operand),
            Expr::List(list) => list.elements.iter().try_for_each(|x| self.walk(x)),
            Expr::Map(map) => map.entries.iter().try_for_each(|entry| match &entry.expr {
                EntryExpr::MapEntry(entry) => {
                    self.walk(&entry.key)?;
                    self.walk(&entry.value)
                }
                EntryExpr::StructField(field) => self.walk(&field.value),
            }),
            Expr::Struct(structure) => Err(FilterError::UnknownFunction {
                name: structure.type_name.clone(),
                column: self.column(e.id),
                hint: " (message types are not available to filters)".to_owned(),
            }),
            Expr::Call(call) => self.call(e.id, call),
            Expr::Comprehension(comprehension) => self.comprehension(e.id, comprehension),
        }
    }

    fn comprehension(&mut self, id: u64, c: &ComprehensionExpr) -> Result<(), FilterError> {
        self.walk(&c.iter_range)?;
        self.walk(&c.accu_init)?;
        if self.macro_depth + 1 > self.limits.max_macro_nesting {
            return Err(FilterError::TooCostly {
                column: self.column(id),
                reason: format!(
                    "macros nested more than {} deep",
                    self.limits.max_macro_nesting
                ),
            });
        }
        // Charged once per step of the enclosing comprehensions: what a literal range costs
        // every evaluation, whatever the event.
        let size = literal_size(&c.iter_range).unwrap_or(1).max(1);
        let outer = self.nested;
        self.nested = outer.saturating_mul(u128::from(size));
        self.static_cost = self.static_cost.saturating_add(self.nested);
        if self.static_cost > u128::from(self.limits.max_iterations) {
            return Err(FilterError::TooCostly {
                column: self.column(id),
                reason: format!(
                    "its literal ranges alone run {} iterations per event, more than the budget of {}",
                    self.static_cost, self.limits.max_iterations
                ),
            });
        }
        self.macro_depth += 1;
        let pushed = 2 + usize::from(c.iter_var2.is_some());
        self.scopes.push(c.iter_var.clone());
        self.scopes.extend(c.iter_var2.iter().cloned());
        self.scopes.push(c.accu_var.clone());
        let result = self
            .walk(&c.loop_cond)
            .and_then(|()| self.walk(&c.loop_step))
            .and_then(|()| self.walk(&c.result));
        self.scopes.truncate(self.scopes.len() - pushed);
        self.macro_depth -= 1;
        self.nested = outer;
        result
    }

    /// The namespace a call's target names, when it is an extension namespace rather than a
    /// value (`math.abs(x)` rather than `data.math.abs(x)`).
    fn namespace<'e>(&self, target: &'e IdedExpr) -> Option<&'e str> {
        match &target.expr {
            Expr::Ident(name)
                if NAMESPACES.contains(&name.as_str())
                    && !self.in_scope(name)
                    && !VARIABLES.contains(&name.as_str()) =>
            {
                Some(name)
            }
            _ => None,
        }
    }

    fn call(&mut self, id: u64, call: &CallExpr) -> Result<(), FilterError> {
        let (name, member) = match &call.target {
            Some(target) => match self.namespace(target) {
                Some(namespace) => (format!("{namespace}.{}", call.func_name), false),
                None => (call.func_name.clone(), true),
            },
            None => (call.func_name.clone(), false),
        };
        let known = if member {
            MEMBER_FUNCTIONS.contains(&name.as_str())
        } else {
            GLOBAL_FUNCTIONS.contains(&name.as_str())
        };
        if !known {
            return Err(FilterError::UnknownFunction {
                hint: hint(&name, member),
                column: self.name_column(id, &name),
                name,
            });
        }
        if name == "matches" {
            let pattern = if member {
                call.args.first()
            } else {
                call.args.get(1)
            };
            if let Some(IdedExpr {
                id,
                expr: Expr::Literal(LiteralValue::String(pattern)),
            }) = pattern
            {
                let pin = pattern::pin(pattern.inner()).map_err(|message| FilterError::Regex {
                    column: self.column(*id),
                    message,
                })?;
                self.pins.push(pin);
            }
        }
        if name == "lists.range" {
            let bounded = matches!(
                call.args.as_slice(),
                [IdedExpr { expr: Expr::Literal(LiteralValue::Int(n)), .. }]
                    if **n <= self.limits.max_range
            );
            if !bounded {
                return Err(FilterError::TooCostly {
                    column: self.column(id),
                    reason: format!(
                        "lists.range needs a literal argument of at most {}",
                        self.limits.max_range
                    ),
                });
            }
        }
        if member && let Some(target) = &call.target {
            self.walk(target)?;
        }
        call.args.iter().try_for_each(|arg| self.walk(arg))
    }
}

/// The size of a range known without any event: `lists.range(n)` with a literal `n`, or a
/// list or map literal.
fn literal_size(range: &IdedExpr) -> Option<u64> {
    match &range.expr {
        Expr::List(list) => u64::try_from(list.elements.len()).ok(),
        Expr::Map(map) => u64::try_from(map.entries.len()).ok(),
        Expr::Call(call)
            if call.func_name == "range"
                && matches!(
                    call.target.as_deref(),
                    Some(IdedExpr { expr: Expr::Ident(ns), .. }) if ns == "lists"
                ) =>
        {
            match call.args.as_slice() {
                [
                    IdedExpr {
                        expr: Expr::Literal(LiteralValue::Int(n)),
                        ..
                    },
                ] => u64::try_from(**n).ok(),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A suggestion for an unknown function: a known one spelled the same but for case, or the
/// same name on the other side (global vs member).
fn hint(name: &str, member: bool) -> String {
    let (same_side, other_side) = if member {
        (MEMBER_FUNCTIONS, GLOBAL_FUNCTIONS)
    } else {
        (GLOBAL_FUNCTIONS, MEMBER_FUNCTIONS)
    };
    if let Some(known) = same_side
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
    {
        return format!(" (did you mean `{known}`?)");
    }
    if other_side.contains(&name) {
        return if member {
            format!(" (`{name}` is a function, not a method: write `{name}(x, …)`)")
        } else {
            format!(" (`{name}` is a method: write `x.{name}(…)`)")
        };
    }
    String::new()
}

/// What an expression is known to yield without seeing an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Dyn,
    Not(&'static str),
}

/// The kind of `e`, and the node that decided it. `accus` maps comprehension accumulators to
/// their initial values.
fn kind<'e>(e: &'e IdedExpr, accus: &[(&'e str, &'e IdedExpr)]) -> (Kind, u64) {
    let k = match &e.expr {
        Expr::Unspecified => Kind::Dyn,
        Expr::Literal(literal) => match literal {
            LiteralValue::Boolean(_) => Kind::Bool,
            LiteralValue::Bytes(_) => Kind::Not("bytes"),
            LiteralValue::Double(_) => Kind::Not("a double"),
            LiteralValue::Int(_) => Kind::Not("an int"),
            LiteralValue::Null => Kind::Not("null"),
            LiteralValue::String(_) => Kind::Not("a string"),
            LiteralValue::UInt(_) => Kind::Not("a uint"),
        },
        Expr::List(_) => Kind::Not("a list"),
        Expr::Map(_) => Kind::Not("a map"),
        Expr::Struct(_) => Kind::Not("a message"),
        Expr::Ident(name) => {
            if let Some((_, init)) = accus.iter().rev().find(|(accu, _)| accu == name) {
                return kind(init, accus);
            }
            match name.as_str() {
                "event_type" => Kind::Not("a string"),
                "cloudevent" => Kind::Not("a map"),
                n if TYPE_NAMES.contains(&n) => Kind::Not("a type"),
                _ => Kind::Dyn,
            }
        }
        Expr::Select(select) if select.test => Kind::Bool,
        Expr::Select(_) if qualified_type(e) => Kind::Not("a type"),
        Expr::Select(_) => Kind::Dyn,
        Expr::Comprehension(c) => {
            let mut inner = accus.to_vec();
            inner.push((c.accu_var.as_str(), &c.accu_init));
            return kind(&c.result, &inner);
        }
        Expr::Call(call) => call_kind(call, accus),
    };
    (k, e.id)
}

fn call_kind<'e>(call: &'e CallExpr, accus: &[(&'e str, &'e IdedExpr)]) -> Kind {
    let name = call.func_name.as_str();
    let namespaced = match call.target.as_deref() {
        Some(IdedExpr {
            expr: Expr::Ident(ns),
            ..
        }) if NAMESPACES.contains(&ns.as_str()) => Some(ns.as_str()),
        _ => None,
    };
    match (namespaced, name) {
        (Some(_), "isInf" | "isNaN" | "isFinite") => Kind::Bool,
        (Some("strings"), _) | (Some("base64"), "encode") => Kind::Not("a string"),
        (Some("base64"), _) => Kind::Not("bytes"),
        (Some("lists"), _) => Kind::Not("a list"),
        (Some(_), _) => Kind::Not("a number"),
        (None, "math.isInf" | "math.isNaN" | "math.isFinite") => Kind::Bool,
        (None, n) if n.starts_with("math.") => Kind::Not("a number"),
        (None, "strings.quote" | "base64.encode") => Kind::Not("a string"),
        (None, "base64.decode") => Kind::Not("bytes"),
        (None, "lists.range") => Kind::Not("a list"),
        (None, operators::CONDITIONAL) => match call.args.as_slice() {
            [_, yes, no] => match (kind(yes, accus).0, kind(no, accus).0) {
                (Kind::Not(a), Kind::Not(_)) => Kind::Not(a),
                (Kind::Bool, Kind::Bool) => Kind::Bool,
                _ => Kind::Dyn,
            },
            _ => Kind::Dyn,
        },
        (
            None,
            operators::LOGICAL_AND
            | operators::LOGICAL_OR
            | operators::LOGICAL_NOT
            | operators::EQUALS
            | operators::NOT_EQUALS
            | operators::GREATER_EQUALS
            | operators::LESS_EQUALS
            | operators::GREATER
            | operators::LESS
            | operators::NOT_STRICTLY_FALSE
            | operators::IN
            | "contains"
            | "startsWith"
            | "endsWith"
            | "matches"
            | "bool",
        ) => Kind::Bool,
        (
            None,
            operators::ADD
            | operators::SUBSTRACT
            | operators::MULTIPLY
            | operators::DIVIDE
            | operators::MODULO
            | operators::NEGATE,
        ) => Kind::Not("an arithmetic result"),
        (
            None,
            "size" | "int" | "indexOf" | "lastIndexOf" | "getDate" | "getDayOfMonth"
            | "getDayOfWeek" | "getDayOfYear" | "getFullYear" | "getHours" | "getMilliseconds"
            | "getMinutes" | "getMonth" | "getSeconds",
        ) => Kind::Not("an int"),
        (None, "uint") => Kind::Not("a uint"),
        (None, "double") => Kind::Not("a double"),
        (
            None,
            "string" | "charAt" | "lowerAscii" | "upperAscii" | "trim" | "replace" | "substring"
            | "format" | "join",
        ) => Kind::Not("a string"),
        (None, "bytes") => Kind::Not("bytes"),
        (None, "type") => Kind::Not("a type"),
        (None, "duration") => Kind::Not("a duration"),
        (None, "timestamp") => Kind::Not("a timestamp"),
        (None, "split" | "slice" | "flatten" | "distinct" | "sort" | "@sortByAssociatedKeys") => {
            Kind::Not("a list")
        }
        (None, "reverse") => Kind::Not("a string or a list"),
        (None, "dyn") => call
            .args
            .first()
            .map_or(Kind::Dyn, |arg| kind(arg, accus).0),
        _ => Kind::Dyn,
    }
}

/// The `event_type` conditions the filter requires, when they can be read off its top-level
/// `&&` / `||` structure.
fn type_keys(e: &IdedExpr) -> Option<Vec<TypeKey>> {
    let Expr::Call(call) = &e.expr else {
        return None;
    };
    let is_event_type = |x: &IdedExpr| matches!(&x.expr, Expr::Ident(n) if n == "event_type");
    let string = |x: &IdedExpr| match &x.expr {
        Expr::Literal(LiteralValue::String(s)) => Some(s.inner().to_owned()),
        _ => None,
    };
    match (
        call.func_name.as_str(),
        call.target.as_deref(),
        call.args.as_slice(),
    ) {
        (operators::EQUALS, None, [a, b]) => {
            if is_event_type(a) {
                string(b).map(|s| vec![TypeKey::Exact(s)])
            } else if is_event_type(b) {
                string(a).map(|s| vec![TypeKey::Exact(s)])
            } else {
                None
            }
        }
        (operators::IN, None, [a, list]) if is_event_type(a) => match &list.expr {
            // Non-string literals can never equal a string, so they add no key.
            Expr::List(list) => list
                .elements
                .iter()
                .map(|x| match &x.expr {
                    Expr::Literal(LiteralValue::String(s)) => {
                        Some(Some(TypeKey::Exact(s.inner().to_owned())))
                    }
                    Expr::Literal(_) => Some(None),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(|keys| keys.into_iter().flatten().collect()),
            _ => None,
        },
        ("startsWith", Some(target), [prefix]) if is_event_type(target) => {
            string(prefix).map(|s| vec![TypeKey::Prefix(s)])
        }
        (operators::LOGICAL_AND, None, [a, b]) => match (type_keys(a), type_keys(b)) {
            (Some(x), Some(y)) => Some(if narrower(&y, &x) { y } else { x }),
            (x, y) => x.or(y),
        },
        (operators::LOGICAL_OR, None, [a, b]) => {
            let mut keys = type_keys(a)?;
            keys.extend(type_keys(b)?);
            Some(keys)
        }
        _ => None,
    }
}

/// Whether key set `a` is a better index than `b`: exact keys beat prefixes, fewer beat more.
fn narrower(a: &[TypeKey], b: &[TypeKey]) -> bool {
    let prefixes = |keys: &[TypeKey]| {
        keys.iter()
            .filter(|k| matches!(k, TypeKey::Prefix(_)))
            .count()
    };
    (prefixes(a), a.len()) < (prefixes(b), b.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(event_type: &str, data: serde_json::Value) -> Event {
        Event::new("source", event_type, data)
    }

    #[test]
    fn every_listed_function_is_known_to_the_environment() {
        // An unknown function is an "undeclared reference" at evaluation; a known one called
        // with the wrong arguments is not.
        let context = Context::with_env(Arc::clone(env()));
        for name in GLOBAL_FUNCTIONS {
            if !name.starts_with(|c: char| c.is_ascii_alphabetic()) || name.contains('@') {
                continue;
            }
            let source = match name.split_once('.') {
                Some((ns, f)) => format!("{ns}.{f}(null, null, null, null, null)"),
                None => format!("{name}(null, null, null, null, null)"),
            };
            let result = env()
                .compile(&source)
                .map(|p| p.execute(&context))
                .expect("parses");
            assert!(
                !matches!(result, Err(cel::ExecutionError::UndeclaredReference(_))),
                "{name}: {result:?}"
            );
        }
        for name in MEMBER_FUNCTIONS.iter().filter(|name| !name.contains('@')) {
            let source = format!("[1].{name}(null, null, null, null, null)");
            let result = env()
                .compile(&source)
                .map(|p| p.execute(&context))
                .expect("parses");
            assert!(
                !matches!(result, Err(cel::ExecutionError::UndeclaredReference(_))),
                "{name}: {result:?}"
            );
        }
    }

    #[test]
    fn empty_filter_matches_everything() {
        let filter = Filter::compile("  ").expect("empty is fine");
        assert_eq!(filter.matches(&event("x", json!(null))), Ok(true));
    }

    #[test]
    fn rejects_with_position_and_reason() {
        type Expect = fn(&FilterError) -> bool;
        let cases: [(&str, Expect); 10] = [
            ("event_type ==", |e| matches!(e, FilterError::Syntax { .. })),
            (
                "event.type == 'x'",
                |e| matches!(e, FilterError::UnknownVariable { name, column: 1 } if name == "event"),
            ),
            (
                "data.x == 1 && payload",
                |e| matches!(e, FilterError::UnknownVariable { name, column: 16 } if name == "payload"),
            ),
            ("event_type.endswith('x')", |e| {
                matches!(e, FilterError::UnknownFunction { name, hint, .. }
                    if name == "endswith" && hint.contains("endsWith"))
            }),
            ("event_type", |e| {
                matches!(
                    e,
                    FilterError::NotBoolean {
                        found: "a string",
                        column: 1
                    }
                )
            }),
            ("size(data) + 1", |e| {
                matches!(e, FilterError::NotBoolean { .. })
            }),
            ("data.items.map(x, x > 1)", |e| {
                matches!(
                    e,
                    FilterError::NotBoolean {
                        found: "a list",
                        ..
                    }
                )
            }),
            ("event_type.matches('(')", |e| {
                matches!(e, FilterError::Regex { column: 20, .. })
            }),
            ("lists.range(size(data)).exists(x, x == 1)", |e| {
                matches!(e, FilterError::TooCostly { .. })
            }),
            (
                "math.nope(1) == 1",
                |e| matches!(e, FilterError::UnknownFunction { name, .. } if name == "math.nope"),
            ),
        ];
        for (source, expected) in cases {
            let error = Filter::compile(source).expect_err(source);
            assert!(expected(&error), "{source}: {error:?}");
        }
    }

    #[test]
    fn comprehension_variables_are_in_scope_only_inside() {
        assert!(Filter::compile("data.items.exists(x, x.kind == 'a')").is_ok());
        assert!(Filter::compile("data.items.exists(x, true) && x == 1").is_err());
    }

    #[test]
    fn macros_nest_only_to_the_limit() {
        assert!(Filter::compile("data.a.exists(x, x.b.exists(y, y == 1))").is_ok());
        let error = Filter::compile("data.a.exists(x, x.b.exists(y, y.c.exists(z, z == 1)))")
            .expect_err("three deep");
        assert!(matches!(error, FilterError::TooCostly { .. }), "{error:?}");
    }

    #[test]
    fn evaluation_errors_are_errors_not_false() {
        let filter = Filter::compile("data.count + 1 > 2").expect("compiles");
        assert_eq!(filter.matches(&event("t", json!({"count": 5}))), Ok(true));
        assert!(filter.matches(&event("t", json!({"other": 5}))).is_err());
        assert!(filter.matches(&event("t", json!({"count": "5"}))).is_err());
        let dynamic = Filter::compile("data.flag").expect("data may be a bool");
        assert_eq!(
            dynamic.matches(&event("t", json!({"flag": true}))),
            Ok(true)
        );
        assert!(dynamic.matches(&event("t", json!({"flag": 1}))).is_err());
    }

    #[test]
    fn namespaced_and_extension_functions_work() {
        let filter = Filter::compile(
            "math.abs(data.n) == 3 && strings.quote(event_type) == '\"t\"' \
             && base64.encode(b'hi') == 'aGk=' && lists.range(3).size() == 3 \
             && event_type.upperAscii() == 'T' && math.greatest(1, data.n) == 1",
        )
        .expect("compiles");
        assert_eq!(filter.matches(&event("t", json!({"n": -3}))), Ok(true));
    }

    #[test]
    fn matches_compiles_literal_patterns_once_and_dynamic_ones_on_demand() {
        let filter = Filter::compile("event_type.matches('^issue_[a-z]+$')").expect("compiles");
        assert!(pattern::is_cached("^issue_[a-z]+$"));
        assert_eq!(
            filter.matches(&event("issue_created", json!(null))),
            Ok(true)
        );
        assert_eq!(
            filter.matches(&event("page_created", json!(null))),
            Ok(false)
        );
        let global = Filter::compile("matches(event_type, '^page_')").expect("compiles");
        assert_eq!(
            global.matches(&event("page_created", json!(null))),
            Ok(true)
        );
        let dynamic = Filter::compile("event_type.matches(data.pattern)").expect("compiles");
        assert_eq!(
            dynamic.matches(&event("abc", json!({"pattern": "^a.c$"}))),
            Ok(true)
        );
        assert!(
            dynamic
                .matches(&event("abc", json!({"pattern": "("})))
                .is_err()
        );
        drop(filter);
        assert!(!pattern::is_cached("^issue_[a-z]+$"));
    }

    #[test]
    fn event_type_keys_are_extracted() {
        let keys = |source: &str| Filter::compile(source).expect(source).keys;
        let exact = |s: &str| TypeKey::Exact(s.to_owned());
        assert_eq!(keys("event_type == 'a'"), Some(vec![exact("a")]));
        assert_eq!(keys("'a' == event_type"), Some(vec![exact("a")]));
        assert_eq!(
            keys("event_type == 'a' || event_type == 'b'"),
            Some(vec![exact("a"), exact("b")])
        );
        assert_eq!(
            keys("event_type in ['a', 'b', 1] && data.x == 1"),
            Some(vec![exact("a"), exact("b")])
        );
        assert_eq!(
            keys("event_type.startsWith('issue_')"),
            Some(vec![TypeKey::Prefix("issue_".to_owned())])
        );
        assert_eq!(
            keys("event_type.startsWith('i') && event_type == 'issue'"),
            Some(vec![exact("issue")])
        );
        assert_eq!(keys("event_type == 'a' || data.x == 1"), None);
        assert_eq!(keys("event_type != 'a'"), None);
        assert_eq!(keys("!(event_type == 'a')"), None);
    }

    #[test]
    fn hostile_filters_are_rejected_without_overflowing_the_stack() {
        let deep_parens = format!("{}true{}", "(".repeat(2000), ")".repeat(2000));
        let deep_not = format!("{}true", "!".repeat(2000));
        let deep_neg = format!("{}1 == 1", "-".repeat(2000));
        let deep_select = format!("data{} == 1", ".a".repeat(1000));
        let long_or = vec!["event_type == 'a'"; 200].join(" || ");
        let huge = format!("event_type == '{}'", "x".repeat(1 << 20));
        // Run on a small stack, as a tokio worker would.
        std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(move || {
                for source in [deep_parens, deep_not, deep_neg, deep_select, long_or, huge] {
                    let result = Filter::compile(&source);
                    assert!(
                        matches!(
                            result,
                            Err(FilterError::TooDeep { .. } | FilterError::TooLong { .. })
                        ),
                        "{:?}",
                        result.map(|_| ())
                    );
                }
            })
            .expect("spawn")
            .join()
            .expect("no overflow");
    }

    /// The filters of the hostile report: a static one whose literal ranges alone run 6.25
    /// million iterations is rejected when compiled; a payload-driven one spends at most the
    /// budget on any event, then fails (no match), and spends exactly what it iterates while
    /// under it.
    #[test]
    fn evaluations_stay_within_the_iteration_budget() {
        let error =
            Filter::compile("lists.range(2500).exists(x, lists.range(2500).exists(y, y < 0))")
                .unwrap_err();
        assert!(
            matches!(&error, FilterError::TooCostly { reason, .. } if reason.contains("budget")),
            "{error}"
        );
        // Under the budget, a literal range is fine.
        assert!(
            Filter::compile("lists.range(300).exists(x, lists.range(300).exists(y, y == x))")
                .is_ok()
        );

        let filter = Filter::compile("data.body.exists(x, data.body.exists(y, y < 0))").unwrap();
        let body: Vec<i64> = (0..3000).collect();
        let big = event("t", json!({"body": body}));
        let error = filter.interpret(&big).unwrap_err();
        let spent = budget::last_spent();
        assert!(error.message.contains("budget"), "{error:?}");
        assert!(spent <= filter.budget, "{spent}");

        // At the limit: a body of n items costs n + n² (the outer range, then the inner once
        // per outer step).
        let limits = FilterLimits {
            max_iterations: 110,
            ..FilterLimits::default()
        };
        let filter =
            Filter::compile_with("data.body.exists(x, data.body.exists(y, y < 0))", &limits)
                .unwrap();
        let ten = event("t", json!({"body": (0..10).collect::<Vec<i64>>()}));
        assert_eq!(filter.interpret(&ten), Ok(false));
        assert_eq!(budget::last_spent(), 110);
        let eleven = event("t", json!({"body": (0..11).collect::<Vec<i64>>()}));
        assert!(filter.matches(&eleven).is_err());
        // The budget is per evaluation: the next event starts afresh.
        assert_eq!(filter.matches(&ten), Ok(false));
        // Maps are ranges too.
        let filter = Filter::compile_with("data.m.all(k, data.m[k] > 0)", &limits).unwrap();
        let keys: serde_json::Map<String, serde_json::Value> =
            (0..111).map(|i| (format!("k{i}"), json!(1))).collect();
        assert!(filter.matches(&event("t", json!({"m": keys}))).is_err());
    }
}

//! The CEL spec's conformance cases, run through this crate's filter layer.
//!
//! Each case's expression `e` with expected value `v` becomes the filter `(e) == data`, with
//! `v` bound as the event's `data` through the crate's JSON binding; a value JSON cannot carry
//! (uint, bytes, a type, NaN, a duration) is written into the filter as a CEL literal instead.
//! A case expecting an error passes when the filter is rejected at subscribe or fails on the
//! event. Cases that bind variables of their own, or need protobuf messages, cannot be
//! expressed as a filter over `event_type` and `data`; they are counted as not applicable.
//!
//! The data is read at test time from `../shared/conformance/cel-spec/` (the test prints a
//! notice and passes when the folder is absent). The report (every failure with its reason)
//! is written to `target/cel-conformance.md`; the crate README carries it.

#![allow(clippy::print_stdout)] // Test code: the notice and the report go to stdout.

use serde_json::{Map, Value as Json};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use switchyard_runtime_events::{Event, Filter};

/// The files that matter to filters.
const FILES: &[&str] = &[
    "basic",
    "logic",
    "comparisons",
    "string",
    "string_ext",
    "lists",
    "macros",
    "conversions",
    "integer_math",
    "timestamps",
    "fields",
];

// ---------------------------------------------------------------------------------------------
// A small protobuf text-format reader: enough for `SimpleTestFile`.

#[derive(Debug, Clone)]
enum Node {
    Str(Vec<u8>),
    Word(String),
    Msg(Vec<(String, Node)>),
}

impl Node {
    fn fields(&self) -> &[(String, Node)] {
        match self {
            Node::Msg(fields) => fields,
            _ => &[],
        }
    }
    fn get(&self, name: &str) -> Option<&Node> {
        self.fields()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.fields()
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v)
    }
    fn text(&self) -> Option<String> {
        match self {
            Node::Str(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            Node::Word(w) => Some(w.clone()),
            Node::Msg(_) => None,
        }
    }
}

struct Reader<'a> {
    s: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn skip(&mut self) {
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'#' => {
                    while self.i < self.s.len() && self.s[self.i] != b'\n' {
                        self.i += 1;
                    }
                }
                b' ' | b'\t' | b'\r' | b'\n' | b',' | b';' => self.i += 1,
                _ => break,
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip();
        self.s.get(self.i).copied()
    }

    fn message(&mut self, close: Option<u8>) -> Result<Node, String> {
        let mut fields = Vec::new();
        loop {
            match self.peek() {
                None if close.is_none() => return Ok(Node::Msg(fields)),
                None => return Err("unexpected end".to_owned()),
                Some(c) if Some(c) == close => {
                    self.i += 1;
                    return Ok(Node::Msg(fields));
                }
                Some(_) => {
                    let name = self.name()?;
                    if self.peek() == Some(b':') {
                        self.i += 1;
                    }
                    let value = match self.peek() {
                        Some(b'{') => {
                            self.i += 1;
                            self.message(Some(b'}'))?
                        }
                        Some(b'<') => {
                            self.i += 1;
                            self.message(Some(b'>'))?
                        }
                        Some(b'"' | b'\'') => {
                            let mut bytes = Vec::new();
                            while matches!(self.peek(), Some(b'"' | b'\'')) {
                                bytes.extend(self.string()?);
                            }
                            Node::Str(bytes)
                        }
                        Some(_) => Node::Word(self.word()),
                        None => return Err("value expected".to_owned()),
                    };
                    fields.push((name, value));
                }
            }
        }
    }

    fn name(&mut self) -> Result<String, String> {
        if self.peek() == Some(b'[') {
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i] != b']' {
                self.i += 1;
            }
            self.i += 1;
            return Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned());
        }
        let word = self.word();
        if word.is_empty() {
            return Err(format!("field name expected at byte {}", self.i));
        }
        Ok(word)
    }

    fn word(&mut self) -> String {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || b"_.-+".contains(&self.s[self.i]))
        {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn string(&mut self) -> Result<Vec<u8>, String> {
        let quote = self.s[self.i];
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = *self.s.get(self.i).ok_or("unterminated string")?;
            self.i += 1;
            if c == quote {
                return Ok(out);
            }
            if c != b'\\' {
                out.push(c);
                continue;
            }
            let e = *self.s.get(self.i).ok_or("unterminated escape")?;
            self.i += 1;
            match e {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'a' => out.push(7),
                b'b' => out.push(8),
                b'f' => out.push(12),
                b'v' => out.push(11),
                b'0'..=b'7' => {
                    let mut value = u32::from(e - b'0');
                    for _ in 0..2 {
                        match self.s.get(self.i) {
                            Some(d @ b'0'..=b'7') => {
                                value = value * 8 + u32::from(d - b'0');
                                self.i += 1;
                            }
                            _ => break,
                        }
                    }
                    out.push(value as u8);
                }
                b'x' => {
                    let mut value = 0u32;
                    for _ in 0..2 {
                        match self.s.get(self.i).and_then(|d| (*d as char).to_digit(16)) {
                            Some(d) => {
                                value = value * 16 + d;
                                self.i += 1;
                            }
                            None => break,
                        }
                    }
                    out.push(value as u8);
                }
                b'u' | b'U' => {
                    let len = if e == b'u' { 4 } else { 8 };
                    let hex = std::str::from_utf8(&self.s[self.i..self.i + len])
                        .map_err(|e| e.to_string())?;
                    self.i += len;
                    let c = u32::from_str_radix(hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or("bad unicode escape")?;
                    out.extend(c.to_string().as_bytes());
                }
                other => out.push(other),
            }
        }
    }
}

fn parse(text: &str) -> Result<Node, String> {
    Reader {
        s: text.as_bytes(),
        i: 0,
    }
    .message(None)
}

// ---------------------------------------------------------------------------------------------
// Expected values: as JSON for `data`, or as a CEL literal.

/// The value as JSON, when JSON carries it without changing its CEL type.
fn as_json(value: &Node) -> Option<Json> {
    let (kind, v) = value.fields().first()?;
    match kind.as_str() {
        "null_value" => Some(Json::Null),
        "bool_value" => Some(Json::Bool(v.text()? == "true")),
        "int64_value" => v.text()?.parse::<i64>().ok().map(Json::from),
        "string_value" => v.text().map(Json::String),
        "double_value" => {
            let d: f64 = v.text()?.parse().ok()?;
            // A whole double would come back as an int through JSON text, but `serde_json`'s
            // value keeps it a float, which binds as `double`.
            serde_json::Number::from_f64(d).map(Json::Number)
        }
        "list_value" => v
            .all("values")
            .map(as_json)
            .collect::<Option<Vec<_>>>()
            .map(Json::Array),
        "map_value" => {
            let mut map = Map::new();
            for entry in v.all("entries") {
                let key = entry.get("key")?;
                let Json::String(key) = as_json(key)? else {
                    return None;
                };
                map.insert(key, as_json(entry.get("value")?)?);
            }
            Some(Json::Object(map))
        }
        _ => None,
    }
}

fn cel_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value as a CEL literal expression.
fn as_cel(value: &Node) -> Option<String> {
    let (kind, v) = value.fields().first()?;
    Some(match kind.as_str() {
        "null_value" => "null".to_owned(),
        "bool_value" => v.text()?,
        "int64_value" => {
            let i: i64 = v.text()?.parse().ok()?;
            if i == i64::MIN {
                "-9223372036854775807 - 1".to_owned()
            } else {
                i.to_string()
            }
        }
        "uint64_value" => format!("{}u", v.text()?),
        "double_value" => {
            let text = v.text()?;
            let d: f64 = text.parse().ok()?;
            if d.is_nan() {
                return Some("__NAN__".to_owned());
            } else if d.is_infinite() {
                format!(
                    "double(\"{}\")",
                    if d > 0.0 { "Infinity" } else { "-Infinity" }
                )
            } else {
                format!("double({})", serde_json::to_string(&d).ok()?)
            }
        }
        "string_value" => cel_string(&v.text()?),
        "bytes_value" => {
            let Node::Str(bytes) = v else { return None };
            let mut out = String::from("b\"");
            for b in bytes {
                let _ = write!(out, "\\x{b:02x}");
            }
            out.push('"');
            out
        }
        "type_value" => v.text()?,
        "list_value" => format!(
            "[{}]",
            v.all("values")
                .map(as_cel)
                .collect::<Option<Vec<_>>>()?
                .join(", ")
        ),
        "map_value" => format!(
            "{{{}}}",
            v.all("entries")
                .map(|e| Some(format!(
                    "{}: {}",
                    as_cel(e.get("key")?)?,
                    as_cel(e.get("value")?)?
                )))
                .collect::<Option<Vec<_>>>()?
                .join(", ")
        ),
        "object_value" => {
            let (type_url, body) = v.fields().first()?;
            let seconds: i64 = body
                .get("seconds")
                .and_then(Node::text)
                .map_or(Some(0), |s| s.parse().ok())?;
            let nanos: i64 = body
                .get("nanos")
                .and_then(Node::text)
                .map_or(Some(0), |s| s.parse().ok())?;
            if type_url.ends_with("google.protobuf.Duration]") {
                format!("duration(\"{}s\") + duration(\"{}ns\")", seconds, nanos)
            } else if type_url.ends_with("google.protobuf.Timestamp]") {
                format!("timestamp({seconds}) + duration(\"{nanos}ns\")")
            } else {
                return None;
            }
        }
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Outcome {
    Pass,
    Fail(String),
    NotApplicable(&'static str),
}

fn run_case(test: &Node) -> Outcome {
    let Some(expr) = test.get("expr").and_then(Node::text) else {
        return Outcome::Fail("no expression".to_owned());
    };
    if test.get("bindings").is_some() {
        return Outcome::NotApplicable("binds variables other than `event_type` and `data`");
    }
    let message_type =
        expr.contains("TestAllTypes") || (expr.contains("google.protobuf.") && expr.contains('{'));
    if test.get("container").is_some() || message_type {
        return Outcome::NotApplicable("builds protobuf messages (test types or wrappers)");
    }
    let expects_error = test.get("eval_error").is_some();
    let default_true = Node::Msg(vec![(
        "bool_value".to_owned(),
        Node::Word("true".to_owned()),
    )]);
    let expected = test.get("value").unwrap_or(&default_true);

    let (source, data) = if expects_error {
        (format!("({expr}) == data"), Json::Null)
    } else if let Some(json) = as_json(expected) {
        (format!("({expr}) == data"), json)
    } else if let Some(literal) = as_cel(expected) {
        if literal == "__NAN__" {
            (format!("math.isNaN({expr})"), Json::Null)
        } else {
            (format!("({expr}) == {literal}"), Json::Null)
        }
    } else {
        return Outcome::Fail(format!("cannot express the expected value {expected:?}"));
    };
    let filter = match Filter::compile(&source) {
        Ok(filter) => filter,
        Err(error) if expects_error => {
            let _ = error;
            return Outcome::Pass;
        }
        Err(error) => return Outcome::Fail(format!("rejected at subscribe: {error}")),
    };
    let event = Event::new("conformance", "conformance", data);
    match (filter.matches(&event), expects_error) {
        (Ok(true), false) => Outcome::Pass,
        (Ok(false), false) => Outcome::Fail("evaluates to a different value".to_owned()),
        (Err(error), false) => Outcome::Fail(error.message),
        (Err(_), true) => Outcome::Pass,
        (Ok(_), true) => Outcome::Fail("evaluates instead of failing".to_owned()),
    }
}

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/cel-spec")
}

/// Cases that fail, with the reason in the README. A change in either direction fails the
/// test, so the README's list stays true.
const KNOWN_FAILURES: &[&str] = &[
    // By design: an unknown variable or function is rejected at subscribe, where the spec
    // (for an unchecked expression) expects `error || true` to be true at evaluation.
    "basic/functions/unbound_is_runtime_error",
    "basic/variables/unbound_is_runtime_error",
];

#[test]
fn cel_spec_conformance_through_the_filter_layer() {
    let dir = conformance_dir();
    if !dir.is_dir() {
        println!(
            "notice: {} is absent; skipping the CEL conformance run",
            dir.display()
        );
        return;
    }
    let mut report = String::new();
    let mut failures = BTreeSet::new();
    let (mut total, mut passed, mut not_applicable) = (0, 0, 0);
    let mut rows = String::new();
    let mut failure_lines = String::new();
    let mut reasons = std::collections::BTreeMap::<&str, usize>::new();
    for file in FILES {
        let path = dir.join(format!("{file}.textproto"));
        let text = std::fs::read_to_string(&path).expect("readable conformance file");
        let root = parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let (mut f_total, mut f_pass, mut f_na) = (0, 0, 0);
        for section in root.all("section") {
            let section_name = section.get("name").and_then(Node::text).unwrap_or_default();
            for test in section.all("test") {
                let name = test.get("name").and_then(Node::text).unwrap_or_default();
                let id = format!("{file}/{section_name}/{name}");
                f_total += 1;
                match run_case(test) {
                    Outcome::Pass => f_pass += 1,
                    Outcome::NotApplicable(why) => {
                        f_na += 1;
                        *reasons.entry(why).or_insert(0) += 1;
                    }
                    Outcome::Fail(reason) => {
                        let expr = test.get("expr").and_then(Node::text).unwrap_or_default();
                        let _ = writeln!(
                            failure_lines,
                            "| `{id}` | `{}` | {} |",
                            expr.replace('|', "\\|"),
                            reason.replace('|', "\\|").replace('\n', " ")
                        );
                        failures.insert(id);
                    }
                }
            }
        }
        let _ = writeln!(
            rows,
            "| {file} | {f_total} | {f_pass} | {} | {f_na} |",
            f_total - f_pass - f_na
        );
        total += f_total;
        passed += f_pass;
        not_applicable += f_na;
    }
    let _ = writeln!(
        report,
        "{passed} of {} applicable cases pass ({total} cases, {not_applicable} not applicable).\n\n\
         | file | cases | pass | fail | not applicable |\n|---|---:|---:|---:|---:|\n{rows}\n\
         Not applicable: {}.\n\n\
         | case | expression | why it fails |\n|---|---|---|\n{failure_lines}",
        total - not_applicable,
        reasons
            .iter()
            .map(|(why, n)| format!("{n} {why}"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/cel-conformance.md");
    let _ = std::fs::write(&out, &report);
    println!("{report}");

    let known: BTreeSet<String> = KNOWN_FAILURES.iter().map(|s| (*s).to_owned()).collect();
    let new: Vec<_> = failures.difference(&known).collect();
    let fixed: Vec<_> = known.difference(&failures).collect();
    assert!(
        new.is_empty(),
        "cases failing that are not in the known list: {new:#?}"
    );
    assert!(
        fixed.is_empty(),
        "known failures that now pass (update the list and README): {fixed:#?}"
    );
    assert!(passed > 0);
}

#[test]
fn the_text_format_reader_handles_escapes_and_nesting() {
    let node = parse(
        r#"a: "x\303\277\x41\n" 'y' # comment
           b { c: 1 d: NULL_VALUE [ext.type/Name] { e: -2 } }"#,
    )
    .expect("parses");
    let Some(Node::Str(bytes)) = node.get("a") else {
        panic!("string")
    };
    assert_eq!(bytes, "xÿA\ny".as_bytes());
    let b = node.get("b").expect("b");
    assert_eq!(b.get("c").and_then(Node::text).as_deref(), Some("1"));
    assert_eq!(
        b.get("d").and_then(Node::text).as_deref(),
        Some("NULL_VALUE")
    );
    assert_eq!(
        b.get("[ext.type/Name]")
            .and_then(|n| n.get("e"))
            .and_then(Node::text)
            .as_deref(),
        Some("-2")
    );
}

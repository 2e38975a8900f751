//! Spec paths: the query language of `GET /spec?q=`, and the Rust form of Python's `Dynamic`.
//!
//! A [`Path`] is a root name followed by keys and indexes. It parses every form a step may
//! send:
//!
//! | form | example |
//! |---|---|
//! | canonical (what Python's `Dynamic` renders) | `azure["connection"]["secret"]` |
//! | dotted | `azure.connection.secret` |
//! | integer indexes | `items[0].name` |
//! | single-quoted keys | `azure['connection']` |
//! | escaped keys (JSON escapes) | `labels["app.kubernetes.io/name"]`, `x["say \"hi\""]` |
//!
//! [`Display`](fmt::Display) renders the canonical form exactly as Python's `str(D.a.b)` does
//! (root bare, then `json.dumps`-quoted keys, ASCII only), so a path built in Rust and one
//! built with `Dynamic` send the same query. Parsing the rendered form gives back the same
//! path.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Expected, PathError};

/// One step of a [`Path`]: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// An object member, by name. `x["0"]` is a key, not an index.
    Key(String),
    /// An array element, by position (`x[0]`).
    Index(usize),
}

impl From<&str> for Segment {
    fn from(key: &str) -> Self {
        Segment::Key(key.to_owned())
    }
}

impl From<String> for Segment {
    fn from(key: String) -> Self {
        Segment::Key(key)
    }
}

impl From<usize> for Segment {
    fn from(index: usize) -> Self {
        Segment::Index(index)
    }
}

/// A path into a step's spec, such as `azure["connection"]["secret"]`.
///
/// The empty path (`Path::default()`) means the whole spec. Accepted forms:
///
/// | form | example |
/// |---|---|
/// | canonical (what Python's `Dynamic` renders) | `azure["connection"]["secret"]` |
/// | dotted (names `[A-Za-z_][A-Za-z0-9_-]*`, letters of any script) | `azure.connection.secret` |
/// | integer indexes | `items[0].name` |
/// | single-quoted keys | `azure['connection']` |
/// | keys with JSON escapes | `labels["app.kubernetes.io/name"]`, `x["say \"hi\""]` |
/// | a bracketed root | `["2fa"].code` |
///
/// A key indexes an array when it is a decimal number (`x["0"]`, all Python can send), and
/// an index looks an object up by its decimal form.
///
/// ```
/// use switchyard_metadata::{Path, dynamic};
///
/// let built = Path::root("azure").key("connection").key("secret");
/// assert_eq!(built.to_string(), r#"azure["connection"]["secret"]"#);
/// assert_eq!(built, "azure.connection.secret".parse()?);
/// assert_eq!(built, dynamic!(azure.connection.secret));
///
/// let indexed: Path = "items[0]['display name']".parse()?;
/// assert_eq!(indexed, Path::root("items").index(0).key("display name"));
///
/// let err = "azure[connection]".parse::<Path>().unwrap_err();
/// assert_eq!(err.offset(), 6);
/// # Ok::<(), switchyard_metadata::PathError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path {
    segments: Vec<Segment>,
}

impl Path {
    /// The empty path: the whole spec.
    #[must_use]
    pub fn whole() -> Self {
        Path::default()
    }

    /// A path starting at the top-level key `name` (Python: `D.name`).
    #[must_use]
    pub fn root(name: impl Into<String>) -> Self {
        Path {
            segments: vec![Segment::Key(name.into())],
        }
    }

    /// Appends an object key (Python: `.name` on a `Dynamic`).
    #[must_use]
    pub fn key(mut self, name: impl Into<String>) -> Self {
        self.segments.push(Segment::Key(name.into()));
        self
    }

    /// Appends an array index.
    #[must_use]
    pub fn index(mut self, index: usize) -> Self {
        self.segments.push(Segment::Index(index));
        self
    }

    /// Appends any segment.
    #[must_use]
    pub fn segment(mut self, segment: impl Into<Segment>) -> Self {
        self.segments.push(segment.into());
        self
    }

    /// Appends a segment in place.
    pub fn push(&mut self, segment: impl Into<Segment>) {
        self.segments.push(segment.into());
    }

    /// Removes the last segment.
    #[cfg(feature = "server")]
    pub(crate) fn pop(&mut self) {
        self.segments.pop();
    }

    /// The segments, root first.
    #[must_use]
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Number of segments (0 for the whole spec).
    #[must_use]
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Whether this is the whole-spec path.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The path made of the first `len` segments.
    #[must_use]
    pub fn prefix(&self, len: usize) -> Path {
        Path {
            segments: self.segments[..len.min(self.segments.len())].to_vec(),
        }
    }

    /// Parses any accepted form; see [`Path`] for the grammar.
    ///
    /// # Errors
    /// [`PathError`] with the byte offset of the first character that does not fit and what
    /// was expected there.
    pub fn parse(input: &str) -> Result<Path, PathError> {
        Parser {
            input,
            bytes: input.as_bytes(),
            pos: 0,
        }
        .path()
    }
}

impl FromIterator<Segment> for Path {
    fn from_iter<I: IntoIterator<Item = Segment>>(iter: I) -> Self {
        Path {
            segments: iter.into_iter().collect(),
        }
    }
}

impl FromStr for Path {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Path::parse(s)
    }
}

impl TryFrom<&str> for Path {
    type Error = PathError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Path::parse(s)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 && is_identifier(key) => f.write_str(key)?,
                Segment::Key(key) => {
                    f.write_char('[')?;
                    write_python_json_string(f, key)?;
                    f.write_char(']')?;
                }
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

impl Serialize for Path {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Path {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Path::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Builds a [`Path`] from Rust tokens: `dynamic!(azure.connection.secret)`,
/// `dynamic!(items[0].name)`, `dynamic!(labels["app.kubernetes.io/name"])`.
///
/// The result equals the builder form and the parsed string form:
///
/// ```
/// use switchyard_metadata::{Path, dynamic};
///
/// assert_eq!(dynamic!(azure.connection.secret), Path::root("azure").key("connection").key("secret"));
/// assert_eq!(dynamic!(items[2]["display name"]), Path::root("items").index(2).key("display name"));
/// assert_eq!(dynamic!(items[2]).to_string(), "items[2]");
/// ```
#[macro_export]
macro_rules! dynamic {
    ($root:ident $($rest:tt)*) => {
        $crate::dynamic!(@segments ($crate::Path::root(stringify!($root))) $($rest)*)
    };
    (@segments ($path:expr) . $key:ident $($rest:tt)*) => {
        $crate::dynamic!(@segments ($path.key(stringify!($key))) $($rest)*)
    };
    (@segments ($path:expr) [$segment:literal] $($rest:tt)*) => {
        $crate::dynamic!(@segments ($path.segment($segment)) $($rest)*)
    };
    (@segments ($path:expr)) => {
        $path
    };
}

/// Whether `name` renders bare at the root: `[A-Za-z_][A-Za-z0-9_-]*`, letters from any
/// script allowed (Python attribute names may be non-ASCII).
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(is_identifier_start) && chars.all(is_identifier_continue)
}

fn is_identifier_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_identifier_continue(c: char) -> bool {
    c == '_' || c == '-' || c.is_alphanumeric()
}

/// Writes `text` as Python's `json.dumps` does (`ensure_ascii=True`): `"` and `\` escaped,
/// `\n \r \t \b \f` short escapes, every other character outside printable ASCII as
/// `\uXXXX` in lower-case hex, astral characters as surrogate pairs.
pub(crate) fn write_python_json_string(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    for c in text.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            '\u{8}' => out.write_str("\\b")?,
            '\u{c}' => out.write_str("\\f")?,
            ' '..='~' => out.write_char(c)?,
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(out, "\\u{unit:04x}")?;
                }
            }
        }
    }
    out.write_char('"')
}

struct Parser<'a> {
    input: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn path(mut self) -> Result<Path, PathError> {
        let mut path = Path::default();
        if self.input.is_empty() {
            return Ok(path);
        }
        if self.peek() == Some(b'[') {
            path.push(self.bracket()?);
        } else {
            path.push(Segment::Key(self.identifier(Expected::RootName)?));
        }
        while let Some(byte) = self.peek() {
            match byte {
                b'.' => {
                    self.pos += 1;
                    path.push(Segment::Key(self.identifier(Expected::KeyAfterDot)?));
                }
                b'[' => path.push(self.bracket()?),
                _ => return Err(self.error(Expected::DotOrBracket)),
            }
        }
        Ok(path)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_char(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn error(&self, expected: Expected) -> PathError {
        PathError::new(self.pos, expected, self.peek_char())
    }

    fn identifier(&mut self, expected: Expected) -> Result<String, PathError> {
        let start = self.pos;
        match self.peek_char() {
            Some(c) if is_identifier_start(c) => self.pos += c.len_utf8(),
            _ => return Err(self.error(expected)),
        }
        while let Some(c) = self.peek_char().filter(|&c| is_identifier_continue(c)) {
            self.pos += c.len_utf8();
        }
        Ok(self.input[start..self.pos].to_owned())
    }

    /// `[` (integer | "string" | 'string') `]`, positioned on the `[`.
    fn bracket(&mut self) -> Result<Segment, PathError> {
        self.pos += 1;
        let segment = match self.peek() {
            Some(b'0'..=b'9') => Segment::Index(self.integer()?),
            Some(quote @ (b'"' | b'\'')) => Segment::Key(self.string(quote)?),
            Some(b'-') => return Err(self.error(Expected::NonNegativeIndex)),
            _ => return Err(self.error(Expected::BracketContent)),
        };
        if self.peek() != Some(b']') {
            return Err(self.error(Expected::CloseBracket));
        }
        self.pos += 1;
        Ok(segment)
    }

    fn integer(&mut self) -> Result<usize, PathError> {
        let start = self.pos;
        let mut value: usize = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(usize::from(digit - b'0')))
                .ok_or_else(|| PathError::new(start, Expected::IndexInRange, None))?;
            self.pos += 1;
        }
        Ok(value)
    }

    /// A JSON-escaped string between `quote`s (`'` strings may also escape `'`).
    fn string(&mut self, quote: u8) -> Result<String, PathError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek_char() else {
                return Err(self.error(Expected::ClosingQuote(char::from(quote))));
            };
            match c {
                c if c as u32 == u32::from(quote) => {
                    self.pos += 1;
                    return Ok(out);
                }
                '\\' => {
                    self.pos += 1;
                    out.push(self.escape(quote)?);
                }
                c if c < ' ' => return Err(self.error(Expected::EscapedControl)),
                c => {
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    /// The character after a backslash.
    fn escape(&mut self, quote: u8) -> Result<char, PathError> {
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'\'') if quote == b'\'' => '\'',
            Some(b'u') => {
                let start = self.pos - 1;
                self.pos += 1;
                let high = self.hex4()?;
                return match high {
                    0xD800..=0xDBFF => {
                        if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(PathError::new(start, Expected::LowSurrogate, None));
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(PathError::new(start, Expected::LowSurrogate, None));
                        }
                        let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                        char::from_u32(code)
                            .ok_or_else(|| PathError::new(start, Expected::LowSurrogate, None))
                    }
                    0xDC00..=0xDFFF => Err(PathError::new(start, Expected::LowSurrogate, None)),
                    code => char::from_u32(code)
                        .ok_or_else(|| PathError::new(start, Expected::HexDigits, None)),
                };
            }
            _ => return Err(self.error(Expected::Escape)),
        };
        self.pos += 1;
        Ok(c)
    }

    fn hex4(&mut self) -> Result<u32, PathError> {
        let mut value = 0;
        for _ in 0..4 {
            let digit = self
                .peek()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or_else(|| self.error(Expected::HexDigits))?;
            value = value * 16 + digit;
            self.pos += 1;
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Path {
        match Path::parse(s) {
            Ok(path) => path,
            Err(e) => panic!("{s:?} did not parse: {e}"),
        }
    }

    #[test]
    fn forms_agree() {
        let want = Path::root("azure").key("connection").key("secret");
        assert_eq!(p(r#"azure["connection"]["secret"]"#), want);
        assert_eq!(p("azure.connection.secret"), want);
        assert_eq!(p("azure['connection'].secret"), want);
        assert_eq!(p(r#"["azure"].connection["secret"]"#), want);
        assert_eq!(want.to_string(), r#"azure["connection"]["secret"]"#);
    }

    #[test]
    fn indexes_and_string_keys_differ() {
        assert_eq!(p("items[0]"), Path::root("items").index(0));
        assert_eq!(p(r#"items["0"]"#), Path::root("items").key("0"));
        assert_eq!(p("items[0]").to_string(), "items[0]");
        assert_eq!(p(r#"items["0"]"#).to_string(), r#"items["0"]"#);
        assert_eq!(p("m[007]"), Path::root("m").index(7));
    }

    #[test]
    fn renders_like_python_json_dumps() {
        // Expected strings are what CPython 3.11 prints for str(D.x.<key>) with getattr.
        let cases = [
            ("a.b", r#"x["a.b"]"#),
            ("say \"hi\"", r#"x["say \"hi\""]"#),
            ("back\\slash", r#"x["back\\slash"]"#),
            ("café", r#"x["caf\u00e9"]"#),
            ("🎉", r#"x["\ud83c\udf89"]"#),
            ("tab\there", r#"x["tab\there"]"#),
            ("\u{1}\u{7f}", r#"x["\u0001\u007f"]"#),
            ("a/b", r#"x["a/b"]"#),
        ];
        for (key, want) in cases {
            let path = Path::root("x").key(key);
            assert_eq!(path.to_string(), want, "{key:?}");
            assert_eq!(p(want), path, "{want}");
        }
    }

    #[test]
    fn root_that_is_not_an_identifier_is_bracketed() {
        let path = Path::root("my secret").key("k");
        assert_eq!(path.to_string(), r#"["my secret"]["k"]"#);
        assert_eq!(p(&path.to_string()), path);
        assert_eq!(Path::root("my-secret_2").to_string(), "my-secret_2");
        assert_eq!(Path::root("café").to_string(), "café");
        assert_eq!(Path::root("2fa").to_string(), r#"["2fa"]"#);
    }

    #[test]
    fn empty_is_whole_spec() {
        assert!(p("").is_empty());
        assert_eq!(Path::whole().to_string(), "");
    }

    #[test]
    fn errors_point_at_the_problem() {
        let cases: [(&str, usize, &str); 14] = [
            ("azure[connection]", 6, "a quoted key or an integer index"),
            ("azure.", 6, "a key name"),
            ("azure..x", 6, "a key name"),
            (".azure", 0, "a root name or `[`"),
            ("azure x", 5, "`.` or `[`"),
            ("azure[\"x\"", 9, "`]`"),
            ("azure[\"x", 8, "closing `\"`"),
            ("azure['x", 8, "closing `'`"),
            ("a[-1]", 2, "a non-negative index"),
            (
                "a[99999999999999999999999]",
                2,
                "an index that fits in usize",
            ),
            ("a[\"\\q\"]", 4, "an escape"),
            ("a[\"\\u12\"]", 7, "four hex digits"),
            ("a[\"\\ud83c\"]", 3, "a low surrogate after a high one"),
            ("a[\"\n\"]", 3, "control characters escaped"),
        ];
        for (input, offset, expected) in cases {
            let err = Path::parse(input).expect_err(input);
            assert_eq!(err.offset(), offset, "{input:?}: {err}");
            assert_eq!(err.expected().to_string(), expected, "{input:?}");
        }
        let err = Path::parse("azure x").expect_err("space");
        assert_eq!(
            err.to_string(),
            "invalid path: expected `.` or `[` at byte 5, found ' '"
        );
    }

    #[test]
    fn macro_matches_builder() {
        assert_eq!(dynamic!(a), Path::root("a"));
        assert_eq!(
            dynamic!(a.b[3]["c.d"]),
            Path::root("a").key("b").index(3).key("c.d")
        );
    }

    #[test]
    fn serde_as_string() {
        let path = Path::root("a").key("b c");
        let json = serde_json::to_string(&path).expect("serialize");
        assert_eq!(json, r#""a[\"b c\"]""#);
        let back: Path = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, path);
        assert!(serde_json::from_str::<Path>(r#""a[""#).is_err());
    }

    fn segment() -> impl Strategy<Value = Segment> {
        prop_oneof![
            any::<String>().prop_map(Segment::Key),
            "[a-z_][a-z0-9_.-]{0,8}".prop_map(Segment::Key),
            any::<usize>().prop_map(Segment::Index),
        ]
    }

    proptest! {
        #[test]
        fn render_then_parse_is_identity(segments in proptest::collection::vec(segment(), 0..6)) {
            let path: Path = segments.into_iter().collect();
            let rendered = path.to_string();
            let parsed = Path::parse(&rendered).map_err(|e| TestCaseError::fail(format!("{rendered}: {e}")))?;
            prop_assert_eq!(&parsed, &path);
            prop_assert_eq!(parsed.to_string(), rendered);
        }

        #[test]
        fn parse_never_panics_and_round_trips(input in "\\PC{0,40}|[a-z\\[\\]\"'.0-9\\\\u]{0,30}") {
            if let Ok(path) = Path::parse(&input) {
                let again = Path::parse(&path.to_string()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(again, path);
            }
        }
    }
}

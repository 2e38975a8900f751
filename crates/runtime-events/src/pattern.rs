//! `matches()` with regexes compiled once: a process-wide table of compiled patterns.
//!
//! The `cel` crate compiles the regex of `matches()` on every call. This crate registers its
//! own `matches` instead (the `cel` crate's `regex` feature is off), backed by this table:
//!
//! * a pattern written as a literal in a filter is compiled when the filter is compiled and
//!   stays in the table, pinned, for as long as any filter using it lives;
//! * a pattern computed at evaluation time (`event_type.matches(data.pattern)`) is compiled on
//!   first use and cached unpinned; the unpinned part of the table is bounded and is cleared
//!   when it fills up.
//!
//! Every pattern is compiled with a size limit, so a hostile pattern is an error, not a
//! memory blow-up; the `regex` crate's matching is linear in the input, so there is no
//! catastrophic backtracking to fear either.

use cel::common::types::{CelBool, CelString, STRING_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};
use regex::{Regex, RegexBuilder};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

/// The largest compiled program a pattern may produce (the `regex` crate's size limit).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// How many unpinned (computed at evaluation time) patterns the table keeps at most.
const UNPINNED_LIMIT: usize = 256;

struct Entry {
    regex: Arc<Regex>,
    pins: usize,
}

#[derive(Default)]
struct Table {
    entries: HashMap<Arc<str>, Entry>,
    unpinned: usize,
}

fn table() -> &'static RwLock<Table> {
    static TABLE: OnceLock<RwLock<Table>> = OnceLock::new();
    TABLE.get_or_init(RwLock::default)
}

/// Compiles `pattern` with the size limit; the error is the `regex` crate's message.
pub(crate) fn compile(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| e.to_string())
}

/// A literal pattern kept compiled for as long as the filter holding this pin lives.
pub(crate) struct Pin {
    pattern: Arc<str>,
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Pin").field(&self.pattern).finish()
    }
}

/// Compiles `pattern` (or finds it compiled) and pins it in the table.
pub(crate) fn pin(pattern: &str) -> Result<Pin, String> {
    let mut table = table().write().unwrap_or_else(PoisonError::into_inner);
    if let Some(entry) = table.entries.get_mut(pattern) {
        if entry.pins == 0 {
            table.unpinned -= 1;
        }
        // Re-borrow: the branch above needed `table` whole.
        if let Some(entry) = table.entries.get_mut(pattern) {
            entry.pins += 1;
        }
    } else {
        let regex = Arc::new(compile(pattern)?);
        table
            .entries
            .insert(Arc::from(pattern), Entry { regex, pins: 1 });
    }
    Ok(Pin {
        pattern: Arc::from(pattern),
    })
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut table = table().write().unwrap_or_else(PoisonError::into_inner);
        let remove = match table.entries.get_mut(&*self.pattern) {
            Some(entry) => {
                entry.pins = entry.pins.saturating_sub(1);
                entry.pins == 0
            }
            None => false,
        };
        if remove {
            table.entries.remove(&*self.pattern);
        }
    }
}

/// The compiled regex for `pattern`: from the table, or compiled and cached unpinned.
pub(crate) fn lookup(pattern: &str) -> Result<Arc<Regex>, String> {
    {
        let table = table().read().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = table.entries.get(pattern) {
            return Ok(Arc::clone(&entry.regex));
        }
    }
    let regex = Arc::new(compile(pattern)?);
    let mut table = table().write().unwrap_or_else(PoisonError::into_inner);
    if table.unpinned >= UNPINNED_LIMIT {
        table.entries.retain(|_, entry| entry.pins > 0);
        table.unpinned = 0;
    }
    if !table.entries.contains_key(pattern) {
        table.entries.insert(
            Arc::from(pattern),
            Entry {
                regex: Arc::clone(&regex),
                pins: 0,
            },
        );
        table.unpinned += 1;
    }
    Ok(regex)
}

/// Whether `pattern` is compiled in the table now (for tests).
#[cfg(test)]
pub(crate) fn is_cached(pattern: &str) -> bool {
    table()
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .entries
        .contains_key(pattern)
}

fn string_arg<'a, 'v>(value: &'a (dyn Val + 'v)) -> Result<&'a CelString<'v>, ExecutionError> {
    value
        .downcast_ref::<CelString>()
        .ok_or_else(|| ExecutionError::UnexpectedType {
            got: value.get_type().name().to_owned(),
            want: "string".to_owned(),
        })
}

fn matches<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [text, pattern] = args.as_slice() else {
        return Err(ExecutionError::invalid_argument_count(2, args.len()));
    };
    let text = string_arg(text.as_ref())?;
    let pattern = string_arg(pattern.as_ref())?;
    let regex = lookup(pattern.inner())
        .map_err(|message| ExecutionError::function_error("matches", message))?;
    Ok(CowVal::owned(CelBool::from(regex.is_match(text.inner()))))
}

/// Registers `matches(string, string)` and `string.matches(string)` on `env`.
pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload(
        "matches",
        "matches_string",
        vec![STRING_TYPE, STRING_TYPE],
        matches,
    )?;
    env.add_member_overload(
        "matches",
        "string_matches_string",
        STRING_TYPE,
        vec![STRING_TYPE],
        matches,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_keep_a_pattern_until_the_last_is_dropped() {
        let pattern = "^pin-test-[0-9]+$";
        let first = pin(pattern).expect("valid");
        let second = pin(pattern).expect("valid");
        assert!(is_cached(pattern));
        drop(first);
        assert!(is_cached(pattern));
        drop(second);
        assert!(!is_cached(pattern));
    }

    #[test]
    fn hostile_patterns_are_errors() {
        assert!(pin("(").is_err());
        // A pattern whose compiled form exceeds the size limit.
        assert!(compile(r"\w{1000}{1000}").is_err());
    }
}

//! The iteration budget of one filter evaluation.
//!
//! Comprehension macros (`all`, `exists`, `exists_one`, `map`, `filter`) are the only way a
//! filter's work can grow faster than its own length and the event's size: nested, they
//! multiply. Every comprehension's range is wrapped, when the filter is compiled, in a call to
//! [`BUDGET_FUNCTION`], which charges the range's size to the evaluation's budget *before* the
//! comprehension iterates and fails the evaluation once the budget is spent. An inner
//! comprehension is charged each time its enclosing one steps, so the charges add up to the
//! number of iterations the filter would run (more than it runs when `exists` stops early).
//!
//! The budget lives in a thread-local set for the length of one evaluation: evaluations run
//! synchronously on the calling thread, one at a time.

use std::cell::Cell;

use cel::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr};
use cel::common::types::{LIST_TYPE, MAP_TYPE};
use cel::common::value::CowVal;
use cel::{DeclarationError, Env, ExecutionError};

/// The function comprehension ranges are wrapped in. Filters cannot call it themselves: it is
/// not on the list of functions the checker accepts.
pub(crate) const BUDGET_FUNCTION: &str = "__switchyard_budget";

thread_local! {
    /// Iterations left to the evaluation running on this thread.
    static LEFT: Cell<u64> = const { Cell::new(u64::MAX) };
    /// What the last evaluation on this thread spent (for tests and benchmarks).
    static SPENT: Cell<u64> = const { Cell::new(0) };
}

/// Runs `evaluate` with `budget` iterations to spend.
pub(crate) fn with_budget<T>(budget: u64, evaluate: impl FnOnce() -> T) -> T {
    let outer = LEFT.with(|left| left.replace(budget));
    let result = evaluate();
    let left = LEFT.with(|left| left.replace(outer));
    SPENT.with(|spent| spent.set(budget - left));
    result
}

/// How many iterations the last evaluation on this thread spent.
#[cfg(test)]
pub(crate) fn last_spent() -> u64 {
    SPENT.with(Cell::get)
}

/// Charges a comprehension's range and hands it back unchanged.
fn charge<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let Some(range) = args.pop() else {
        return Err(ExecutionError::invalid_argument_count(1, 0));
    };
    let size = range
        .as_sizer()
        .map_or(0, |sizer| u64::try_from(*sizer.size().inner()).unwrap_or(0))
        // An empty range still costs its comprehension one step.
        .max(1);
    LEFT.with(|left| {
        let have = left.get();
        if size > have {
            left.set(0);
            Err(ExecutionError::function_error(
                "filter",
                "over its iteration budget; counted as no match",
            ))
        } else {
            left.set(have - size);
            Ok(range)
        }
    })
}

/// Registers [`BUDGET_FUNCTION`] for lists and maps.
pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload(BUDGET_FUNCTION, "budget_list", vec![LIST_TYPE], charge)?;
    env.add_overload(BUDGET_FUNCTION, "budget_map", vec![MAP_TYPE], charge)
}

/// Wraps the range of every comprehension in `expr` in [`BUDGET_FUNCTION`]. New nodes take
/// ids above `next_id`, which is advanced.
pub(crate) fn instrument(expr: &mut IdedExpr, next_id: &mut u64) {
    match &mut expr.expr {
        Expr::Comprehension(c) => {
            instrument(&mut c.iter_range, next_id);
            instrument(&mut c.accu_init, next_id);
            instrument(&mut c.loop_cond, next_id);
            instrument(&mut c.loop_step, next_id);
            instrument(&mut c.result, next_id);
            let range = std::mem::take(&mut c.iter_range);
            *next_id += 1;
            c.iter_range = IdedExpr {
                id: *next_id,
                expr: Expr::Call(CallExpr {
                    func_name: BUDGET_FUNCTION.to_owned(),
                    target: None,
                    args: vec![range],
                }),
            };
        }
        Expr::Call(call) => {
            if let Some(target) = &mut call.target {
                instrument(target, next_id);
            }
            for arg in &mut call.args {
                instrument(arg, next_id);
            }
        }
        Expr::List(list) => {
            for element in &mut list.elements {
                instrument(element, next_id);
            }
        }
        Expr::Map(map) => {
            for entry in &mut map.entries {
                match &mut entry.expr {
                    EntryExpr::MapEntry(entry) => {
                        instrument(&mut entry.key, next_id);
                        instrument(&mut entry.value, next_id);
                    }
                    EntryExpr::StructField(field) => instrument(&mut field.value, next_id),
                }
            }
        }
        Expr::Select(select) => instrument(&mut select.operand, next_id),
        Expr::Struct(structure) => {
            for entry in &mut structure.entries {
                match &mut entry.expr {
                    EntryExpr::MapEntry(entry) => {
                        instrument(&mut entry.key, next_id);
                        instrument(&mut entry.value, next_id);
                    }
                    EntryExpr::StructField(field) => instrument(&mut field.value, next_id),
                }
            }
        }
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
    }
}

/// The largest id in `expr`.
pub(crate) fn max_id(expr: &IdedExpr) -> u64 {
    let mut max = expr.id;
    let mut visit = |e: &IdedExpr| max = max.max(max_id(e));
    match &expr.expr {
        Expr::Comprehension(c) => {
            for e in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                visit(e);
            }
        }
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                visit(target);
            }
            call.args.iter().for_each(&mut visit);
        }
        Expr::List(list) => list.elements.iter().for_each(&mut visit),
        Expr::Map(map) => {
            for entry in &map.entries {
                match &entry.expr {
                    EntryExpr::MapEntry(entry) => {
                        visit(&entry.key);
                        visit(&entry.value);
                    }
                    EntryExpr::StructField(field) => visit(&field.value),
                }
            }
        }
        Expr::Select(select) => visit(&select.operand),
        Expr::Struct(structure) => {
            for entry in &structure.entries {
                match &entry.expr {
                    EntryExpr::MapEntry(entry) => {
                        visit(&entry.key);
                        visit(&entry.value);
                    }
                    EntryExpr::StructField(field) => visit(&field.value),
                }
            }
        }
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
    }
    max
}

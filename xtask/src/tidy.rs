//! The `tidy` pass: repository hygiene that neither rustfmt nor clippy checks.
//!
//! - every `.rs` file under `crates/`, `xtask/` and `tests/` starts with a `//!` line;
//! - no text file has trailing whitespace;
//! - every library crate's `lib.rs` carries `#![deny(missing_docs)]`;
//! - every to-do marker names its issue (the marker, then `(#N)`).

use std::fs;
use std::path::{Path, PathBuf};

/// Directories never walked: build output, VCS data, local state, fuzzing output.
const SKIPPED_DIRS: &[&str] = &[
    "target",
    ".git",
    ".switchyard",
    "corpus",
    "artifacts",
    "node_modules",
];
/// The to-do marker, spelled in two halves so this file does not trip its own check.
const PENDING_WORK_MARKER: &str = concat!("TO", "DO");
/// Extensions of files checked for trailing whitespace.
const TEXT_EXTENSIONS: &[&str] = &["rs", "toml", "md", "py", "yml", "yaml", "json", "sh"];

/// Runs every tidy check, returning how many files were looked at.
pub fn run(root: &Path) -> Result<usize, String> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    collect(root, &mut files).map_err(|e| format!("walking {}: {e}", root.display()))?;
    let ci_script = root.join(".ci").join("run");
    if ci_script.is_file() {
        files.push(ci_script);
    }

    for path in &files {
        let relative = path.strip_prefix(root).unwrap_or(path);
        let Ok(text) = fs::read_to_string(path) else {
            problems.push(format!("{}: not UTF-8 text", relative.display()));
            continue;
        };
        check_whitespace(relative, &text, &mut problems);
        if path.extension().is_some_and(|ext| ext == "rs") {
            check_rust(relative, &text, &mut problems);
        }
    }

    check_library_crates(root, &mut problems);

    if problems.is_empty() {
        println!("tidy: {} files clean", files.len());
        Ok(files.len())
    } else {
        for problem in &problems {
            println!("tidy: {problem}");
        }
        Err(format!("{} tidy problem(s)", problems.len()))
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if entry.file_type()?.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_ref()) {
                collect(&path, out)?;
            }
        } else if path
            .extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| TEXT_EXTENSIONS.contains(&ext))
        {
            out.push(path);
        }
    }
    Ok(())
}

fn check_whitespace(path: &Path, text: &str, problems: &mut Vec<String>) {
    for (number, line) in text.lines().enumerate() {
        if line.ends_with([' ', '\t']) {
            problems.push(format!(
                "{}:{}: trailing whitespace",
                path.display(),
                number + 1
            ));
        }
    }
}

fn check_rust(path: &Path, text: &str, problems: &mut Vec<String>) {
    let in_checked_tree = path.components().next().is_some_and(|first| {
        ["crates", "xtask", "tests"].contains(&&*first.as_os_str().to_string_lossy())
    });
    if in_checked_tree && !text.starts_with("//!") {
        problems.push(format!(
            "{}:1: a Rust file must start with a `//!` line saying what it is for",
            path.display()
        ));
    }
    for (number, line) in text.lines().enumerate() {
        if let Some(at) = line.find(PENDING_WORK_MARKER)
            && !line[at + PENDING_WORK_MARKER.len()..].starts_with("(#")
        {
            problems.push(format!(
                "{}:{}: a {PENDING_WORK_MARKER} must name its issue, as `{PENDING_WORK_MARKER}(#N)`",
                path.display(),
                number + 1
            ));
        }
    }
}

/// Every crate under `crates/` with a `src/lib.rs` must deny missing docs.
fn check_library_crates(root: &Path, problems: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(root.join("crates")) else {
        problems.push("crates/: missing or unreadable".to_owned());
        return;
    };
    for entry in entries.flatten() {
        let lib = entry.path().join("src").join("lib.rs");
        let Ok(text) = fs::read_to_string(&lib) else {
            continue;
        };
        if !text.contains("#![deny(missing_docs)]") {
            let relative = lib.strip_prefix(root).unwrap_or(&lib);
            problems.push(format!(
                "{}: a library crate must have `#![deny(missing_docs)]`",
                relative.display()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_whitespace_is_reported_with_its_line() {
        let mut problems = Vec::new();
        check_whitespace(Path::new("a.md"), "ok\nbad \nok\n", &mut problems);
        assert_eq!(problems, vec!["a.md:2: trailing whitespace".to_owned()]);
    }

    #[test]
    fn rust_file_without_module_doc_is_reported() {
        let mut problems = Vec::new();
        check_rust(
            Path::new("crates/x/src/a.rs"),
            "fn main() {}\n",
            &mut problems,
        );
        assert_eq!(problems.len(), 1);
        let mut problems = Vec::new();
        check_rust(Path::new("crates/x/src/a.rs"), "//! Docs.\n", &mut problems);
        assert!(problems.is_empty());
    }

    #[test]
    fn todo_needs_an_issue_number() {
        let mut problems = Vec::new();
        let text = format!(
            "//! Docs.\n// {PENDING_WORK_MARKER}: later\n// {PENDING_WORK_MARKER}(#12): tracked\n"
        );
        check_rust(Path::new("crates/x/src/a.rs"), &text, &mut problems);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains(":2:"));
    }
}

//! Project automation for Switchyard: `cargo xtask ci` runs every check CI runs.
//!
//! Plain Rust with no dependencies, so it builds in seconds on a fresh machine.
//! Each step is named, timed, and the run stops at the first failing step.

use std::env;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

mod portal;
mod schemathesis;
mod tidy;

/// The Python packages the interop checks run against: the `cloudevents` SDK, the two
/// webhook libraries that must verify our signatures (`svix` pinned as `swh-webhooks` pins it),
/// and the Autohive Integrations SDK's dependencies.
const PYTHON_PACKAGES: &[&str] = &[
    "cloudevents==2.2.0",
    "standardwebhooks==1.1.0",
    "svix==1.62.0",
    // The Autohive SDK's own dependencies (it is installed without them, below).
    "jsonschema==4.17.3",
    "aiohttp==3.12.15",
    // Relay's step SDK, and the dependency versions its WebhookServer works with.
    "relay-sdk==0.3.1",
    "hypercorn==0.13.2",
    "asgiref==3.8.1",
    "requests==2.32.3",
    // swh-webhooks' dependencies but for swh.journal (see below).
    "swh.core==5.0.1",
    "tenacity==9.2.1",
    // What swh-webhooks' own test suite runs with (its `testing` extra, but for Docker and
    // swh.journal). Its CLI tests expect click before 8.2, where a group run without a
    // command exited 0.
    "pytest==9.2.0",
    "pytest-httpserver==1.2.1",
    "pytest-mock==3.17.0",
    "pytest-click==1.1.0",
    "click==8.1.8",
    "werkzeug==3.1.9",
];
/// Newer `svix` clients, each installed with `--no-deps --target <venv>/svix-clients/<version>`
/// (their dependencies are the venv's): the latest 1.x and the latest 2.x. Tests put one
/// directory first on `PYTHONPATH` to drive the server with that client; the venv's own
/// `svix` is 1.62, what swh-webhooks pins.
const SVIX_CLIENTS: &[&str] = &["1.99.1", "2.9.1"];
/// Installed with `--no-deps --ignore-requires-python`, their dependencies pinned in
/// `PYTHON_PACKAGES`: autohive-integrations-sdk declares Python >= 3.13 but runs on the
/// machine's 3.11 (its interop test proves it); swh.webhooks would pull swh.journal and a
/// Kafka client that only its journal client (not the `Webhooks` interface) imports.
const PYTHON_PACKAGES_WITHOUT_DEPS: &[&str] =
    &["autohive-integrations-sdk==2.0.1", "swh.webhooks==0.3.2"];
/// The cargo-deny release installed when the machine has none.
const CARGO_DENY: &str = "cargo-deny@0.20.2";
/// The cargo-hack release installed when the machine has none (the feature matrix).
const CARGO_HACK: &str = "cargo-hack@0.6.46";
/// The cargo-machete release installed when the machine has none (unused dependencies).
const CARGO_MACHETE: &str = "cargo-machete@0.9.2";
/// The library crates whose features users pick: each is checked with no default features
/// and with each feature on its own.
const LIBRARIES: &[&str] = &[
    "switchyard-cloudevents",
    "switchyard-webhooks",
    "switchyard-runtime-events",
    "switchyard-integration",
    "switchyard-metadata",
    "switchyard-https",
    "switchyard",
];
/// The cargo-fuzz release installed when the machine has none.
const CARGO_FUZZ: &str = "cargo-fuzz@0.13.2";
/// The fuzz targets under `fuzz/`, each run for a while by `cargo xtask fuzz`.
const FUZZ_TARGETS: &[&str] = &["from_http", "cel_filter", "http_front_door"];
/// How long `cargo xtask ci` runs each fuzz target, in seconds.
const CI_FUZZ_SECONDS: u64 = 20;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let root = workspace_root();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(&root),
        Some("tidy") => tidy::run(&root).map(|_| ()),
        Some("fuzz") => {
            let seconds = match args.get(1).map(|s| s.parse::<u64>()) {
                None => Ok(60),
                Some(Ok(seconds)) if seconds > 0 => Ok(seconds),
                Some(_) => Err("the fuzzing time must be a whole number of seconds".to_owned()),
            };
            seconds.and_then(|seconds| fuzz(&root, seconds))
        }
        Some("interop-env") => interop_venv(&root).map(|python| {
            println!("{}", python.display());
        }),
        Some("schemathesis") => schemathesis::run_step(&root),
        Some("portal") => portal::run_step(&root),
        Some("features") => features(&root),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 ci           run every check, in order, stopping at the first failure\n  \
                 tidy         run only the tidy pass (docs, whitespace, lint attributes)\n  \
                 fuzz [secs]  build the fuzz targets and run each for secs seconds (default 60)\n  \
                 interop-env  create the Python interop venv and print its python path\n  \
                 schemathesis run Svix's OpenAPI document against a live server (release)\n  \
                 portal       drive the portal in Chromium against a live server (release)
  features     unused dependencies (cargo-machete), each library feature alone (cargo-hack)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The directory holding the workspace `Cargo.toml` (the parent of `xtask/`).
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// Test totals gathered from `cargo test` output.
#[derive(Default)]
struct TestTotals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

fn ci(root: &Path) -> Result<(), String> {
    let started = Instant::now();
    let mut timings: Vec<(&str, f64)> = Vec::new();
    let mut totals = TestTotals::default();

    step(&mut timings, "fmt", || {
        cargo(root, &["fmt", "--all", "--", "--check"], &[])
    })?;
    step(&mut timings, "tidy", || tidy::run(root).map(|_| ()))?;
    step(&mut timings, "clippy", || {
        cargo(
            root,
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--",
                "-D",
                "warnings",
            ],
            &[],
        )
    })?;
    // Every dependency used, and every library built with only the features a user picks.
    step(&mut timings, "features", || features(root))?;
    let python = step_value(&mut timings, "interop-venv", || interop_venv(root))?;
    step(&mut timings, "test", || {
        let python = python.as_os_str().to_owned();
        totals = cargo_test(
            root,
            &["test", "--workspace", "--all-features"],
            &[("SWITCHYARD_INTEROP_PYTHON", python)],
        )?;
        Ok(())
    })?;
    // The server load test: an optimised build, since it reports rates and latencies.
    step(&mut timings, "load", || {
        let load = cargo_test(
            root,
            &[
                "test",
                "--release",
                "-p",
                "switchyard-e2e",
                "--test",
                "server_load",
                "--",
                "--ignored",
                "--nocapture",
                // One store at a time: run together, they share the two cores and each
                // reports half a machine.
                "--test-threads=1",
            ],
            &[],
        )?;
        totals.passed += load.passed;
        totals.failed += load.failed;
        Ok(())
    })?;
    // Svix's OpenAPI document against a live server (an optimised build, like `load`'s).
    step(&mut timings, "schemathesis", || {
        schemathesis::run_step(root)
    })?;
    // The portal's pages in Chromium, against the same release build.
    step(&mut timings, "portal", || portal::run_step(root))?;
    step(&mut timings, "fuzz", || fuzz(root, CI_FUZZ_SECONDS))?;
    step(&mut timings, "doc", || {
        cargo(
            root,
            &["doc", "--workspace", "--no-deps", "--all-features"],
            // As docs.rs builds them: `--cfg docsrs` turns on `doc_cfg` (a nightly feature,
            // allowed on this stable toolchain as the fuzz step allows its own).
            &[
                ("RUSTDOCFLAGS", OsString::from("--cfg docsrs -D warnings")),
                ("RUSTC_BOOTSTRAP", OsString::from("1")),
            ],
        )
    })?;
    step(&mut timings, "deny", || {
        ensure_cargo_deny(root)?;
        cargo(
            root,
            &[
                "deny",
                "--all-features",
                "check",
                "licenses",
                "bans",
                "sources",
            ],
            &[],
        )
    })?;

    println!("\n== summary");
    for (name, secs) in &timings {
        println!("  {name:<14} ok  {secs:>7.1}s");
    }
    println!(
        "  total               {:>7.1}s",
        started.elapsed().as_secs_f64()
    );
    println!(
        "tests: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    Ok(())
}

/// Runs one named step, printing its name and duration; stops the run when it fails.
fn step<'a>(
    timings: &mut Vec<(&'a str, f64)>,
    name: &'a str,
    body: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    step_value(timings, name, body)
}

fn step_value<'a, T>(
    timings: &mut Vec<(&'a str, f64)>,
    name: &'a str,
    body: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    println!("\n== step {name}");
    let started = Instant::now();
    let outcome = body();
    let secs = started.elapsed().as_secs_f64();
    match outcome {
        Ok(value) => {
            println!("== step {name}: ok in {secs:.1}s");
            timings.push((name, secs));
            Ok(value)
        }
        Err(message) => {
            println!("== step {name}: FAILED after {secs:.1}s");
            Err(format!("step `{name}` failed: {message}"))
        }
    }
}

fn cargo_command(root: &Path, args: &[&str], envs: &[(&str, OsString)]) -> Command {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command.args(args).current_dir(root);
    for (key, value) in envs {
        command.env(key, value);
    }
    command
}

/// Runs cargo with the output streamed to the terminal.
fn cargo(root: &Path, args: &[&str], envs: &[(&str, OsString)]) -> Result<(), String> {
    let status = cargo_command(root, args, envs)
        .status()
        .map_err(|e| format!("could not start cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` exited with {status}", args.join(" ")))
    }
}

/// Runs `cargo test`, streaming its output and adding up its `test result:` lines.
fn cargo_test(root: &Path, args: &[&str], envs: &[(&str, OsString)]) -> Result<TestTotals, String> {
    let mut child = cargo_command(root, args, envs)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start cargo: {e}"))?;
    let mut totals = TestTotals::default();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| format!("reading cargo test output: {e}"))?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                add_totals(&mut totals, rest);
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for cargo test: {e}"))?;
    if !status.success() {
        return Err(format!("`cargo {}` exited with {status}", args.join(" ")));
    }
    if totals.passed == 0 {
        return Err("cargo test ran no test".to_owned());
    }
    Ok(totals)
}

/// Parses `ok. 3 passed; 0 failed; 1 ignored; ...` into the running totals.
fn add_totals(totals: &mut TestTotals, summary: &str) {
    for part in summary.split(';') {
        let mut words = part.split_whitespace().rev();
        let (Some(label), Some(count)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(count) = count.parse::<u64>() else {
            continue;
        };
        match label {
            "passed" => totals.passed += count,
            "failed" => totals.failed += count,
            "ignored" => totals.ignored += count,
            _ => {}
        }
    }
}

/// Creates (once) a venv under `target/` holding the pinned Python interop packages.
fn interop_venv(root: &Path) -> Result<PathBuf, String> {
    let venv = root.join("target").join("interop-venv");
    let python = venv.join("bin").join("python");
    let marker = venv.join(".switchyard-ready");
    let svix_clients: Vec<String> = SVIX_CLIENTS
        .iter()
        .map(|version| format!("svix=={version} (target)"))
        .collect();
    let wanted = [PYTHON_PACKAGES, PYTHON_PACKAGES_WITHOUT_DEPS]
        .concat()
        .into_iter()
        .map(str::to_owned)
        .chain(svix_clients)
        .collect::<Vec<_>>()
        .join(" ");
    if std::fs::read_to_string(&marker).is_ok_and(|found| found.trim() == wanted) {
        println!("reusing {} ({wanted})", venv.display());
        return Ok(python);
    }
    let system_python = env::var_os("PYTHON").unwrap_or_else(|| OsString::from("python3"));
    run(
        Command::new(&system_python)
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
        "create the interop venv (is python3 with the venv module installed?)",
    )?;
    let pip_install = |extra: &[&str], packages: &[&str], what: &str| {
        run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(extra)
                .args(packages),
            what,
        )
    };
    pip_install(
        &[],
        PYTHON_PACKAGES,
        "install the Python interop packages from PyPI",
    )?;
    pip_install(
        &["--no-deps", "--ignore-requires-python"],
        PYTHON_PACKAGES_WITHOUT_DEPS,
        "install the Autohive SDK and swh.webhooks from PyPI",
    )?;
    for version in SVIX_CLIENTS {
        let target = venv.join("svix-clients").join(version);
        let target_arg = target.to_string_lossy().into_owned();
        pip_install(
            &["--no-deps", "--target", &target_arg],
            &[&format!("svix=={version}")],
            "install a newer svix client from PyPI",
        )?;
    }
    std::fs::write(&marker, &wanted).map_err(|e| format!("writing {}: {e}", marker.display()))?;
    Ok(python)
}

/// Builds the fuzz targets (`fuzz/`, outside the workspace; release with debug assertions, no
/// sanitizer: the code is safe Rust, and no nightly toolchain is needed, since
/// `RUSTC_BOOTSTRAP=1` lets stable take the flags libFuzzer builds need) and runs each for
/// `seconds`. A crash fails the step; its input is left under `fuzz/artifacts/`.
fn fuzz(root: &Path, seconds: u64) -> Result<(), String> {
    ensure_tool(root, "fuzz", CARGO_FUZZ)?;
    let dir = root.join("fuzz");
    let target_dir = root.join("target").join("fuzz");
    let target_dir = target_dir.to_string_lossy();
    let total = format!("-max_total_time={seconds}");
    for target in FUZZ_TARGETS {
        println!("fuzzing {target} for {seconds} s");
        let status = cargo_command(
            &dir,
            &[
                "fuzz",
                "run",
                "--sanitizer",
                "none",
                "--release",
                "--debug-assertions",
                "--target-dir",
                &target_dir,
                target,
                "--",
                &total,
                "-rss_limit_mb=4096",
                "-print_final_stats=1",
            ],
            &[("RUSTC_BOOTSTRAP", OsString::from("1"))],
        )
        .status()
        .map_err(|e| format!("could not start cargo fuzz: {e}"))?;
        if !status.success() {
            return Err(format!(
                "fuzz target {target} failed ({status}); the input is under fuzz/artifacts/{target}/"
            ));
        }
    }
    Ok(())
}

/// Fails on a dependency no code uses (cargo-machete), then checks each library crate with
/// no default features and with each of its features alone (cargo-hack), without
/// dev-dependencies, so a feature that needs another one it does not enable fails here.
fn features(root: &Path) -> Result<(), String> {
    ensure_tool(root, "machete", CARGO_MACHETE)?;
    // cargo-machete reads `CARGO_PKG_NAME` (set for xtask by `cargo run`) as "called on its
    // own", and then takes `machete` for a path.
    run(
        cargo_command(root, &["machete"], &[]).env_remove("CARGO_PKG_NAME"),
        "look for unused dependencies (cargo machete)",
    )?;
    ensure_tool(root, "hack", CARGO_HACK)?;
    let mut args = vec!["hack", "check", "--each-feature", "--no-dev-deps"];
    for library in LIBRARIES {
        args.extend(["-p", library]);
    }
    // A feature set that leaves code unused warns; here that fails.
    cargo(root, &args, &[("RUSTFLAGS", OsString::from("-D warnings"))])
}

/// Installs cargo-deny with `cargo install --locked` when it is not on this machine.
fn ensure_cargo_deny(root: &Path) -> Result<(), String> {
    ensure_tool(root, "deny", CARGO_DENY)
}

/// Installs the cargo subcommand `name` (`package@version`) with `cargo install --locked`
/// when it is not on this machine.
fn ensure_tool(root: &Path, name: &str, package: &str) -> Result<(), String> {
    let found = cargo_command(root, &[name, "--version"], &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if found {
        return Ok(());
    }
    println!("cargo {name} is missing; installing {package} (takes a few minutes once)");
    cargo(root, &["install", "--locked", package], &[])
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("could not {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("could not {what}: exited with {status}"))
    }
}

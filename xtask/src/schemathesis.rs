//! The Svix API's schema conformance: `schemathesis` (PyPI) generates requests from Svix's
//! OpenAPI document and checks a live `switchyard serve`'s answers against it — no 5xx,
//! documented status codes and content types, responses that match their schemas.
//!
//! The document is read from `../shared/conformance/svix/openapi.json` (or
//! `$SWITCHYARD_CONFORMANCE_DIR/svix/`) at run time. Four of its operations use an `{app_id}`
//! they do not declare, which schemathesis refuses to test; the run gets a copy under
//! `target/schemathesis/` with those path parameters declared, nothing else changed.
//! Known, argued deviations are the baseline `crates/server/schemathesis-baseline.json`, each
//! also a line of `crates/server/README.md`; anything else fails the step.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{cargo, run};

/// The schemathesis release the step installs, and the hypothesis release under it (pinned
/// too, so that a run is the same run on every machine).
const PACKAGES: &[&str] = &["schemathesis==4.32.5", "hypothesis==6.131.0"];
/// How long schemathesis generates requests (fuzzing repeats until the budget is spent).
const BUDGET_SECONDS: u64 = 90;
/// The seed: the same requests on every run, so a failure is reproducible.
const SEED: &str = "20261206";
/// The token the server under test accepts.
const TOKEN: &str = "schemathesis-token-0123456789";
/// The checks run on every answer.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

/// Kills the server when the step ends, however it ends.
pub(crate) struct Server(Child);

impl Server {
    /// Starts the release `switchyard serve` with `config`, and waits until it listens on
    /// loopback `port`.
    pub(crate) fn start(root: &Path, config: &Path, port: u16) -> Result<Self, String> {
        let binary = root.join("target").join("release").join("switchyard");
        let server = Self(
            Command::new(&binary)
                .arg("serve")
                .arg("--config")
                .arg(config)
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| format!("could not start {}: {e}", binary.display()))?,
        );
        wait_for(port)?;
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the step: builds the release server, starts it on loopback with a fresh data
/// directory, runs schemathesis against it, and checks its report.
pub fn run_step(root: &Path) -> Result<(), String> {
    let document = conformance_dir(root).join("svix").join("openapi.json");
    let text = std::fs::read_to_string(&document).map_err(|e| {
        format!(
            "cannot read Svix's OpenAPI document {} ({e}); it is read from ../shared/conformance \
             or $SWITCHYARD_CONFORMANCE_DIR",
            document.display()
        )
    })?;
    let mut spec: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", document.display()))?;
    let declared = declare_path_parameters(&mut spec);
    let work = root.join("target").join("schemathesis");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let patched = work.join("openapi.json");
    std::fs::write(&patched, spec.to_string())
        .map_err(|e| format!("{}: {e}", patched.display()))?;
    println!(
        "Svix's document with {declared} undeclared path parameters declared: {}",
        patched.display()
    );

    let schemathesis = venv(root)?;
    cargo(
        root,
        &[
            "build",
            "--release",
            "-p",
            "switchyard-server",
            "--bin",
            "switchyard",
        ],
        &[],
    )?;
    let port = free_port()?;
    let config = work.join("switchyard.toml");
    let data = work.join("data");
    std::fs::write(
        &config,
        format!(
            "bind = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\ntokens = [\"{TOKEN}\"]\nlog_filter = \"warn\"\n",
            data.display()
        ),
    )
    .map_err(|e| format!("{}: {e}", config.display()))?;
    let server = Server::start(root, &config, port)?;

    let report = work.join("report.json");
    let baseline = root
        .join("crates")
        .join("server")
        .join("schemathesis-baseline.json");
    // Its exit status is not the verdict (it counts the baseline's failures too): the report is.
    // Run from its directory under `target/`, where it keeps its example database.
    let _ = Command::new(&schemathesis)
        .current_dir(&work)
        .arg("run")
        .arg(&patched)
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-time", &BUDGET_SECONDS.to_string()])
        .args(["--workers", "2", "--seed", SEED, "--no-color"])
        .arg("--baseline")
        .arg(&baseline)
        .args(["--report", "json", "--report-json-path"])
        .arg(&report)
        .status()
        .map_err(|e| format!("could not start schemathesis: {e}"))?;
    drop(server);
    verdict(&report)
}

/// `$SWITCHYARD_CONFORMANCE_DIR`, else `../shared/conformance` beside the checkout.
fn conformance_dir(root: &Path) -> PathBuf {
    match std::env::var_os("SWITCHYARD_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => root.join("..").join("shared").join("conformance"),
    }
}

/// Declares, on each operation, the `{name}` path parameters its path uses and neither it
/// nor its path item declares (a string, required); returns how many it added.
fn declare_path_parameters(spec: &mut Value) -> usize {
    let mut added = 0;
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return 0;
    };
    for (path, item) in paths.iter_mut() {
        let used: Vec<String> = path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
            .collect();
        let shared = declared_names(item.get("parameters"));
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            if method == "parameters" || !operation.is_object() {
                continue;
            }
            let own = declared_names(operation.get("parameters"));
            let missing: Vec<&String> = used
                .iter()
                .filter(|name| !shared.contains(name) && !own.contains(name))
                .collect();
            if missing.is_empty() {
                continue;
            }
            let parameters = operation
                .as_object_mut()
                .map(|o| o.entry("parameters").or_insert_with(|| json!([])));
            if let Some(Value::Array(parameters)) = parameters {
                for name in missing {
                    parameters.push(json!({
                        "in": "path", "name": name, "required": true,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 256,
                                   "pattern": "^[a-zA-Z0-9\\-_.]+$"}
                    }));
                    added += 1;
                }
            }
        }
    }
    added
}

/// The names of the path parameters a `parameters` list declares.
fn declared_names(parameters: Option<&Value>) -> Vec<String> {
    parameters
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A venv under `target/` with schemathesis.
fn venv(root: &Path) -> Result<PathBuf, String> {
    let venv = root.join("target").join("schemathesis-venv");
    let tool = venv.join("bin").join("schemathesis");
    let marker = venv.join(".switchyard-ready");
    let wanted = PACKAGES.join(" ");
    if std::fs::read_to_string(&marker).is_ok_and(|found| found.trim() == wanted) {
        return Ok(tool);
    }
    let python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    run(
        Command::new(python)
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
        "create the schemathesis venv",
    )?;
    run(
        Command::new(venv.join("bin").join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PACKAGES),
        "install schemathesis from PyPI",
    )?;
    std::fs::write(&marker, &wanted).map_err(|e| format!("{}: {e}", marker.display()))?;
    Ok(tool)
}

/// A port no one listens on now.
pub(crate) fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free loopback port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Waits (at most a minute) until the server answers its health check.
fn wait_for(port: u16) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "the server did not listen on 127.0.0.1:{port} within a minute"
    ))
}

/// Reads schemathesis's JSON report: every operation tested, no failure outside the
/// baseline, no error but schemathesis's own (a "Runtime Error" is the tool failing, e.g.
/// hypothesis finding a stateful server's answer changed between two tries: counted and
/// printed, not ours to fail on); prints the counts.
fn verdict(report: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(report)
        .map_err(|e| format!("schemathesis wrote no report at {}: {e}", report.display()))?;
    let report: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", report.display()))?;
    let generated = report["test_cases"]["generated"].as_u64().unwrap_or(0);
    let tested = report["operations"]["tested"].as_u64().unwrap_or(0);
    let total = report["operations"]["total"].as_u64().unwrap_or(0);
    let known = report["baseline"]["known"].as_u64().unwrap_or(0);
    let failures = report["failures"].as_array().cloned().unwrap_or_default();
    let errors = report["errors"].as_array().cloned().unwrap_or_default();
    let (tool, ours): (Vec<Value>, Vec<Value>) = errors
        .into_iter()
        .partition(|e| e["title"] == "Runtime Error");
    let tool_errors: u64 = tool.iter().filter_map(|e| e["count"].as_u64()).sum();
    println!(
        "schemathesis: {tested} of {total} operations, {generated} requests; {} failures and {} \
         errors outside the baseline; {known} known deviations seen; {tool_errors} errors of \
         schemathesis itself",
        failures.len(),
        ours.len(),
    );
    if tested < total || generated == 0 {
        return Err(format!(
            "schemathesis tested {tested} of {total} operations"
        ));
    }
    if !failures.is_empty() || !ours.is_empty() {
        return Err(format!(
            "schemathesis found what the baseline does not list: failures {} errors {}",
            Value::Array(failures),
            Value::Array(ours)
        ));
    }
    Ok(())
}

//! The portal in a real browser: Debian's Chromium (installed with `apt-get` when the machine
//! has none), driven by `playwright-core` from npm (pinned by `tests/browser/package-lock.json`,
//! installed with `npm ci`), against a live release `switchyard serve` on loopback with a
//! fresh data directory. The flows are `tests/browser/portal.mjs`; the screenshots of every
//! page go to `target/portal/screenshots/`.

use std::path::Path;
use std::process::Command;

use crate::schemathesis::{Server, free_port};
use crate::{cargo, run};

/// Where Debian puts Chromium.
const CHROMIUM: &str = "/usr/bin/chromium";
/// The token the server under test accepts.
const TOKEN: &str = "portal-token-0123456789abcdef";

/// Runs the step.
pub fn run_step(root: &Path) -> Result<(), String> {
    ensure_chromium()?;
    let browser_tests = root.join("tests").join("browser");
    run(
        Command::new("npm").current_dir(&browser_tests).args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]),
        "install the browser driver (npm ci in tests/browser)",
    )?;
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
    let work = root.join("target").join("portal");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let port = free_port()?;
    let config = work.join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            "bind = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\ntokens = [\"{TOKEN}\"]\nlog_filter = \"warn\"\n\
             [delivery]\n\
             # The flows' receiver listens on loopback; a failed attempt is retried only\n\
             # when the page resends it.\n\
             allow_subnets = [\"127.0.0.0/8\"]\nretry_schedule_secs = [3600]\n",
            work.join("data").display()
        ),
    )
    .map_err(|e| format!("{}: {e}", config.display()))?;
    let server = Server::start(root, &config, port)?;
    let screenshots = work.join("screenshots");
    let result = run(
        Command::new("node")
            .current_dir(&browser_tests)
            .arg("portal.mjs")
            .env("PORTAL_URL", format!("http://127.0.0.1:{port}"))
            .env("PORTAL_TOKEN", TOKEN)
            .env("SCREENSHOTS", &screenshots)
            .env("CHROMIUM", CHROMIUM),
        "drive the portal in Chromium (tests/browser/portal.mjs)",
    );
    drop(server);
    result
}

/// Installs Debian's `chromium` package when `/usr/bin/chromium` is missing.
fn ensure_chromium() -> Result<(), String> {
    if Path::new(CHROMIUM).exists() {
        return Ok(());
    }
    println!("{CHROMIUM} is missing; installing Debian's chromium (takes a minute once)");
    run(
        Command::new("apt-get").args(["update", "-qq"]),
        "update the package lists (apt-get update)",
    )?;
    run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "chromium"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
        "install chromium (apt-get install chromium; needs root)",
    )
}

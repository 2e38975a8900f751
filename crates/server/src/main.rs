//! The `switchyard` command: `serve` runs the server; `migrate` brings a data directory to
//! this version's layout; `rotate-key` seals the stored secrets under a new main key, through
//! the running server or alone; `sign` and `verify` are Standard
//! Webhooks signatures from the command line; `events encode|decode` moves CloudEvents
//! between HTTP modes and spec versions.

// A command-line program: its results go to standard output.
#![allow(clippy::print_stdout)]

mod pid_file;

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use switchyard_cloudevents::SpecVersion;
use switchyard_cloudevents::http::Mode;
use switchyard_server::{
    Config, DatabaseConfig, LogFormat, MetadataConfig, Server, ServerError, Token, logging, tools,
};

/// Switchyard: Svix-compatible webhooks and Relay-compatible step metadata in one process.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve every API (default 127.0.0.1:8071, data in ./.switchyard).
    Serve(ServeArgs),
    /// Bring the data directory to this version's layout, then exit (`serve` does this
    /// first too).
    Migrate(MigrateArgs),
    /// Seal the webhooks' secrets under a new main key: a running server (found by
    /// `<data-dir>/switchyard.pid`) takes it on SIGHUP and keeps serving; else this does it.
    RotateKey(RotateKeyArgs),
    /// Print the `webhook-signature` header value for a body.
    Sign(SignArgs),
    /// Verify a body's Standard Webhooks signature; exits 1 when it does not verify.
    Verify(VerifyArgs),
    /// CloudEvents between HTTP modes and spec versions.
    #[command(subcommand)]
    Events(EventsCommand),
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Read events in the JSON format (an object, or an array), write an HTTP message
    /// (header lines, a blank line, the body).
    Encode {
        /// The content mode.
        #[arg(long, value_enum, default_value = "binary")]
        mode: ModeArg,
        /// Convert to this spec version first.
        #[arg(long, value_enum)]
        to: Option<VersionArg>,
        /// The input file; `-` or nothing reads standard input.
        file: Option<PathBuf>,
    },
    /// Read an HTTP message in any mode (header lines, a blank line, the body), write its
    /// events in the JSON format.
    Decode {
        /// Convert to this spec version.
        #[arg(long, value_enum)]
        to: Option<VersionArg>,
        /// The input file; `-` or nothing reads standard input.
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Binary,
    Structured,
    Batch,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum VersionArg {
    #[value(name = "1.0")]
    V1_0,
    #[value(name = "0.3")]
    V0_3,
}

impl From<ModeArg> for Mode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Binary => Mode::Binary,
            ModeArg::Structured => Mode::Structured,
            ModeArg::Batch => Mode::Batch,
        }
    }
}

impl From<VersionArg> for SpecVersion {
    fn from(version: VersionArg) -> Self {
        match version {
            VersionArg::V1_0 => SpecVersion::V1_0,
            VersionArg::V0_3 => SpecVersion::V0_3,
        }
    }
}

#[derive(Debug, Clone, Args)]
struct ServeArgs {
    /// A TOML config file; flags override it.
    #[arg(long, short, env = "SWITCHYARD_CONFIG")]
    config: Option<PathBuf>,
    /// The address to listen on.
    #[arg(long, env = "SWITCHYARD_BIND")]
    bind: Option<SocketAddr>,
    /// Where the embedded store lives.
    #[arg(long, env = "SWITCHYARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// An accepted bearer token (repeatable). Without any, one is generated into
    /// `<data-dir>/token`.
    #[arg(long = "token", env = "SWITCHYARD_TOKEN", hide_env_values = true)]
    tokens: Vec<String>,
    /// The log format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// The largest request body, in bytes.
    #[arg(long)]
    body_limit: Option<usize>,
    /// A subnet deliveries may reach despite the SSRF guard (repeatable), e.g. 127.0.0.0/8.
    #[arg(long = "allow-subnet")]
    allow_subnets: Vec<ipnet::IpNet>,
    /// Serve the metadata API for this step spec file (JSON or YAML).
    #[arg(long)]
    metadata_spec: Option<PathBuf>,
    /// The metadata step's name (default `step`).
    #[arg(long)]
    metadata_step: Option<String>,
    /// Keep the webhooks in this PostgreSQL database (`postgres://user@host:5432/db`)
    /// instead of the data directory's SQLite file; every server on it serves the same
    /// applications and shares the deliveries.
    #[arg(long, env = "SWITCHYARD_DATABASE_URL", hide_env_values = true)]
    database: Option<String>,
}

/// Where a tool finds the data: the config file and the data directory.
#[derive(Debug, Args)]
struct DataArgs {
    /// A TOML config file (its `data_dir`, `database` and `[webhooks]` keys).
    #[arg(long, short, env = "SWITCHYARD_CONFIG")]
    config: Option<PathBuf>,
    /// The data directory; overrides the config's.
    #[arg(long, env = "SWITCHYARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl DataArgs {
    /// The config (read, or the default) with the data directory the flags name, logging
    /// started as it says.
    fn load(self) -> Result<Config, String> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
            None => Config::default(),
        };
        if let Some(dir) = self.data_dir {
            config.data_dir = dir;
        }
        logging::init(config.log_format, &config.log_filter).map_err(|e| e.to_string())?;
        Ok(config)
    }
}

#[derive(Debug, Args)]
struct MigrateArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Migrate this PostgreSQL database's schema instead; overrides the config's.
    #[arg(long, env = "SWITCHYARD_DATABASE_URL", hide_env_values = true)]
    database: Option<String>,
}

#[derive(Debug, Args)]
struct RotateKeyArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The PostgreSQL database, when no server is running; overrides the config's.
    #[arg(long, env = "SWITCHYARD_DATABASE_URL", hide_env_values = true)]
    database: Option<String>,
    /// How long to wait for a running server to finish, in seconds.
    #[arg(long, default_value_t = 300)]
    wait: u64,
}

#[derive(Debug, Args)]
struct SignArgs {
    /// A `whsec_…` secret or `whsk_…` Ed25519 key (repeatable; one signature each).
    #[arg(
        long = "secret",
        required = true,
        env = "SWITCHYARD_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    secrets: Vec<String>,
    /// The message id (`webhook-id`).
    #[arg(long)]
    id: String,
    /// Unix seconds (`webhook-timestamp`); default now.
    #[arg(long)]
    timestamp: Option<i64>,
    /// Print all three headers, not only the signature.
    #[arg(long)]
    headers: bool,
    /// The body file; `-` or nothing reads standard input.
    file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// A `whsec_…` secret or `whpk_…` public key (repeatable; any may match).
    #[arg(
        long = "secret",
        required = true,
        env = "SWITCHYARD_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    secrets: Vec<String>,
    /// The `webhook-id` value.
    #[arg(long)]
    id: String,
    /// The `webhook-timestamp` value.
    #[arg(long)]
    timestamp: String,
    /// The `webhook-signature` value.
    #[arg(long)]
    signature: String,
    /// Check the timestamp against this Unix time instead of now.
    #[arg(long)]
    now: Option<i64>,
    /// The body file; `-` or nothing reads standard input.
    file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Migrate(args) => migrate(args),
        Command::RotateKey(args) => rotate_key(args),
        Command::Sign(args) => sign(args),
        Command::Verify(args) => verify(args),
        Command::Events(command) => events(command),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("switchyard: {message}");
            ExitCode::FAILURE
        }
    }
}

fn read_body(file: Option<&PathBuf>) -> Result<Vec<u8>, String> {
    match file.filter(|p| p.as_os_str() != "-") {
        Some(path) => {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        }
        None => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            Ok(body)
        }
    }
}

fn sign(args: SignArgs) -> Result<ExitCode, String> {
    let body = read_body(args.file.as_ref())?;
    let timestamp = args.timestamp.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    });
    let signature =
        tools::sign(&args.secrets, &args.id, timestamp, &body).map_err(|e| e.to_string())?;
    if args.headers {
        println!("webhook-id: {}", args.id);
        println!("webhook-timestamp: {timestamp}");
        println!("webhook-signature: {signature}");
    } else {
        println!("{signature}");
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(args: VerifyArgs) -> Result<ExitCode, String> {
    let body = read_body(args.file.as_ref())?;
    match tools::verify(
        &args.secrets,
        &args.id,
        &args.timestamp,
        &args.signature,
        &body,
        args.now,
    ) {
        Ok(verified) => {
            println!("verified: {} at {}", verified.id, verified.timestamp);
            Ok(ExitCode::SUCCESS)
        }
        Err(tools::ToolError::Verify(error)) => {
            eprintln!("switchyard: not verified: {error}");
            Ok(ExitCode::FAILURE)
        }
        Err(other) => Err(other.to_string()),
    }
}

fn events(command: EventsCommand) -> Result<ExitCode, String> {
    let output = match command {
        EventsCommand::Encode { mode, to, file } => {
            let input = read_body(file.as_ref())?;
            tools::encode_events(&input, mode.into(), to.map(Into::into))
        }
        EventsCommand::Decode { to, file } => {
            let input = read_body(file.as_ref())?;
            tools::decode_events(&input, to.map(Into::into))
        }
    }
    .map_err(|e| e.to_string())?;
    std::io::stdout()
        .write_all(&output)
        .map_err(|e| format!("cannot write standard output: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

fn config(args: ServeArgs) -> Result<Config, ServerError> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(bind) = args.bind {
        config.bind = bind;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if !args.tokens.is_empty() {
        config.tokens = args.tokens.into_iter().map(Token::new).collect();
        config.check()?;
    }
    if let Some(format) = args.log_format {
        config.log_format = format;
    }
    if let Some(limit) = args.body_limit {
        config.body_limit = limit;
        config.check()?;
    }
    for subnet in args.allow_subnets {
        config.allow_subnet(subnet);
    }
    if let Some(url) = args.database {
        let max_connections = config
            .database
            .as_ref()
            .map_or(switchyard_server::DEFAULT_DATABASE_CONNECTIONS, |d| {
                d.max_connections
            });
        let mut database = DatabaseConfig::new(url);
        database.max_connections = max_connections;
        config.database = Some(database);
    }
    // The flags override the file's spec and step; its secrets, connections and parameters
    // stay.
    if let Some(spec) = args.metadata_spec {
        match &mut config.metadata {
            Some(metadata) => metadata.spec = spec,
            None => config.metadata = Some(MetadataConfig::new(spec)),
        }
    }
    if let Some(step) = args.metadata_step {
        match &mut config.metadata {
            Some(metadata) => metadata.step = step,
            None => {
                return Err(ServerError::Config {
                    path: PathBuf::from("<flags>"),
                    message: "--metadata-step needs --metadata-spec (or [metadata] in the config)"
                        .to_owned(),
                });
            }
        }
    }
    Ok(config)
}

fn serve(args: ServeArgs) -> Result<ExitCode, String> {
    let config = config(args.clone()).map_err(|e| e.to_string())?;
    logging::init(config.log_format, &config.log_filter).map_err(|e| e.to_string())?;
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    let data_dir = config.data_dir.clone();
    runtime.block_on(async move {
        let stop = shutdown_signal();
        let hangups = hangups();
        let server = Server::start(config).await.map_err(|e| {
            tracing::error!(error = %e, "cannot start");
            e.to_string()
        })?;
        // `rotate-key` finds the server by it.
        let held = match pid_file::hold(&data_dir) {
            Ok(Some(held)) => Some(held),
            Ok(None) => {
                tracing::warn!(
                    data_dir = %data_dir.display(),
                    "another server holds this data directory's pid file; `rotate-key` signals that one"
                );
                None
            }
            Err(error) => {
                tracing::warn!(%error, "cannot write the pid file; `rotate-key` will not find this server");
                None
            }
        };
        let reloading = tokio::spawn(reload_on_hangup(hangups, args, server.key_reloader()));
        let served = server.run_until(stop).await;
        reloading.abort();
        drop(held);
        served.map_err(|e| e.to_string())?;
        Ok(ExitCode::SUCCESS)
    })
}

/// SIGHUPs, listened for from before the server starts (the default action would stop it).
#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
/// No SIGHUP elsewhere than on Unix.
#[cfg(not(unix))]
type Hangups = ();

fn hangups() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::hangup())
            .inspect_err(|error| {
                tracing::warn!(%error, "cannot listen for SIGHUP: main keys are read at start only");
            })
            .ok()
    }
}

/// On every SIGHUP, reads the config's main keys again and moves the store to them while it
/// serves (one reload at a time; a failed one is logged and changes nothing it could not).
async fn reload_on_hangup(hangups: Hangups, args: ServeArgs, keys: switchyard_server::KeyReloader) {
    #[cfg(unix)]
    {
        let Some(mut hangups) = hangups else {
            return;
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP received: reading the main keys again");
            let config = match config(args.clone()) {
                Ok(config) => config,
                Err(error) => {
                    tracing::error!(%error, "cannot read the config again; keys unchanged");
                    continue;
                }
            };
            match keys.reload(&config.webhooks).await {
                Ok(done) => tracing::info!(
                    key_id = %done.key_id,
                    resealed = done.resealed,
                    "main keys reloaded: everything is sealed under the current key"
                ),
                Err(error) => tracing::error!(%error, "main keys not reloaded"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (hangups, args, keys);
    }
}

fn rotate_key(args: RotateKeyArgs) -> Result<ExitCode, String> {
    let config = args.data.load()?;
    let data_dir = config.data_dir.clone();
    let key_id =
        switchyard_server::add_main_key(&data_dir, &config.webhooks).map_err(|e| e.to_string())?;
    let holder = pid_file::holder(&data_dir).map_err(|e| e.to_string())?;
    if let pid_file::Holder::Server(pid) = holder {
        hang_up(pid)?;
        println!("main key {key_id} added; the server (pid {pid}) is sealing everything under it");
        // The server drops the old keys from the key file once it is done.
        let key_file = data_dir.join(switchyard_server::KEY_FILE);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(args.wait);
        while std::time::Instant::now() < deadline {
            let listed = switchyard_server::main_key_ids(&data_dir).map_err(|e| e.to_string())?;
            if listed.len() == 1 {
                println!("done: the old main key left {}", key_file.display());
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        return Err(format!(
            "the server has not finished after {} s; it drops the old key from {} when it \
             has (see its log)",
            args.wait,
            key_file.display()
        ));
    }
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    let database = match args.database {
        Some(url) => Some(DatabaseConfig::new(url)),
        None => config.database,
    };
    runtime
        .block_on(switchyard_server::seal_under_main_key(
            &data_dir,
            database.as_ref(),
            &config.webhooks,
        ))
        .map_err(|e| e.to_string())?;
    println!(
        "main key {key_id}: no server running; everything is sealed under it, and the old key left the key file"
    );
    Ok(ExitCode::SUCCESS)
}

/// Sends SIGHUP to the server `pid`.
fn hang_up(pid: u32) -> Result<(), String> {
    #[cfg(unix)]
    {
        let target = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .ok_or_else(|| format!("{pid} is not a process id"))?;
        rustix::process::kill_process(target, rustix::process::Signal::HUP)
            .map_err(|e| format!("cannot signal the server (pid {pid}): {e}"))
    }
    #[cfg(not(unix))]
    {
        Err(format!(
            "cannot signal the server (pid {pid}) on this system; restart it"
        ))
    }
}

fn migrate(args: MigrateArgs) -> Result<ExitCode, String> {
    let config = args.data.load()?;
    let data_dir = config.data_dir.clone();
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    let database = match args.database {
        Some(url) => Some(DatabaseConfig::new(url)),
        None => config.database,
    };
    if let Some(database) = database {
        runtime
            .block_on(switchyard_server::migrate_database(&database))
            .map_err(|e| e.to_string())?;
        println!("the database's webhooks schema is up to date");
        return Ok(ExitCode::SUCCESS);
    }
    let upgraded = runtime
        .block_on(switchyard_server::migrate(&data_dir, &config.webhooks))
        .map_err(|e| e.to_string())?;
    if upgraded.found {
        println!(
            "{}: {} applications imported, {} were already; the old files are kept with a \
             `.imported` suffix",
            data_dir.display(),
            upgraded.applications,
            upgraded.already
        );
    } else {
        println!("{}: already in this version's layout", data_dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM (Ctrl-C elsewhere).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    // Listening starts here, before the server starts, so a signal that comes as soon as it
    // serves is handled, never the default action.
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let listening = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            match listening {
                (Ok(mut term), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = interrupt.recv() => tracing::info!("SIGINT received"),
                        _ = term.recv() => tracing::info!("SIGTERM received"),
                    }
                }
                (Err(error), _) | (_, Err(error)) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM; stopping on Ctrl-C only");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

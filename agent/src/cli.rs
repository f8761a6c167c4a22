//! Command line: `hearth-agent [serve options]`, plus maintenance subcommands.

use crate::config::{Config, Overrides};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "hearth-agent",
    version,
    about = "Hearth's on-device daemon: HTTPS API and dashboard"
)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Developer mode: all state under --data-dir, listen on loopback, no redirect listener.
    #[arg(long, global = true)]
    dev: bool,
    /// Directory for all state (store, TLS identity, setup code in --dev).
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Address to serve HTTPS on (repeatable); plain HTTP on it is redirected.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// Drop-in directories to read instead of /usr/lib/hearth/agent.d and /etc/hearth/agent.d.
    #[arg(long, value_name = "DIR")]
    config_dir: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
    /// Apps: plan a compose file without installing it.
    App {
        #[command(subcommand)]
        action: AppAction,
    },
    /// After a trial boot of an update: check the system and commit the slot, or record why
    /// not, mark the slot bad and exit non-zero (hearth-health-gate.service then reboots).
    HealthGate,
    /// Store maintenance.
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
    /// Test helpers; not for use on a device.
    #[command(hide = true)]
    Debug {
        #[command(subcommand)]
        action: DebugAction,
    },
}

#[derive(Debug, Subcommand)]
enum AppAction {
    /// Print the install plan of a compose file as JSON (exit status 1 and the reason if it
    /// cannot be planned).
    Plan {
        /// A compose file, or with --store-dir the name of an app in that store.
        file: PathBuf,
        /// A CasaOS-layout store (`Apps/<name>/docker-compose.yml`) to find FILE in.
        #[arg(long, value_name = "DIR")]
        store_dir: Option<PathBuf>,
        /// App id to use instead of the compose file's `name`.
        #[arg(long)]
        app_id: Option<String>,
        /// Device root under which app data, user data and projects are planned.
        #[arg(long, value_name = "DIR", default_value = "/var/lib/hearth")]
        device_root: PathBuf,
        /// A host TCP port to treat as taken (repeatable).
        #[arg(long, value_name = "PORT")]
        port_in_use: Vec<u16>,
        /// Refuse taken host ports instead of moving to free ones.
        #[arg(long)]
        exact_ports: bool,
    },
}

#[derive(Debug, Subcommand)]
enum StoreAction {
    /// Open the store, migrate it if needed, and decode every record.
    Check,
}

#[derive(Debug, Subcommand)]
enum DebugAction {
    /// Write user records `w<N>` from N = --from upwards through the store's normal write path,
    /// printing `ack N` after each write returns; used to prove writes survive `kill -9`.
    StoreWriter {
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[arg(long)]
        count: Option<u64>,
    },
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Under systemd the journal stamps time and host itself.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().with_ansi(false).init();
    } else {
        builder.init();
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hearth-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let overrides = Overrides {
        dev: cli.serve.dev,
        data_dir: cli.serve.data_dir,
        listen: cli.serve.listen,
        config_dirs: cli.serve.config_dir,
    };
    match cli.command {
        Some(Command::Openapi) => {
            println!("{}", serde_json::to_string_pretty(&crate::api::openapi())?);
            Ok(())
        }
        Some(Command::App {
            action:
                AppAction::Plan {
                    file,
                    store_dir,
                    app_id,
                    device_root,
                    port_in_use,
                    exact_ports,
                },
        }) => {
            let path = crate::apps::source::locate(&file, store_dir.as_deref())?;
            let src = crate::apps::source::load(&path)?;
            let device = crate::apps::plan::DeviceSettings::under(device_root);
            let ports = port_in_use
                .into_iter()
                .map(|p| (p, crate::apps::plan::Protocol::Tcp))
                .collect();
            let input = crate::apps::plan::PlanInput {
                compose: &src.text,
                app_id: app_id.as_deref(),
                device: &device,
                settings: &Default::default(),
                ports_in_use: &ports,
                names_in_use: &Default::default(),
                port_strategy: if exact_ports {
                    crate::apps::plan::PortStrategy::Exact
                } else {
                    crate::apps::plan::PortStrategy::Reassign
                },
                env_files: &src.side_files,
            };
            let (plan, _meta) = crate::apps::plan::plan(&input)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            println!("{}", serde_json::to_string_pretty(&plan)?);
            Ok(())
        }
        Some(Command::HealthGate) => {
            let config = Config::load(&overrides)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let checks = crate::update::gate::SystemChecks::new(&config);
            let outcome = runtime.block_on(crate::update::gate::run(
                &config,
                &checks,
                &crate::clock::SystemClock,
            ))?;
            match outcome {
                crate::update::gate::GateOutcome::NothingToDo(why) => {
                    println!("health gate: nothing to do ({why})");
                    Ok(())
                }
                crate::update::gate::GateOutcome::Committed(slot) => {
                    println!("health gate: slot {} committed", slot.letter());
                    Ok(())
                }
                crate::update::gate::GateOutcome::Failed(reason) => {
                    anyhow::bail!("health gate failed, the trial slot is marked bad: {reason}")
                }
            }
        }
        Some(Command::Store {
            action: StoreAction::Check,
        }) => {
            let config = Config::load(&overrides)?;
            let store = crate::store::Store::open(&config.data_dir.join("store"))?;
            let records = store.verify()?;
            println!(
                "store ok: schema version {}, {records} records",
                store.schema_version()?
            );
            Ok(())
        }
        Some(Command::Debug {
            action: DebugAction::StoreWriter { from, count },
        }) => {
            let config = Config::load(&overrides)?;
            store_writer(&config, from, count)
        }
        None => {
            let config = Config::load(&overrides)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(crate::daemon::run(config, crate::api::app))
        }
    }
}

fn store_writer(config: &Config, from: u64, count: Option<u64>) -> anyhow::Result<()> {
    use std::io::Write;
    let store = crate::store::Store::open(&config.data_dir.join("store"))?;
    let stdout = std::io::stdout();
    let end = count.map_or(u64::MAX, |c| from.saturating_add(c));
    for n in from..end {
        let user = crate::store::UserRecord {
            username: format!("w{n}"),
            password_hash: format!("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ${n:016}"),
            role: crate::store::Role::Member,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            totp: None,
            app_logs: false,
        };
        store.put_user(&user)?;
        let mut out = stdout.lock();
        writeln!(out, "ack {n}")?;
        out.flush()?;
    }
    Ok(())
}

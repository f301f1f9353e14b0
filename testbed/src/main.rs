//! `testbed`: start, inspect and stop the swh-deploy test bed (see
//! docs/testbed.md).

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use swh_deploy_testbed::relay::{self, Latency};
use swh_deploy_testbed::{default_state_dir, Options, Testbed};

fn parse_delay(s: &str) -> Result<std::time::Duration, String> {
    relay::parse_duration(s)
}

/// Real local hosts (network namespaces, overlay roots, sshd, systemd) for
/// swh-deploy's tests and demo. Run as root.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Test bed name ([a-z0-9-], unique among running test beds).
    #[arg(long, global = true, default_value = "default")]
    name: String,
    /// State directory (default /run/swh-deploy-testbed/NAME).
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a test bed and leave it running.
    Up {
        /// Number of hosts on the bridge.
        #[arg(long, default_value_t = 4)]
        hosts: usize,
        /// Boot hosts with systemd (systemd-nspawn -b).
        #[arg(long)]
        systemd: bool,
        /// Instead: N loopback hosts (127.1.x.y) served by one sshd in a
        /// private namespace; run clients with `testbed exec`.
        #[arg(long, value_name = "N", conflicts_with_all = ["systemd", "hosts"])]
        loopback: Option<usize>,
        /// Do not build and serve the local apt repository.
        #[arg(long)]
        no_apt_repo: bool,
        /// Versions the apt repository holds at start (comma-separated;
        /// default: all of 1.0-1~swh1, 1.1-1~swh1, 1.2-1~swh1).
        #[arg(long, value_delimiter = ',')]
        apt_versions: Vec<String>,
        /// Host name prefix (hosts are PREFIX1, PREFIX2, ...).
        #[arg(long, default_value = "host")]
        host_prefix: String,
        /// Connect the hosts to the shared real Puppet server `pergamon`
        /// (started when not running; see docs/testbed.md).
        #[arg(long, conflicts_with = "loopback")]
        puppet: bool,
        /// Latency mode: a relay in front of every host's sshd delays each
        /// byte by DELAY each way (round trip + 2 x DELAY; no netem here),
        /// e.g. 5ms. See docs/testbed.md.
        #[arg(long, value_name = "DELAY", value_parser = parse_delay)]
        latency: Option<std::time::Duration>,
        /// With --latency: a random extra delay in 0..=JITTER per chunk.
        #[arg(long, value_name = "JITTER", value_parser = parse_delay, requires = "latency")]
        jitter: Option<std::time::Duration>,
    },
    /// (internal) The latency mode's delaying TCP relay: relays each
    /// ADDR:PORT to ADDR:TO_PORT.
    #[command(hide = true)]
    Relay {
        /// Upstream port (sshd's).
        #[arg(long)]
        to_port: u16,
        /// One-way delay.
        #[arg(long, value_parser = parse_delay)]
        delay: std::time::Duration,
        /// Random extra delay, 0..=JITTER.
        #[arg(long, value_parser = parse_delay, default_value = "0")]
        jitter: std::time::Duration,
        /// Addresses to listen on.
        #[arg(required = true)]
        listen: Vec<std::net::SocketAddr>,
    },
    /// Make the apt repository hold exactly these versions of the swh
    /// packages (hosts see it at their next `apt-get update`).
    Publish {
        /// Debian versions, e.g. 1.0-1~swh1 1.1-1~swh1.
        #[arg(required = true)]
        versions: Vec<String>,
    },
    /// Stop everything the test bed started (safe to run twice).
    Down,
    /// Show hosts, faults and processes.
    Status,
    /// Take down test beds left by test processes that died without
    /// stopping them (never those started with `testbed up`).
    Reap,
    /// Run a command where the hosts are reachable (loopback mode: inside
    /// the test bed's network namespace).
    Exec {
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Cut HOST's link: connects hang until timeout.
    Cut {
        /// Host name.
        host: String,
    },
    /// Drop every packet to HOST (nftables): connects hang until timeout.
    Drop {
        /// Host name.
        host: String,
    },
    /// Stop HOST's sshd: connects are refused at once.
    Refuse {
        /// Host name.
        host: String,
    },
    /// Undo any fault on HOST.
    Restore {
        /// Host name.
        host: String,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("testbed: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let dir = cli
        .state_dir
        .clone()
        .unwrap_or_else(|| default_state_dir(&cli.name));
    match cli.command {
        Cmd::Up {
            hosts,
            systemd,
            loopback,
            no_apt_repo,
            apt_versions,
            host_prefix,
            puppet,
            latency,
            jitter,
        } => {
            let defaults = Options::default();
            let opts = Options {
                apt_versions: if apt_versions.is_empty() {
                    defaults.apt_versions
                } else {
                    apt_versions
                },
                name: Some(cli.name.clone()),
                hosts,
                systemd,
                loopback,
                apt_repo: !no_apt_repo,
                host_prefix,
                state_dir: cli.state_dir.clone(),
                puppet,
                latency: latency.map(|delay| Latency {
                    delay,
                    jitter: jitter.unwrap_or_default(),
                }),
                relay_program: None,
            };
            let mut tb = Testbed::up(&opts)?;
            tb.keep()?;
            print!("{}", tb.status());
            println!("ssh config: {}", tb.ssh_config_path().display());
            println!("site: {}", tb.site_path().display());
            Ok(())
        }
        Cmd::Down => {
            if !dir.join("state.toml").exists() {
                eprintln!(
                    "testbed: {} is not up (no state in {})",
                    cli.name,
                    dir.display()
                );
                return Ok(());
            }
            Testbed::attach(&dir)?.down()
        }
        Cmd::Reap => {
            for name in swh_deploy_testbed::reap_stale() {
                println!("removed stale test bed {name}");
            }
            Ok(())
        }
        Cmd::Status => {
            print!("{}", Testbed::attach(&dir)?.status());
            Ok(())
        }
        Cmd::Exec { command } => {
            let tb = Testbed::attach(&dir)?;
            let err = tb.exec_command(&command).exec();
            bail!("cannot run {:?}: {err}", command[0])
        }
        Cmd::Publish { versions } => {
            let v: Vec<&str> = versions.iter().map(|s| s.as_str()).collect();
            Testbed::attach(&dir)?.publish(&v)
        }
        Cmd::Relay {
            to_port,
            delay,
            jitter,
            listen,
        } => Ok(relay::run(&relay::RelayConfig {
            listen,
            upstream_port: to_port,
            latency: Latency { delay, jitter },
        })?),
        Cmd::Cut { host } => Testbed::attach(&dir)?.cut(&host),
        Cmd::Drop { host } => Testbed::attach(&dir)?.drop_packets(&host),
        Cmd::Refuse { host } => Testbed::attach(&dir)?.refuse(&host),
        Cmd::Restore { host } => Testbed::attach(&dir)?.restore(&host),
    }
}

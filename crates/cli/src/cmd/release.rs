//! `swh-deploy release`: the runbook's first steps, "Tag and push" (`release
//! tag`) and "Publish artifacts" (`release wait`, the gate "nothing is
//! deployed before it is published"). The logic (and the
//! journaling) is in the `swh_deploy_release` crate; this module parses
//! flags, resolves the settings and renders the result.

use crate::error::{CliError, CmdResult, Exit};
use crate::settings::{self, Env, Settings};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;
use swh_deploy_release::journaled::{self, ChannelSources};
use swh_deploy_release::publish::{self, Channel};
use swh_deploy_release::tag::{self, TagOptions, TagPlan, TagState};
use swh_deploy_release::{Module, ReleaseVersion};
use swh_deploy_site::Site;

/// Arguments of `swh-deploy release`.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    #[command(subcommand)]
    command: ReleaseCommand,
}

#[derive(Debug, Subcommand)]
enum ReleaseCommand {
    /// Tag a module release (annotated, signed when asked or configured)
    /// and push the tag, after checking the work tree, the branch and the
    /// existing tags.
    Tag(TagArgs),
    /// Wait until a module release is published on the package index
    /// and/or in the Debian repository (exit 6 at --timeout).
    Wait(WaitArgs),
}

/// Arguments of `swh-deploy release tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// The version: v1.2.0, 1.2.0, 1.2.0rc1 (CI's tag regex
    /// v\d+(\.\d+)+((a|b|rc)\d+)?).
    #[arg(value_name = "VERSION")]
    pub version: String,
    /// The module's git work tree.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub repo: PathBuf,
    /// The remote to check against and push to.
    #[arg(long, value_name = "NAME", default_value = "origin")]
    pub remote: String,
    /// Sign the tag (git tag -s); default: as git config says
    /// (tag.gpgSign, user.signingkey).
    #[arg(long, overrides_with = "no_sign")]
    pub sign: bool,
    /// Do not sign the tag, whatever git config says.
    #[arg(long, overrides_with = "sign")]
    pub no_sign: bool,
    /// The tag message (default "Release vX.Y.Z").
    #[arg(long, short = 'm', value_name = "TEXT")]
    pub message: Option<String>,
    /// Print the checks' result and the exact git commands, do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Create the tag but do not push it.
    #[arg(long)]
    pub no_push: bool,
}

/// Arguments of `swh-deploy release wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The module: swh.loader.git or swh-loader-git.
    #[arg(value_name = "MODULE")]
    pub module: String,
    /// The release version: 1.2.0 or v1.2.0.
    #[arg(value_name = "VERSION")]
    pub version: String,
    /// PyPI-style simple index to wait on (default: $SWH_DEPLOY_INDEX_URL,
    /// else the site file's [release] index_url).
    #[arg(long, value_name = "URL")]
    pub pypi: Option<String>,
    /// Debian repository to wait on (default: $SWH_DEPLOY_APT_URL, else the
    /// site file's [release] apt_url).
    #[arg(long, value_name = "URL")]
    pub apt: Option<String>,
    /// The repository's suite, e.g. bookworm-swh (reprepro layout
    /// dists/SUITE/main/binary-ARCH/); none: a flat repository (default:
    /// $SWH_DEPLOY_APT_SUITE, else the site file's [release] apt_suite).
    #[arg(long, value_name = "SUITE")]
    pub suite: Option<String>,
    /// The architecture of the binary index read.
    #[arg(long, value_name = "ARCH", default_value = "amd64")]
    pub arch: String,
    /// Give up after this long (exit 6): 30m, 90s, 500ms...
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    pub timeout: String,
    /// Time between two looks.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub interval: String,
    /// Print the outcome as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// The site file (default: $SWH_DEPLOY_SITE, ./swh-deploy.toml,
    /// /etc/swh-deploy/site.toml, if present).
    #[arg(long, value_name = "FILE")]
    pub site: Option<PathBuf>,
}

/// Runs `swh-deploy release ...`.
pub fn run(args: ReleaseArgs) -> CmdResult {
    let (name, result) = match args.command {
        ReleaseCommand::Tag(a) => ("tag", run_tag(&a)),
        ReleaseCommand::Wait(a) => ("wait", run_wait(&a)),
    };
    result.map_err(|e| e.in_command(format!("release {name}")))
}

/// `e` (a library error) as a failure.
fn failed(e: impl std::fmt::Display) -> CliError {
    CliError::failed(e.to_string())
}

fn run_tag(args: &TagArgs) -> CmdResult {
    let version = ReleaseVersion::parse(&args.version).map_err(failed)?;
    let opts = TagOptions {
        repo: args.repo.clone(),
        remote: args.remote.clone(),
        sign: if args.sign {
            Some(true)
        } else if args.no_sign {
            Some(false)
        } else {
            None
        },
        message: args.message.clone(),
        push: !args.no_push,
    };
    let plan = tag::plan(&version, &opts).map_err(failed)?;
    print_plan(&plan);
    if args.dry_run {
        println!("dry run: nothing done");
        return Ok(Exit::Success);
    }
    let journal = Settings::journal_path(None, &Env::process());
    journaled::execute_tag(&plan, journal.as_deref(), &mut |step| {
        if step.kind == tag::StepKind::Tag {
            println!(
                "tagged {} on {}{}",
                plan.tag,
                &plan.commit[..plan.commit.len().min(12)],
                if plan.sign { " (signed)" } else { "" }
            );
        }
    })
    .map_err(failed)?;
    if plan.steps.iter().any(|s| s.kind == tag::StepKind::Push) {
        println!(
            "pushed {} to {} ({})",
            plan.tag, plan.remote, plan.remote_url
        );
        let module = plan
            .module
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_else(|| "MODULE".to_string());
        println!("next: swh-deploy release wait {module} {}", plan.version);
    } else {
        println!(
            "not pushed (--no-push): push it with `git -C {} push {} refs/tags/{}` or re-run without --no-push",
            plan.repo.display(),
            plan.remote,
            plan.tag
        );
    }
    Ok(Exit::Success)
}

fn print_plan(plan: &TagPlan) {
    println!("tag: {}", plan.tag);
    if let Some(m) = &plan.module {
        println!("module: {m}");
    }
    println!(
        "repository: {} (branch {} at {}, on {})",
        plan.repo.display(),
        plan.branch,
        &plan.commit[..plan.commit.len().min(12)],
        plan.on_remote.join(", ")
    );
    println!(
        "newest release: {}",
        plan.newest.as_deref().unwrap_or("(none)")
    );
    println!("signed: {}", if plan.sign { "yes" } else { "no" });
    if plan.state == TagState::PushOnly {
        println!(
            "{} already exists locally at HEAD but not on {}: only pushing it",
            plan.tag, plan.remote
        );
    }
    println!("plan:");
    for step in &plan.steps {
        println!("  {}", plan.command_line(step));
    }
}

/// `--timeout` and `--interval` of a wait (`release wait`, `ship`), in the
/// one duration grammar; the interval must be more than 0.
pub(crate) fn wait_times(timeout: &str, interval: &str) -> Result<(Duration, Duration), CliError> {
    let duration = |flag: &str, text: &str| {
        swh_deploy_util::duration::parse(text)
            .map_err(|e| CliError::from(e).context(format!("--{flag}: ")))
    };
    let (timeout, interval) = (
        duration("timeout", timeout)?,
        duration("interval", interval)?,
    );
    if interval.is_zero() {
        return Err(CliError::failed("--interval: must be more than 0"));
    }
    Ok((timeout, interval))
}

/// The publication channels of resolved `settings` (`--pypi`, `--apt`,
/// `--suite`, else their variables, else the site file's `[release]`), at
/// least one.
pub(crate) fn channels_of(settings: &Settings, arch: &str) -> Result<Vec<Channel>, CliError> {
    let given = ChannelSources {
        pypi: settings.index_url.clone(),
        apt: settings.apt_url.clone(),
        suite: settings.apt_suite.clone(),
    };
    journaled::resolve_channels(&[given], arch).map_err(failed)
}

/// The site file given (`--site`) or found (`$SWH_DEPLOY_SITE`,
/// `./swh-deploy.toml`, `/etc/swh-deploy/site.toml`), if any (a release
/// needs none); one found but invalid is an error.
pub(crate) fn site_if_any(explicit: Option<&Path>) -> Result<Option<Site>, CliError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => match swh_deploy_site::find_site_file(None) {
            Ok(p) => p,
            Err(_) => return Ok(None),
        },
    };
    Site::load(&path).map(Some).map_err(failed)
}

/// The channels of `release wait`: each of `--pypi`, `--apt`, `--suite`,
/// else its environment variable, else the site file's `[release]`.
fn channels(args: &WaitArgs) -> Result<Vec<Channel>, CliError> {
    let site = site_if_any(args.site.as_deref())?;
    let flags = settings::Args {
        site: args.site.clone(),
        index_url: args.pypi.clone(),
        apt_url: args.apt.clone(),
        apt_suite: args.suite.clone(),
        ..settings::Args::default()
    };
    let s = Settings::resolve(&flags, &Env::process(), site.as_ref());
    channels_of(&s, &args.arch)
}

fn run_wait(args: &WaitArgs) -> CmdResult {
    let module = Module::parse(&args.module).map_err(failed)?;
    let version = ReleaseVersion::parse(&args.version).map_err(failed)?;
    let (timeout, interval) = wait_times(&args.timeout, &args.interval)?;
    let channels = channels(args)?;
    let journal = Settings::journal_path(None, &Env::process());
    // Each channel's state as it changes; between changes, on a terminal,
    // a live line (otherwise the wait repeats its line every minute itself).
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut printer = crate::events::EventPrinter::default();
    let outcome = journaled::wait_published(
        &module,
        &version,
        &channels,
        &publish::WaitPolicy::new(timeout, interval),
        journal.as_deref(),
        &mut |elapsed, cs| {
            let since = std::time::Instant::now()
                .checked_sub(elapsed)
                .unwrap_or_else(std::time::Instant::now);
            let what = format!("{module} {version} to be published");
            printer.show(
                true,
                &cs.progress_line(elapsed, &module, &version),
                tty.then_some(crate::events::Tick::Wait((what, since))),
            )
        },
    );
    drop(printer);
    let outcome = outcome.map_err(failed)?;
    if args.json {
        let mut v = serde_json::to_value(&outcome).map_err(failed)?;
        v["module"] = module.dotted().into();
        v["version"] = version.to_string().into();
        println!("{}", crate::json::to_line(&v)?);
    }
    if outcome.published {
        if !args.json {
            let found: Vec<String> = outcome
                .channels
                .iter()
                .map(|c| format!("{} ({})", c.channel.describe(), evidence(&c.status)))
                .collect();
            println!(
                "published: {module} {version} on {} after {:.1}s",
                found.join(", "),
                outcome.elapsed.as_secs_f64()
            );
        }
        Ok(Exit::Success)
    } else {
        eprintln!(
            "swh-deploy release wait: timeout after {}: {module} {version} still not published on {}",
            args.timeout,
            outcome.missing().join("; ")
        );
        Ok(Exit::Timeout)
    }
}

fn evidence(s: &publish::Status) -> String {
    match s {
        publish::Status::Published { evidence } => evidence.clone(),
        other => other.describe(),
    }
}

//! `swh-deploy release`: the runbook's first steps, "Tag and push" (`release
//! tag`) and "Publish artifacts" (`release wait`, the gate "nothing is
//! deployed before it is published"). The logic is in the
//! `swh_deploy_release` crate; this module parses flags, journals the run
//! and renders the result.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use swh_deploy_release::publish::{self, Channel, Checker, WaitOutcome};
use swh_deploy_release::tag::{self, TagOptions, TagPlan, TagState};
use swh_deploy_release::{Module, ReleaseVersion};

use super::app::load_site;
use swh_deploy_journal::Recorder;

/// Exit code of a gate not reached before `--timeout` (see `exit-codes`).
const EXIT_TIMEOUT: u8 = 6;

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
pub fn run(args: ReleaseArgs) -> ExitCode {
    let (name, result) = match args.command {
        ReleaseCommand::Tag(a) => ("tag", run_tag(&a)),
        ReleaseCommand::Wait(a) => ("wait", run_wait(&a)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("swh-deploy release {name}: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_tag(args: &TagArgs) -> Result<ExitCode, String> {
    let version = ReleaseVersion::parse(&args.version).map_err(|e| e.to_string())?;
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
    let plan = tag::plan(&version, &opts).map_err(|e| e.to_string())?;
    print_plan(&plan);
    if args.dry_run {
        println!("dry run: nothing done");
        return Ok(ExitCode::SUCCESS);
    }
    execute_tag(&plan)?;
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
    Ok(ExitCode::SUCCESS)
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

/// Runs a checked plan step by step, journaled as a `release tag` run
/// (one step per git command). Used by `release tag` and by commands
/// chaining a release (ship).
pub(crate) fn execute_tag(plan: &TagPlan) -> Result<(), String> {
    let mut rec = Recorder::start(
        "release tag",
        serde_json::json!({
            "version": plan.version.to_string(),
            "tag": plan.tag,
            "repo": plan.repo,
            "remote": plan.remote,
            "commit": plan.commit,
            "sign": plan.sign,
            "push_only": plan.state == TagState::PushOnly,
            "commands": plan.steps.iter().map(|s| plan.command_line(s)).collect::<Vec<_>>(),
        }),
    )
    .map_err(|e| e.to_string())?
    .with_kind("release");
    for step in &plan.steps {
        let target = match step.kind {
            tag::StepKind::Tag => plan.tag.clone(),
            tag::StepKind::Push => format!("{} {}", plan.remote, plan.tag),
        };
        rec.step(step.kind.as_str(), &target);
        if let Err(e) = tag::run_step(plan, step) {
            rec.finish(false);
            return Err(e.to_string());
        }
        if step.kind == tag::StepKind::Tag {
            println!(
                "tagged {} on {}{}",
                plan.tag,
                &plan.commit[..plan.commit.len().min(12)],
                if plan.sign { " (signed)" } else { "" }
            );
        }
    }
    rec.finish(true);
    Ok(())
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn duration(flag: &str, text: &str) -> Result<Duration, String> {
    swh_deploy_site::parse_duration(text).map_err(|e| format!("--{flag}: {e}"))
}

/// The channels of `release wait`: flags first, then the environment, then
/// the site file's `[release]` section.
fn channels(args: &WaitArgs) -> Result<Vec<Channel>, String> {
    resolve_channels(
        args.pypi.clone(),
        args.apt.clone(),
        args.suite.clone(),
        &args.arch,
        args.site.as_deref(),
    )
}

/// Where to wait for a release: each of the package index, Debian
/// repository and suite from the given value (a flag), else its
/// environment variable (`SWH_DEPLOY_INDEX_URL`, `SWH_DEPLOY_APT_URL`,
/// `SWH_DEPLOY_APT_SUITE`), else the site file's `[release]` section (`site`
/// or the one found). At least one channel, else an error saying how to
/// give one. Shared with commands chaining a release (ship).
pub(crate) fn resolve_channels(
    pypi: Option<String>,
    apt: Option<String>,
    suite: Option<String>,
    arch: &str,
    site: Option<&std::path::Path>,
) -> Result<Vec<Channel>, String> {
    let site = load_site(site)?.and_then(|s| s.release);
    let from_site =
        |f: fn(&swh_deploy_site::ReleaseOptions) -> Option<String>| site.as_ref().and_then(f);
    let mut out = Vec::new();
    if let Some(url) = pypi
        .or_else(|| env_nonempty("SWH_DEPLOY_INDEX_URL"))
        .or_else(|| from_site(|r| r.index_url.clone()))
    {
        out.push(Channel::pypi(&url).map_err(|e| format!("--pypi: {e}"))?);
    }
    if let Some(url) = apt
        .or_else(|| env_nonempty("SWH_DEPLOY_APT_URL"))
        .or_else(|| from_site(|r| r.apt_url.clone()))
    {
        let suite = suite
            .or_else(|| env_nonempty("SWH_DEPLOY_APT_SUITE"))
            .or_else(|| from_site(|r| r.apt_suite.clone()));
        out.push(
            Channel::apt(&url, suite.as_deref(), Some(arch)).map_err(|e| format!("--apt: {e}"))?,
        );
    }
    if out.is_empty() {
        return Err(
            "nothing to wait on: give --pypi URL and/or --apt URL (or set SWH_DEPLOY_INDEX_URL / SWH_DEPLOY_APT_URL, or [release] index_url / apt_url in the site file)"
                .to_string(),
        );
    }
    Ok(out)
}

fn run_wait(args: &WaitArgs) -> Result<ExitCode, String> {
    let module = Module::parse(&args.module).map_err(|e| e.to_string())?;
    let version = ReleaseVersion::parse(&args.version).map_err(|e| e.to_string())?;
    let timeout = duration("timeout", &args.timeout)?;
    let interval = duration("interval", &args.interval)?;
    if interval.is_zero() {
        return Err("--interval: must be more than 0".to_string());
    }
    let channels = channels(args)?;
    let outcome = wait_published(&module, &version, &channels, timeout, interval)?;
    if args.json {
        let mut v = serde_json::to_value(&outcome).map_err(|e| e.to_string())?;
        v["module"] = module.dotted().into();
        v["version"] = version.to_string().into();
        println!("{v}");
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
        Ok(ExitCode::SUCCESS)
    } else {
        let missing: Vec<String> = outcome
            .channels
            .iter()
            .filter(|c| !c.status.is_published())
            .map(|c| format!("{}: {}", c.channel.describe(), c.status.describe()))
            .collect();
        eprintln!(
            "swh-deploy release wait: timeout after {}: {module} {version} still not published on {}",
            args.timeout,
            missing.join("; ")
        );
        Ok(ExitCode::from(EXIT_TIMEOUT))
    }
}

fn evidence(s: &publish::Status) -> String {
    match s {
        publish::Status::Published { evidence } => evidence.clone(),
        other => other.describe(),
    }
}

/// Waits until `module` `version` is published on every channel or
/// `timeout` passes, printing progress (each change of a channel's status)
/// on stderr; journaled as a `release wait` run (failed on timeout).
pub(crate) fn wait_published(
    module: &Module,
    version: &ReleaseVersion,
    channels: &[Channel],
    timeout: Duration,
    interval: Duration,
) -> Result<WaitOutcome, String> {
    let mut rec = Recorder::start(
        "release wait",
        serde_json::json!({
            "module": module.dotted(),
            "version": version.to_string(),
            "channels": channels,
            "timeout_s": timeout.as_secs_f64(),
        }),
    )
    .map_err(|e| e.to_string())?
    .with_kind("release");
    let kinds: Vec<&str> = channels.iter().map(Channel::kind).collect();
    rec.step("wait published", &kinds.join(","));
    let checker = Checker::new(Duration::from_secs(20));
    let outcome = publish::wait(
        &checker,
        channels,
        module,
        version,
        &publish::WaitPolicy::new(timeout, interval),
        &mut |elapsed, cs| {
            eprintln!(
                "[{:>6.1}s] {module} {version} on {}: {}",
                elapsed.as_secs_f64(),
                cs.channel.describe(),
                cs.status.describe()
            );
        },
    );
    rec.finish(outcome.published);
    Ok(outcome)
}

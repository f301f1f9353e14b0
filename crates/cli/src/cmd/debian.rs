//! `swh-deploy debian`: the runbook's "Debian package troubleshoot" — a new
//! `debian/changelog` entry (`debian changelog`), then the DEP-14 tag that
//! `gbp buildpackage --git-tag-only --git-sign-tag` makes, pushed with
//! `git push origin --follow-tags` (`debian tag`).

use clap::{Args, Subcommand};
use std::path::PathBuf;
use swh_deploy_debian::{
    rfc2822_now, tag_and_push, ChangelogRequest, DebianVersion, PackagingRepo, TagRun, TagState,
};

use crate::error::{CmdResult, Exit};
use crate::settings::{self, Env, Settings};

/// Arguments of `swh-deploy debian`.
#[derive(Debug, Args)]
pub struct DebianArgs {
    /// The packaging repository (a git work tree with debian/changelog).
    #[arg(long, global = true, value_name = "DIR", default_value = ".")]
    repo: PathBuf,
    #[command(subcommand)]
    command: DebianCommand,
}

#[derive(Debug, Subcommand)]
enum DebianCommand {
    /// Add a new entry on top of debian/changelog: next version (~swhN ->
    /// ~swhN+1) or --version, same distribution or --distribution, the
    /// maintainer from DEBFULLNAME/DEBEMAIL, NAME/EMAIL or git config.
    Changelog {
        /// A change item (`  * TEXT`); repeatable, at least one.
        #[arg(long, short = 'm', value_name = "TEXT", required = true)]
        message: Vec<String>,
        /// The new version (must be greater than the current one, in dpkg
        /// order); default: bump ~swhN to ~swhN+1.
        #[arg(long, value_name = "V", conflicts_with = "bump")]
        version: Option<DebianVersion>,
        /// Bump ~swhN to ~swhN+1 (the default).
        #[arg(long)]
        bump: bool,
        /// The distribution (default: the current entry's).
        #[arg(long, value_name = "D")]
        distribution: Option<String>,
        /// Commit debian/changelog (and whatever is staged, e.g. the
        /// debian/control fix) as "Updated debian changelog for version V".
        #[arg(long)]
        commit: bool,
        /// Print the entry as a diff; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Tag the top changelog entry the DEP-14 way (debian/<version>, ~ -> _,
    /// : -> %) as gbp does, and push the packaging branch and the tag with
    /// --follow-tags. A re-run after a failed push pushes the existing tag.
    Tag {
        /// The remote to push to.
        #[arg(long, default_value = "origin")]
        remote: String,
        /// Sign the tag (git tag -s: gpg, or ssh with gpg.format=ssh).
        #[arg(long, conflicts_with = "no_sign")]
        sign: bool,
        /// Do not sign, even if git config tag.gpgSign says so.
        #[arg(long)]
        no_sign: bool,
        /// Create the tag but do not push.
        #[arg(long)]
        no_push: bool,
        /// Check and print what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs `swh-deploy debian ...`.
pub fn run(args: DebianArgs) -> CmdResult {
    run_inner(args).map_err(|e| e.in_command("debian"))
}

fn run_inner(args: DebianArgs) -> CmdResult {
    let repo = PackagingRepo::open(&args.repo)?;
    match args.command {
        DebianCommand::Changelog {
            message,
            version,
            bump: _,
            distribution,
            commit,
            dry_run,
        } => {
            let maintainer = repo.maintainer()?;
            let req = ChangelogRequest {
                version,
                distribution,
                messages: message,
                maintainer,
                date: rfc2822_now(),
            };
            let plan = repo.plan_changelog(&req)?;
            if dry_run {
                if commit {
                    repo.check_commit(&plan)?;
                }
                print!("{}", plan.diff());
                println!(
                    "dry run: would add {} {} ({}){}",
                    plan.entry.source,
                    plan.entry.version,
                    plan.entry.distribution,
                    if commit { " and commit it" } else { "" }
                );
                return Ok(Exit::Success);
            }
            let committed = repo.apply_changelog(&plan, commit)?;
            println!(
                "{}: {} {} -> {} ({})",
                repo.changelog_path().display(),
                plan.entry.source,
                plan.current.version,
                plan.entry.version,
                plan.entry.distribution
            );
            match committed {
                Some(c) => println!(
                    "committed {} \"{}\"",
                    &c[..c.len().min(12)],
                    plan.commit_message().lines().next().unwrap_or_default()
                ),
                None => println!(
                    "next: commit it (git commit debian/changelog), then `swh-deploy debian tag`"
                ),
            }
        }
        DebianCommand::Tag {
            remote,
            sign,
            no_sign,
            no_push,
            dry_run,
        } => {
            let plan = repo.plan_tag(&remote)?;
            let sign = match (sign, no_sign) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            let what = match plan.state {
                TagState::Create => "create",
                TagState::Push => "push (it exists here, not on the remote)",
                TagState::Done => "nothing: tagged and pushed already",
            };
            println!(
                "{} {} ({}) on {} at {}: tag {} \"{}\": {what}",
                plan.source,
                plan.version,
                plan.distribution,
                plan.branch,
                &plan.head[..plan.head.len().min(12)],
                plan.tag,
                plan.message
            );
            if plan.state == TagState::Done {
                return Ok(Exit::Success);
            }
            if plan.state == TagState::Push && no_push {
                println!("--no-push: nothing to do");
                return Ok(Exit::Success);
            }
            if dry_run {
                println!(
                    "dry run: would {}{}",
                    if plan.state == TagState::Create {
                        "create the tag"
                    } else {
                        "not create the tag"
                    },
                    if no_push {
                        ", not push".to_string()
                    } else {
                        format!(", push {} and the tag to {}", plan.branch, plan.remote)
                    }
                );
                return Ok(Exit::Success);
            }
            let settings = Settings::resolve(&settings::Args::default(), &Env::process(), None);
            let run = TagRun {
                sign,
                push: !no_push,
                journal: settings.journal.as_deref(),
            };
            let done = tag_and_push(&repo, &plan, &run, &mut |signed| {
                println!(
                    "created {} tag {}",
                    if signed { "signed" } else { "unsigned" },
                    plan.tag
                )
            })?;
            if done.pushed {
                println!("pushed {} and {} to {}", plan.branch, plan.tag, plan.remote);
            } else {
                println!(
                    "not pushed; next: git push {} --follow-tags (or run again without --no-push)",
                    plan.remote
                );
            }
        }
    }
    Ok(Exit::Success)
}

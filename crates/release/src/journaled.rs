//! The release steps as journaled runs, shared by `release tag`, `release
//! wait` and the commands chaining a release (`ship`): [`execute_tag`] runs
//! a checked [`TagPlan`] as a `release tag` run, [`wait_published`] polls
//! the channels as a `release wait` run, and [`resolve_channels`] says
//! where to wait from layered sources (flags, environment, site file).

use crate::publish::{self, Channel, ChannelStatus, Checker, WaitOutcome, WaitPolicy};
use crate::tag::{self, GitStep, StepKind, TagPlan, TagState};
use crate::{Error, Module, ReleaseVersion};
use std::path::Path;
use std::time::Duration;
use swh_deploy_journal::Recorder;

/// Runs a checked plan step by step, journaled as a `release tag` run (one
/// journal step per git command, kind `release`) in the journal `journal`
/// (`None`: the default one). `on_done` is called after each git command
/// succeeded (e.g. to print `tagged ...`).
pub fn execute_tag(
    plan: &TagPlan,
    journal: Option<&Path>,
    on_done: &mut dyn FnMut(&GitStep),
) -> Result<(), Error> {
    let mut rec = Recorder::start(
        journal,
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
    )?
    .with_kind("release");
    for step in &plan.steps {
        let target = match step.kind {
            StepKind::Tag => plan.tag.clone(),
            StepKind::Push => format!("{} {}", plan.remote, plan.tag),
        };
        rec.step(step.kind.as_str(), &target);
        if let Err(e) = tag::run_step(plan, step) {
            rec.finish(false);
            return Err(e);
        }
        on_done(step);
    }
    rec.finish(true);
    Ok(())
}

/// Waits until `module` `version` is published on every channel or
/// `policy.timeout` passes (see [`publish::wait`]; `report` gets each
/// change of a channel's status), journaled as a `release wait` run in
/// `journal` (`None`: the default one; failed on timeout). A timeout is
/// `Ok` with `published: false`.
pub fn wait_published(
    module: &Module,
    version: &ReleaseVersion,
    channels: &[Channel],
    policy: &WaitPolicy,
    journal: Option<&Path>,
    report: &mut dyn FnMut(Duration, &ChannelStatus),
) -> Result<WaitOutcome, Error> {
    let mut rec = Recorder::start(
        journal,
        "release wait",
        serde_json::json!({
            "module": module.dotted(),
            "version": version.to_string(),
            "channels": channels,
            "timeout_s": policy.timeout.as_secs_f64(),
        }),
    )?
    .with_kind("release");
    let kinds: Vec<&str> = channels.iter().map(Channel::kind).collect();
    rec.step("wait published", &kinds.join(","));
    let checker = Checker::new(Duration::from_secs(20));
    let outcome = publish::wait(&checker, channels, module, version, policy, report);
    rec.finish(outcome.published);
    Ok(outcome)
}

/// One source of channel settings (flags, environment, site file), each
/// value `None` when this source does not give it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelSources {
    /// The PyPI-style index URL (`--pypi`, `SWH_DEPLOY_INDEX_URL`,
    /// `[release] index_url`).
    pub pypi: Option<String>,
    /// The Debian repository URL (`--apt`, `SWH_DEPLOY_APT_URL`, `[release]
    /// apt_url`).
    pub apt: Option<String>,
    /// The Debian repository's suite (`--suite`, `SWH_DEPLOY_APT_SUITE`,
    /// `[release] apt_suite`).
    pub suite: Option<String>,
}

/// Where to wait for a release: each of the package index, the Debian
/// repository and its suite from the first source in `layers` that gives
/// it (flags, then environment, then site file), `arch` for the Debian
/// index. At least one channel, else [`Error::NoChannel`]; a bad URL is
/// [`Error::Flag`] naming `--pypi` or `--apt`.
pub fn resolve_channels(layers: &[ChannelSources], arch: &str) -> Result<Vec<Channel>, Error> {
    let first =
        |f: fn(&ChannelSources) -> &Option<String>| layers.iter().find_map(|l| f(l).clone());
    let flag = |flag: &'static str| move |e: Error| Error::Flag(flag, Box::new(e));
    let mut out = Vec::new();
    if let Some(url) = first(|l| &l.pypi) {
        out.push(Channel::pypi(&url).map_err(flag("--pypi"))?);
    }
    if let Some(url) = first(|l| &l.apt) {
        let suite = first(|l| &l.suite);
        out.push(Channel::apt(&url, suite.as_deref(), Some(arch)).map_err(flag("--apt"))?);
    }
    if out.is_empty() {
        return Err(Error::NoChannel);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(pypi: Option<&str>, apt: Option<&str>, suite: Option<&str>) -> ChannelSources {
        ChannelSources {
            pypi: pypi.map(String::from),
            apt: apt.map(String::from),
            suite: suite.map(String::from),
        }
    }

    #[test]
    fn each_channel_comes_from_the_first_source_giving_it() {
        let flags = src(Some("http://flag/simple/"), None, None);
        let env = src(Some("http://env/simple/"), Some("http://env/apt"), None);
        let site = src(None, Some("http://site/apt"), Some("bookworm-swh"));
        let got = resolve_channels(&[flags, env, site], "arm64").unwrap();
        assert_eq!(
            got,
            vec![
                Channel::Pypi {
                    index: "http://flag/simple/".into()
                },
                Channel::Apt {
                    url: "http://env/apt".into(),
                    suite: Some("bookworm-swh".into()),
                    arch: "arm64".into()
                }
            ]
        );
    }

    #[test]
    fn no_channel_at_all_is_an_error() {
        let e = resolve_channels(
            &[src(None, None, Some("bookworm")), src(None, None, None)],
            "amd64",
        )
        .unwrap_err();
        assert!(matches!(e, Error::NoChannel), "{e}");
        assert!(e
            .to_string()
            .starts_with("nothing to wait on: give --pypi URL"));
    }

    #[test]
    fn a_bad_url_names_its_flag() {
        let e = resolve_channels(&[src(None, Some("ftp://x"), None)], "amd64").unwrap_err();
        assert!(
            e.to_string().starts_with("--apt: invalid URL \"ftp://x\""),
            "{e}"
        );
    }
}

//! The `debian tag` run as one journaled library call: [`tag_and_push`]
//! creates the DEP-14 tag of a checked [`TagPlan`] (when it does not exist
//! yet) and pushes it with the packaging branch, one journal step per git
//! action (kind `git`).

use crate::repo::{PackagingRepo, TagPlan, TagState};
use crate::Error;
use std::path::Path;
use swh_deploy_journal::Recorder;

/// How to run a tag plan.
#[derive(Debug, Clone, Copy, Default)]
pub struct TagRun<'a> {
    /// Sign the tag (`Some(true)`), do not (`Some(false)`), or as git's
    /// `tag.gpgSign` says (`None`).
    pub sign: Option<bool>,
    /// Push the branch and the tag after creating it.
    pub push: bool,
    /// The journal file (`None`: the default journal).
    pub journal: Option<&'a Path>,
}

/// What [`tag_and_push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagDone {
    /// `Some(signed)` when the tag was created by this run.
    pub created: Option<bool>,
    /// Whether the branch and the tag were pushed.
    pub pushed: bool,
}

/// Runs `plan` (state [`TagState::Create`] or [`TagState::Push`]) as a
/// journaled `debian tag` run: `tag TAG HEAD` when the tag is to be
/// created, then `push BRANCH TAG --follow-tags` unless `run.push` is
/// false. `on_created(signed)` is called once the tag exists. A failed push
/// is [`Error::Unpushed`]: the tag exists here and a re-run pushes it.
pub fn tag_and_push(
    repo: &PackagingRepo,
    plan: &TagPlan,
    run: &TagRun<'_>,
    on_created: &mut dyn FnMut(bool),
) -> Result<TagDone, Error> {
    let mut rec = Recorder::start(
        run.journal,
        "debian tag",
        serde_json::json!({
            "repo": repo.dir(),
            "source": plan.source,
            "version": plan.version,
            "tag": plan.tag,
            "remote": plan.remote,
            "push": run.push,
        }),
    )?
    .with_kind("git");
    let mut done = TagDone {
        created: None,
        pushed: false,
    };
    if plan.state == TagState::Create {
        rec.step(&format!("tag {} {}", plan.tag, plan.head), &plan.tag);
        match repo.create_tag(plan, run.sign) {
            Ok(signed) => {
                done.created = Some(signed);
                on_created(signed);
            }
            Err(e) => {
                rec.finish(false);
                return Err(e);
            }
        }
    }
    if !run.push {
        rec.finish(true);
        return Ok(done);
    }
    rec.step(
        &format!("push {} {} --follow-tags", plan.branch, plan.tag),
        &plan.remote,
    );
    let result = repo.push_tag(plan);
    rec.finish(result.is_ok());
    result.map_err(|e| Error::Unpushed(Box::new(e)))?;
    done.pushed = true;
    Ok(done)
}

//! The git runner: swh-deploy-util's [`Git`] (the system `git`, arguments
//! as a vector, never through a shell), re-exported for this crate and its
//! users; its errors become [`crate::Error::Command`] with the same text.

pub use swh_deploy_util::git::{parse_ls_remote, Git, GitError, RemoteRef};

impl From<GitError> for crate::Error {
    fn from(e: GitError) -> Self {
        crate::Error::Command(e.to_string())
    }
}

//! The binary's one error type.
//!
//! A command returns [`CmdResult`]: `Ok(exit)` when it ran to an outcome it
//! reported itself (success, or e.g. [`Exit::Budget`] after printing the
//! summary), `Err(CliError)` when it stopped on an error. Library errors
//! convert into [`CliError`] by saying which [`Exit`] they mean (their
//! `fn exit(&self) -> Exit`); the message is the library error's `Display`,
//! unchanged. [`CliError::report`] prints it the way commands always have.

use std::fmt;
pub use swh_deploy_util::Exit;

/// What a command returns: the exit it ended with, or the error it
/// stopped on.
pub type CmdResult = Result<Exit, CliError>;

/// An error that ends a command: the exit code and the message for the
/// user, and the subcommand it is reported under, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    exit: Exit,
    message: String,
    command: Option<String>,
}

impl CliError {
    /// An error ending with `exit`.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        CliError {
            exit,
            message: message.into(),
            command: None,
        }
    }

    /// Bad input or a failed step ([`Exit::Failed`]).
    pub fn failed(message: impl Into<String>) -> Self {
        CliError::new(Exit::Failed, message)
    }

    /// Reports the error under subcommand `command` (`"cluster"`, `"release
    /// wait"`): `swh-deploy cluster: error: MESSAGE` instead of
    /// `swh-deploy: MESSAGE`.
    pub fn in_command(mut self, command: impl Into<String>) -> Self {
        self.command = Some(command.into());
        self
    }

    /// The same error with another message prefix (`"--timeout: "`).
    pub fn context(mut self, prefix: impl fmt::Display) -> Self {
        self.message = format!("{prefix}{}", self.message);
        self
    }

    /// The exit code this error ends the process with.
    pub fn exit(&self) -> Exit {
        self.exit
    }

    /// The message for the user.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The line printed on stderr: `swh-deploy COMMAND: error: MESSAGE`
    /// under a subcommand (the elastic path's commands), else
    /// `swh-deploy: MESSAGE` (the static path's).
    pub fn line(&self) -> String {
        match &self.command {
            Some(c) => format!("swh-deploy {c}: error: {}", self.message()),
            None => format!("swh-deploy: {}", self.message()),
        }
    }

    /// Prints [`CliError::line`] on stderr and returns the exit code.
    pub fn report(&self) -> Exit {
        eprintln!("{}", self.line());
        self.exit()
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// `From` for library errors that say which [`Exit`] they mean
/// (`fn exit(&self) -> Exit`): the message is their `Display`.
macro_rules! from_library_errors {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for CliError {
            fn from(e: $t) -> Self {
                CliError::new(e.exit(), e.to_string())
            }
        }
    )*};
}

from_library_errors!(
    swh_deploy_util::WriteError,
    swh_deploy_util::duration::DurationError,
    swh_deploy_util::git::GitError,
    swh_deploy_site::SiteError,
    swh_deploy_journal::JournalError,
    swh_deploy_upgrade::SelectError,
    swh_deploy_upgrade::PlanRequestError,
    swh_deploy_upgrade::execute::ExecError,
    swh_deploy_debian::Error,
    swh_deploy_charts::Error,
    swh_deploy_charts::bump_run::BumpError,
    swh_deploy_charts::promotion::PromoteError,
    swh_deploy_charts::env_rollback::RollbackError,
    swh_deploy_charts::long_migrate::LongError,
    swh_deploy_cluster::Error,
    swh_deploy_cluster::node_labels::LabelsError,
    swh_deploy_cluster::migrate::MigrateError,
);

/// What a subcommand's `run` returns, while commands move from
/// `ExitCode` to [`CmdResult`]: `dispatch` takes either.
pub trait Outcome {
    /// The process exit code (an error is reported on stderr first).
    fn into_exit_code(self) -> std::process::ExitCode;
}

impl Outcome for std::process::ExitCode {
    fn into_exit_code(self) -> std::process::ExitCode {
        self
    }
}

impl Outcome for CmdResult {
    fn into_exit_code(self) -> std::process::ExitCode {
        match self {
            Ok(exit) => exit.into(),
            Err(e) => e.report().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_the_two_styles_of_the_commands() {
        let e = CliError::failed("bad.toml:1:2: oops");
        assert_eq!(e.line(), "swh-deploy: bad.toml:1:2: oops");
        assert_eq!(e.exit(), Exit::Failed);
        let e = CliError::new(Exit::Timeout, "not live").in_command("cluster");
        assert_eq!(e.line(), "swh-deploy cluster: error: not live");
        assert_eq!(e.exit(), Exit::Timeout);
    }

    #[test]
    fn library_errors_keep_their_message_and_exit() {
        let d = swh_deploy_util::duration::parse("2d").unwrap_err();
        let e = CliError::from(d.clone()).context("--timeout: ");
        assert_eq!(e.message(), format!("--timeout: {d}"));
        assert_eq!(e.exit(), Exit::Failed);
        let e = CliError::new(Exit::Usage, "unknown flag");
        assert_eq!(e.exit(), Exit::Usage);
    }

    #[test]
    fn outcomes_become_exit_codes() {
        use std::process::ExitCode;
        assert_eq!(Ok(Exit::Budget).into_exit_code(), ExitCode::from(3));
        assert_eq!(
            Err::<Exit, _>(CliError::new(Exit::Pending, "pending")).into_exit_code(),
            ExitCode::from(5)
        );
        assert_eq!(ExitCode::from(4).into_exit_code(), ExitCode::from(4));
    }
}

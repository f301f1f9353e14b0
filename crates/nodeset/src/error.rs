//! Errors of node-set parsing and group resolution, shaped like
//! ClusterShell's so that `swh-deploy nodeset` prints the same messages.

use std::fmt;

/// The class of a [`ParseError`]; it decides the prefix ClusterShell's
/// `nodeset` prints before the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad node-set syntax (`Parse error: ...`).
    Parse,
    /// A group source could not answer (`External error: ...`).
    External,
    /// `@source:group` names a source that does not exist
    /// (`Unknown group source: "source"`).
    UnknownSource,
    /// The group source has no upcall for the query
    /// (`No list upcall defined for group source "source"`).
    NoUpcall,
    /// A group name holds a character that node sets reserve
    /// (`Illegal group character: "@"`).
    IllegalChar,
    /// The group configuration is wrong (`Group resolver error: ...`).
    Config,
    /// The group configuration file is not valid INI (configparser's own
    /// message, no prefix).
    ConfigSyntax,
    /// A group source query failed outside parsing (`Group error: ...`).
    Group,
    /// Any other bad value (`ERROR: ...` without program prefix).
    Value,
}

/// A node-set error: what is wrong, the faulty part of the input and, when
/// it can be found, the byte offset of that part in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The class of error.
    pub kind: ErrorKind,
    /// The message as ClusterShell words it, without the class prefix
    /// (`bad range: "invalid values in range : "5-3""`).
    pub message: String,
    /// The faulty part of the input, when known.
    pub part: Option<String>,
    /// Byte offset of `part` in the parsed input, when known.
    pub position: Option<usize>,
}

impl ParseError {
    /// A syntax error about `part` (ClusterShell's `NodeSetParseError`).
    pub(crate) fn parse(part: Option<&str>, msg: &str) -> ParseError {
        let message = match part {
            Some(p) if !p.is_empty() => format!("{msg}: \"{p}\""),
            _ => msg.to_string(),
        };
        ParseError {
            kind: ErrorKind::Parse,
            message,
            part: part.filter(|p| !p.is_empty()).map(str::to_string),
            position: None,
        }
    }

    /// An error of the given kind with a ready message (no part, no
    /// position).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ParseError {
        Self::other(kind, message)
    }

    /// An error of another kind with a ready message.
    pub(crate) fn other(kind: ErrorKind, message: impl Into<String>) -> ParseError {
        ParseError {
            kind,
            message: message.into(),
            part: None,
            position: None,
        }
    }

    /// Sets `position` to where `part` (with ClusterShell's `%` escaping
    /// undone) first occurs in `input`, if it does.
    pub(crate) fn locate(mut self, input: &str) -> ParseError {
        if self.position.is_none() {
            if let Some(part) = &self.part {
                let unescaped = part.replace("%%", "%");
                self.position = input.find(&unescaped).or_else(|| input.find(part.as_str()));
            }
        }
        self
    }

    /// The line ClusterShell's `nodeset` prints on standard error, with
    /// `prog` as program name.
    pub fn cli_line(&self, prog: &str) -> String {
        match self.kind {
            ErrorKind::Value => format!("ERROR: {}", self.message),
            _ => format!("{prog}: {self}"),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::Parse => write!(f, "Parse error: {}", self.message),
            ErrorKind::External => write!(f, "External error: {}", self.message),
            ErrorKind::UnknownSource => write!(f, "Unknown group source: \"{}\"", self.message),
            ErrorKind::NoUpcall => write!(f, "{}", self.message),
            ErrorKind::IllegalChar => write!(f, "Illegal group character: \"{}\"", self.message),
            ErrorKind::Config => write!(f, "Group resolver error: {}", self.message),
            ErrorKind::ConfigSyntax => write!(f, "{}", self.message),
            ErrorKind::Group => write!(f, "Group error: {}", self.message),
            ErrorKind::Value => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for ParseError {}

/// An error of a group source (see [`crate::GroupResolver`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// No such group source (`None` stands for the default source when there
    /// is none).
    #[error("Unknown group source: \"{0}\"")]
    UnknownSource(String),
    /// The source cannot answer this kind of query (no such upcall).
    #[error("No {upcall} upcall defined for group source \"{source_name}\"")]
    NoUpcall {
        /// `map`, `all`, `list` or `reverse`.
        upcall: String,
        /// The group source.
        source_name: String,
    },
    /// The upcall command failed (non-zero exit); holds the command line.
    #[error("{command}")]
    QueryFailed {
        /// The command line that failed.
        command: String,
        /// The group source.
        source_name: String,
    },
    /// A group name holds a reserved character.
    #[error("Illegal group character: \"{0}\"")]
    IllegalChar(String),
    /// The group configuration is invalid.
    #[error("Group resolver error: {0}")]
    Config(String),
    /// The group configuration file is not valid INI.
    #[error("{0}")]
    ConfigSyntax(String),
}

impl GroupError {
    /// The equivalent [`ParseError`] when the error escapes to the caller.
    pub fn into_parse_error(self) -> ParseError {
        match self {
            GroupError::UnknownSource(s) => ParseError::other(ErrorKind::UnknownSource, s),
            e @ GroupError::NoUpcall { .. } => {
                ParseError::other(ErrorKind::NoUpcall, e.to_string())
            }
            GroupError::QueryFailed { command, .. } => ParseError::other(ErrorKind::Group, command),
            GroupError::IllegalChar(c) => ParseError::other(ErrorKind::IllegalChar, c),
            GroupError::Config(m) => ParseError::other(ErrorKind::Config, m),
            GroupError::ConfigSyntax(m) => ParseError::other(ErrorKind::ConfigSyntax, m),
        }
    }
}

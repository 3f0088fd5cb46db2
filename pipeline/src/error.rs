//! Errors that name the file and, for parse errors, the line and column.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum Error {
    /// Bad input: a file that cannot be read or parsed. Exit code 2.
    Input { file: PathBuf, message: String },
    /// Bad usage or configuration. Exit code 2.
    Usage(String),
    /// Writing an output failed. Exit code 2.
    Output { file: PathBuf, message: String },
}

impl Error {
    pub fn input(file: &Path, message: impl Into<String>) -> Self {
        Error::Input {
            file: file.to_path_buf(),
            message: message.into(),
        }
    }

    /// A JSON error at its line and column.
    pub fn json(file: &Path, err: &serde_json::Error) -> Self {
        let what = match err.classify() {
            serde_json::error::Category::Io => "cannot read",
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Data => "unexpected content",
            serde_json::error::Category::Eof => "truncated JSON",
        };
        let detail = err.to_string();
        let detail = detail
            .split(" at line ")
            .next()
            .unwrap_or(&detail)
            .chars()
            .take(300)
            .collect::<String>();
        Error::input(
            file,
            format!(
                "line {}, column {}: {what}: {detail}",
                err.line(),
                err.column()
            ),
        )
    }

    pub fn exit_code(&self) -> u8 {
        2
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Input { file, message } => write!(f, "{}: {message}", file.display()),
            Error::Usage(message) => f.write_str(message),
            Error::Output { file, message } => {
                write!(f, "cannot write {}: {message}", file.display())
            }
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

//! How `tokend admin` answers: tables or JSON on stdout, and failures as one line on stderr with
//! the OAuth 2.0 error code and the field when the server named them, and a distinct exit code.

use std::fmt;

use tonic::{Code, Status};

/// `--output`
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// Exit codes, as `sysexits.h` names them.
pub const EXIT_USAGE: i32 = 64;
pub const EXIT_NOT_FOUND: i32 = 69;
pub const EXIT_UNAVAILABLE: i32 = 75;
pub const EXIT_AUTH: i32 = 77;

/// A failed `tokend admin` command: one line for a person, and its exit code.
#[derive(Debug)]
pub struct AdminError {
    code: i32,
    message: String,
}

impl AdminError {
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    pub fn auth(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_AUTH,
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_UNAVAILABLE,
            message: message.into(),
        }
    }

    pub fn other(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }

    /// A call `what` the server refused: the exit code by its status, the message with the
    /// OAuth 2.0 error code when tokend sent one (`oauth2-error` metadata).
    pub fn status(what: &str, status: &Status) -> Self {
        let code = match status.code() {
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => EXIT_USAGE,
            Code::Unauthenticated | Code::PermissionDenied => EXIT_AUTH,
            Code::NotFound => EXIT_NOT_FOUND,
            Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => {
                EXIT_UNAVAILABLE
            }
            _ => 1,
        };
        let oauth2 = status
            .metadata()
            .get("oauth2-error")
            .and_then(|v| v.to_str().ok())
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        Self {
            code,
            message: format!("{what}: {:?}{oauth2}: {}", status.code(), status.message()),
        }
    }

    /// The same failure, its message rewritten.
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
        Self {
            code: self.code,
            message: f(self.message),
        }
    }

    pub fn exit_code(&self) -> i32 {
        self.code
    }
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AdminError {}

/// Rows as an aligned text table under `headers`, each cell on one line.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let clean = |cell: &str| cell.replace(['\n', '\t'], " ");
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(clean(cell).chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(headers.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        out.push_str(&line(row.iter().map(|c| clean(c)).collect()));
    }
    out
}

/// `value` as pretty JSON with a final newline.
pub fn json(value: &serde_json::Value) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(value).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_keep_each_row_on_one_line() {
        let text = table(
            &["id", "name"],
            &[
                vec!["a".into(), "two\nlines".into()],
                vec!["bbb".into(), "x".into()],
            ],
        );
        assert_eq!(text, "ID   NAME\na    two lines\nbbb  x\n");
    }

    #[test]
    fn statuses_map_to_exit_codes() {
        let code = |c: Code| AdminError::status("x", &Status::new(c, "m")).exit_code();
        assert_eq!(code(Code::InvalidArgument), EXIT_USAGE);
        assert_eq!(code(Code::Unauthenticated), EXIT_AUTH);
        assert_eq!(code(Code::PermissionDenied), EXIT_AUTH);
        assert_eq!(code(Code::NotFound), EXIT_NOT_FOUND);
        assert_eq!(code(Code::Unavailable), EXIT_UNAVAILABLE);
        assert_eq!(code(Code::Internal), 1);
    }
}

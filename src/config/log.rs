//! `[log]`: how log lines are written.

use serde::Deserialize;

use super::ConfigError;

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `human` or `json`.
    pub format: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: "human".into(),
        }
    }
}

/// The shape of log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For a terminal: one readable line per event, coloured when stderr is a terminal.
    Human,
    /// One JSON object per line, for a log collector.
    Json,
}

impl LogSettings {
    pub(super) fn resolve(&self) -> Result<LogFormat, ConfigError> {
        match self.format.as_str() {
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            other => Err(ConfigError(format!(
                "log.format must be \"human\" or \"json\", not {other:?}"
            ))),
        }
    }
}

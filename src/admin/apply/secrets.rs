//! Where the secrets of clients `apply` creates go: never into the plan, but one file each
//! (mode 0600) under `--secrets-dir`, or Kubernetes Secret manifests (`--secrets-format k8s`)
//! into that folder or onto stdout for `kubectl apply -f -`.

use std::path::{Path, PathBuf};

use super::super::output::AdminError;

/// `--secrets-format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SecretsFormat {
    /// The secret alone, in `<tenant>.<name>.secret`.
    Files,
    /// A `v1/Secret` with `client_id`, `client_secret` and `tenant`, in `<tenant>.<name>.yaml`
    /// or on stdout.
    K8s,
}

/// Where new secrets go.
#[derive(Debug, Clone)]
pub struct SecretsOut {
    pub format: SecretsFormat,
    pub dir: Option<PathBuf>,
    pub namespace: Option<String>,
}

/// A file name made of `tenant` and `name`: letters, digits, `.`, `-` and `_` kept, anything
/// else `_`.
fn file_stem(tenant: &str, name: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("{}.{}", clean(tenant), clean(name))
}

/// A Kubernetes object name (RFC 1123 label, at most 63 characters) for the client's Secret.
pub fn secret_name(tenant: &str, name: &str) -> String {
    let mut out = String::from("tokend-");
    let mut dash = true;
    for c in format!("{tenant}-{name}").chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
            dash = false;
        } else if !dash {
            out.push('-');
            dash = true;
        }
    }
    out.truncate(63);
    out.trim_end_matches('-').to_owned()
}

impl SecretsOut {
    /// Whether the manifests go to stdout (and so everything else to stderr).
    pub fn to_stdout(&self) -> bool {
        self.format == SecretsFormat::K8s && self.dir.is_none()
    }

    fn path(&self, tenant: &str, name: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let ext = match self.format {
            SecretsFormat::Files => "secret",
            SecretsFormat::K8s => "yaml",
        };
        Some(dir.join(format!("{}.{ext}", file_stem(tenant, name))))
    }

    /// Checked before any change: the secrets of `new` (tenant, name) clients have somewhere
    /// to go, and no file there would be overwritten.
    pub fn check(&self, new: &[(String, String)]) -> Result<(), AdminError> {
        if new.is_empty() {
            return Ok(());
        }
        let Some(dir) = &self.dir else {
            if self.format == SecretsFormat::K8s {
                return Ok(());
            }
            let names: Vec<String> = new.iter().map(|(t, n)| format!("{t}/{n}")).collect();
            return Err(AdminError::usage(format!(
                "new clients with a secret ({}) need --secrets-dir DIR or --secrets-format k8s: \
                 a secret is shown once and never in the plan",
                names.join(", ")
            )));
        };
        if !dir.is_dir() {
            return Err(AdminError::usage(format!(
                "--secrets-dir {}: not a folder",
                dir.display()
            )));
        }
        for (tenant, name) in new {
            if let Some(path) = self.path(tenant, name)
                && path.exists()
            {
                return Err(AdminError::usage(format!(
                    "--secrets-dir: {} exists; move it away (apply never overwrites a secret)",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// Writes (or returns, for stdout) a created client's secret.
    pub fn write(
        &self,
        tenant: &str,
        name: &str,
        client_id: &str,
        secret: &str,
    ) -> Result<Option<String>, AdminError> {
        let text = match self.format {
            SecretsFormat::Files => format!("{secret}\n"),
            SecretsFormat::K8s => self.manifest(tenant, name, client_id, secret),
        };
        match self.path(tenant, name) {
            Some(path) => {
                write_private(&path, &text)?;
                Ok(None)
            }
            None => Ok(Some(text)),
        }
    }

    fn manifest(&self, tenant: &str, name: &str, client_id: &str, secret: &str) -> String {
        let quote = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
        let namespace = self
            .namespace
            .as_deref()
            .map(|ns| format!("  namespace: {}\n", quote(ns)))
            .unwrap_or_default();
        format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {}\n{namespace}  labels:\n    \
             app.kubernetes.io/managed-by: tokend-apply\ntype: Opaque\nstringData:\n  \
             tenant: {}\n  client_name: {}\n  client_id: {}\n  client_secret: {}\n",
            secret_name(tenant, name),
            quote(tenant),
            quote(name),
            quote(client_id),
            quote(secret)
        )
    }
}

/// A new file only its owner can read.
fn write_private(path: &Path, text: &str) -> Result<(), AdminError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| {
            AdminError::other(format!(
                "writing the secret to {}: {e} (the client exists: rotate its secret)",
                path.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_for_files_and_kubernetes() {
        assert_eq!(file_stem("acme", "billing/v2 eu"), "acme.billing_v2_eu");
        assert_eq!(
            secret_name("Acme", "Billing API (eu)"),
            "tokend-acme-billing-api-eu"
        );
        assert!(secret_name("t", &"x".repeat(100)).len() <= 63);
    }
}

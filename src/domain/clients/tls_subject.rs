//! A client's RFC 8705 section 2.1.2 subject metadata: five fields, of which a
//! `tls_client_auth` client sets exactly one (the value its certificate must carry). Kept as
//! five fields, as the API shows them, so an update mask can name each; the one rule across
//! them is [`TlsSubject::check`].

use std::net::IpAddr;

use super::certificate::{DistinguishedName, SubjectBinding};
use crate::domain::error::{Error, Result};

/// The five subject fields' API names, in the order the API lists them.
pub const FIELDS: [&str; 5] = [
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
];

/// What a client's certificate must carry (`tls_client_auth`); at most one field is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSubject {
    pub subject_dn: Option<DistinguishedName>,
    pub san_dns: Option<String>,
    pub san_uri: Option<String>,
    pub san_ip: Option<IpAddr>,
    pub san_email: Option<String>,
}

impl TlsSubject {
    /// Sets field `index` of [`FIELDS`] from its raw text (empty: unset); `path` names it.
    pub fn set(&mut self, index: usize, path: &str, raw: &str) -> Result<()> {
        let raw = raw.trim();
        let given = !raw.is_empty();
        match index {
            0 => {
                self.subject_dn = given
                    .then(|| DistinguishedName::parse(path, raw))
                    .transpose()?
            }
            1 => self.san_dns = text(given, path, raw, "a DNS name")?,
            2 => {
                if given && !raw.contains(':') {
                    return Err(Error::invalid(
                        path,
                        "must be an absolute URI such as spiffe://example.org/ns/a/sa/b",
                    ));
                }
                self.san_uri = text(given, path, raw, "an absolute URI")?;
            }
            3 => {
                self.san_ip = given
                    .then(|| {
                        raw.parse::<IpAddr>().map_err(|_| {
                            Error::invalid(path, format!("{raw:?} is not an IPv4 or IPv6 address"))
                        })
                    })
                    .transpose()?
            }
            _ => {
                if given && !raw.contains('@') {
                    return Err(Error::invalid(path, "must be an e-mail address"));
                }
                self.san_email = text(given, path, raw, "an e-mail address")?;
            }
        }
        Ok(())
    }

    /// Each field as the API shows it (empty when unset), in the order of [`FIELDS`].
    pub fn texts(&self) -> [String; 5] {
        let show = |v: &Option<String>| v.clone().unwrap_or_default();
        [
            self.subject_dn
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            show(&self.san_dns),
            show(&self.san_uri),
            self.san_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            show(&self.san_email),
        ]
    }

    /// The one value set, if any.
    pub fn binding(&self) -> Option<SubjectBinding> {
        let dn = self.subject_dn.clone().map(SubjectBinding::Dn);
        dn.or_else(|| self.san_dns.clone().map(SubjectBinding::Dns))
            .or_else(|| self.san_uri.clone().map(SubjectBinding::Uri))
            .or_else(|| self.san_ip.map(SubjectBinding::Ip))
            .or_else(|| self.san_email.clone().map(SubjectBinding::Email))
    }

    /// At most one field set, and exactly one when `required` (the client lists
    /// `tls_client_auth`); the error names the field to fix, under `prefix` (`client.`).
    pub fn check(&self, prefix: &str, required: bool) -> Result<()> {
        let set = [
            self.subject_dn.is_some(),
            self.san_dns.is_some(),
            self.san_uri.is_some(),
            self.san_ip.is_some(),
            self.san_email.is_some(),
        ];
        let mut named = FIELDS.iter().zip(set).filter(|(_, s)| *s).map(|(f, _)| *f);
        match (named.next(), named.next()) {
            (Some(first), Some(second)) => Err(Error::invalid(
                format!("{prefix}{second}"),
                format!(
                    "set one certificate subject value only (RFC 8705 section 2.1.2); \
                     {first} is set already"
                ),
            )),
            (None, _) if required => Err(Error::invalid(
                format!("{prefix}{}", FIELDS[0]),
                format!(
                    "the auth method tls_client_auth needs the one value the client's \
                     certificate carries: set exactly one of {}",
                    FIELDS.join(", ")
                ),
            )),
            _ => Ok(()),
        }
    }
}

fn text(given: bool, path: &str, raw: &str, what: &str) -> Result<Option<String>> {
    given
        .then(|| SubjectBinding::text(path, raw, what))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_is_set_or_the_field_to_fix_is_named() {
        let mut subject = TlsSubject::default();
        assert!(subject.check("client.", false).is_ok());
        let err = subject.check("client.", true).unwrap_err().to_string();
        assert!(
            err.starts_with("client.tls_client_auth_subject_dn:"),
            "{err}"
        );
        subject.set(2, "u", "spiffe://prod/ns/a/sa/b").unwrap();
        assert!(subject.check("client.", true).is_ok());
        assert_eq!(
            subject.binding(),
            Some(SubjectBinding::Uri("spiffe://prod/ns/a/sa/b".into()))
        );
        subject.set(3, "ip", "10.0.0.1").unwrap();
        let err = subject.check("client.", true).unwrap_err().to_string();
        assert!(err.starts_with("client.tls_client_auth_san_ip:"), "{err}");
        subject.set(2, "u", "").unwrap();
        assert_eq!(subject.texts()[3], "10.0.0.1");
        for (i, bad) in [(2, "no-scheme"), (3, "10.0.0"), (4, "no-at"), (1, "a b")] {
            assert!(subject.set(i, "f", bad).is_err(), "{bad}");
        }
    }
}

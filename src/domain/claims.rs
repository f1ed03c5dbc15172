//! The access-token claim set (RFC 9068 section 2.2) and its JOSE header rules.

use serde::{Deserialize, Deserializer, Serialize};

/// `typ` header value of RFC 9068 access tokens.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Claims of a tokend access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// For client-credentials tokens, the client id (RFC 9068 section 2.2).
    pub sub: String,
    /// Always written as an array; read as a string or an array.
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    /// Space-delimited scopes.
    pub scope: String,
    pub tenant: String,
    #[serde(default)]
    pub roles: Vec<String>,
    /// The client's token generation at issue time: once the client's tokens are revoked
    /// (RevokeClientTokens, disable) its generation moves on and this token is inactive.
    #[serde(default, rename = "gen")]
    pub generation: i64,
    /// The refresh family (grant) this token was issued from, if any: revoking the family
    /// revokes the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Whether a JOSE `typ` header names an RFC 9068 access token (`at+jwt`, or the full media type
/// `application/at+jwt`; compared case-insensitively as RFC 7515 section 4.1.9 asks).
pub fn is_access_token_typ(typ: Option<&str>) -> bool {
    typ.is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t == ACCESS_TOKEN_TYP || t == "application/at+jwt"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aud_reads_string_or_array() {
        let base = serde_json::json!({"iss":"i","sub":"s","exp":1,"iat":1,"nbf":1,"jti":"j",
            "client_id":"c","scope":"a b","tenant":"t"});
        let mut one = base.clone();
        one["aud"] = "x".into();
        let mut many = base;
        many["aud"] = serde_json::json!(["x", "y"]);
        assert_eq!(
            serde_json::from_value::<AccessClaims>(one).unwrap().aud,
            vec!["x"]
        );
        assert_eq!(
            serde_json::from_value::<AccessClaims>(many)
                .unwrap()
                .aud
                .len(),
            2
        );
    }

    #[test]
    fn typ_rules() {
        assert!(is_access_token_typ(Some("at+jwt")));
        assert!(is_access_token_typ(Some("application/AT+JWT")));
        assert!(!is_access_token_typ(Some("JWT")));
        assert!(!is_access_token_typ(None));
    }
}

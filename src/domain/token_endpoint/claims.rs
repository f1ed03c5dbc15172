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
    /// Who acts for the subject (RFC 8693 section 4.1): set on exchanged tokens, the current
    /// actor first and earlier ones nested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// The tokens this one was exchanged from (the subject token, an actor token, and theirs
    /// in turn): it is active only while each of them is unrevoked, of a live client and of
    /// that client's current generation. Empty for tokens not made by exchange.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub src: Vec<Origin>,
    /// The certificate the token is bound to (RFC 8705 section 3.1): only a caller presenting
    /// it may use the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` claim of a certificate-bound token (RFC 7800, RFC 8705 section 3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The SHA-256 thumbprint of the DER certificate, base64url (`x5t#S256`).
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

impl AccessClaims {
    /// The thumbprint of the certificate the token is bound to, if it is bound.
    pub fn bound_to(&self) -> Option<&str> {
        self.cnf.as_ref().map(|c| c.x5t_s256.as_str())
    }
}

/// The `act` claim (RFC 8693 section 4.1): the acting party, and the one before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// How many actors the chain names.
    pub fn depth(&self) -> usize {
        1 + self.act.as_ref().map_or(0, |a| a.depth())
    }
}

/// A token an exchanged token came from, as much as the live checks need: its id and refresh
/// family (the deny list), and its client and generation (disable, delete, RevokeClientTokens).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub jti: String,
    pub client_id: String,
    #[serde(rename = "gen")]
    pub generation: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
}

impl Origin {
    /// Where `claims` came from, itself included.
    pub fn chain_of(claims: &AccessClaims) -> impl Iterator<Item = Origin> + '_ {
        claims.src.iter().cloned().chain(std::iter::once(Origin {
            jti: claims.jti.clone(),
            client_id: claims.client_id.clone(),
            generation: claims.generation,
            gid: claims.gid.clone(),
        }))
    }
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

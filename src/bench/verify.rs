//! The bare signature verification baseline: what a resource server verifying tokend's JWTs
//! itself with the JWKS manages on one thread. `introspect-cold` can do no better per core than
//! this plus the network, so the ratio between the two shows what Introspect adds.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde::de::IgnoredAny;
use tonic::transport::Channel;

use super::report::VerifyBaseline;
use super::setup::status_error;
use crate::proto::GetJwksRequest;
use crate::proto::introspection_service_client::IntrospectionServiceClient;

/// How long the tight loop runs.
const WINDOW: Duration = Duration::from_secs(1);

/// Fetches the JWKS, then times `jsonwebtoken::decode` of `token` on one blocking thread.
pub(crate) async fn baseline(channel: Channel, token: &str) -> anyhow::Result<VerifyBaseline> {
    let jwks = IntrospectionServiceClient::new(channel)
        .get_jwks(GetJwksRequest {})
        .await
        .map_err(|s| status_error("GetJwks", &s))?
        .into_inner();
    let set: JwkSet = serde_json::from_str(&jwks.jwks_json).context("GetJwks: bad jwks_json")?;
    let header = jsonwebtoken::decode_header(token).context("the sample token is not a JWT")?;
    let kid = header.kid.context("the sample JWT has no kid")?;
    let jwk = set
        .find(&kid)
        .context("the sample JWT's kid is not in the JWKS")?;
    let key = DecodingKey::from_jwk(jwk).context("unusable JWK")?;
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let token = token.to_owned();
    let per_sec = tokio::task::spawn_blocking(move || time_decode(&token, &key, &validation))
        .await
        .context("the verification thread failed")??;
    Ok(VerifyBaseline {
        per_sec_one_thread: per_sec,
        algorithm: format!("{:?}", header.alg),
    })
}

/// Decodes in a tight loop for `WINDOW`, reading the clock only every 64 rounds.
fn time_decode(token: &str, key: &DecodingKey, validation: &Validation) -> anyhow::Result<f64> {
    jsonwebtoken::decode::<IgnoredAny>(token, key, validation)
        .context("the sample JWT does not verify with the published JWKS")?;
    let started = Instant::now();
    let mut rounds = 0u64;
    loop {
        for _ in 0..64 {
            let _ =
                std::hint::black_box(jsonwebtoken::decode::<IgnoredAny>(token, key, validation));
        }
        rounds += 64;
        let elapsed = started.elapsed();
        if elapsed >= WINDOW {
            return Ok(rounds as f64 / elapsed.as_secs_f64());
        }
    }
}

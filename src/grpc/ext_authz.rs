//! `envoy.service.auth.v3.Authorization/Check`: Envoy's external authorization, so a mesh or
//! gateway checks bearer tokens with tokend before a request reaches a backend.
//!
//! A thin front end: it reads the request's method, path, `authorization` header, source
//! address and client certificate (`include_peer_certificate`, for certificate-bound tokens)
//! out of the `CheckRequest`, asks the domain (`Introspector::authorize_edge`, which
//! also normalises the path) for the verdict, and writes it back as Envoy wants it: OK with the
//! token's identity in upstream headers, or a denied HTTP answer in RFC 6750's terms (403
//! `invalid_request` for a path without a normal form), or 429 with `Retry-After` over an API
//! quota, with the IETF `RateLimit-Policy` and `RateLimit` headers (`transport::rate_limit`);
//! an allowed answer carries `RateLimit` alone, and only once a quota is down to a tenth (a
//! header on every answer costs Check about 5 % of its throughput, see BENCHMARKS.md, and tells
//! a caller far from its quota nothing it needs). A domain error (the database is down) is a
//! gRPC error, so Envoy's `failure_mode_allow` decides.

use std::net::IpAddr;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{
    Address, Authorization, CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction,
    HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, HttpStatusCode, OkHttpResponse,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::google::rpc;
use tonic::{Code, Request, Response, Status};

use super::error::to_status;
use crate::domain::policy::QuotaReport;
use crate::domain::policy::address;
use crate::domain::{EdgeRequest, EdgeRoutes, EdgeVerdict, Error, Tokend};
use crate::transport::client_cert::urlencoded_pem_thumbprint;
use crate::transport::rate_limit::{rate_limit, rate_limit_policy};
use crate::transport::{EdgeAnswer, Presentation, bearer_token, edge_answer, error_body};

/// The service's name in health checks.
pub const SERVICE_NAME: &str = "envoy.service.auth.v3.Authorization";

/// The route rules and the names of the headers the upstream gets.
#[derive(Debug, Clone)]
pub struct ExtAuthzConfig {
    pub routes: Arc<EdgeRoutes>,
    /// Client id, tenant, scopes (space-delimited) and `sub`, in that order.
    pub headers: [String; 4],
}

/// Serves `Authorization`.
pub struct ExtAuthzApi {
    pub tokend: Arc<Tokend>,
    pub config: ExtAuthzConfig,
}

#[tonic::async_trait]
impl Authorization for ExtAuthzApi {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let check = request.get_ref();
        let http = check
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref());
        let certificate = check
            .attributes
            .as_ref()
            .and_then(|a| a.source.as_ref())
            .and_then(|s| urlencoded_pem_thumbprint(&s.certificate));
        let edge = EdgeRequest {
            method: http.map_or("", |h| h.method.as_str()),
            path: http.map_or("", |h| h.path.as_str()),
            bearer: http.and_then(authorization).and_then(bearer_token),
            source: source_address(check),
            certificate: certificate.as_deref(),
        };
        let introspection = &self.tokend.introspection;
        let verdict = introspection
            .authorize_edge(&self.config.routes, edge)
            .await;
        Ok(Response::new(self.answer(verdict.map_err(to_status)?)))
    }
}

impl ExtAuthzApi {
    fn answer(&self, verdict: EdgeVerdict) -> CheckResponse {
        match edge_answer(verdict) {
            EdgeAnswer::Allow(identity, quotas) => allowed(&self.config.headers, identity, &quotas),
            EdgeAnswer::Deny(shown, err, quotas) => {
                let mut answer = denied(&shown, &err);
                if let Some(HttpResponse::DeniedResponse(http)) = &mut answer.http_response {
                    http.headers.extend(quota_headers(&quotas));
                }
                answer
            }
        }
    }
}

/// The `authorization` header: from the header map Envoy sends by default, or from the raw
/// list it sends with `encode_raw_headers`. Sent twice there, it counts as malformed.
fn authorization(http: &HttpRequest) -> Option<&str> {
    if let Some(value) = http.headers.get("authorization") {
        return Some(value);
    }
    let raw = http.header_map.as_ref()?;
    let mut found = raw.headers.iter().filter(|h| h.key == "authorization");
    let first = found.next()?;
    if found.next().is_some() {
        return Some("Bearer ");
    }
    if first.raw_value.is_empty() {
        Some(&first.value)
    } else {
        Some(std::str::from_utf8(&first.raw_value).unwrap_or("Bearer "))
    }
}

/// The downstream client's address, as Envoy saw it; `None` when it sent none or no IP.
fn source_address(check: &CheckRequest) -> Option<IpAddr> {
    let peer = check.attributes.as_ref()?.source.as_ref()?;
    match peer.address.as_ref()?.address.as_ref()? {
        Address::SocketAddress(socket) => address::parse_address("source", &socket.address).ok(),
        _ => None,
    }
}

/// OK, with the token's identity set on the upstream request. Each header is overwritten, never
/// appended to, so a client cannot send its own; one the token has no value for is removed.
fn allowed(names: &[String; 4], values: [String; 4], quotas: &QuotaReport) -> CheckResponse {
    let mut ok = OkHttpResponse::default();
    for (name, value) in names.iter().zip(values) {
        if value.is_empty() {
            ok.headers_to_remove.push(name.clone());
        } else {
            ok.headers.push(header(
                name,
                value,
                HeaderAppendAction::OverwriteIfExistsOrAdd,
            ));
        }
    }
    if let Some(left) = quotas.running_low().then(|| rate_limit(quotas)).flatten() {
        let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd;
        ok.response_headers_to_add
            .push(header("ratelimit", left, overwrite));
    }
    CheckResponse {
        status: Some(rpc::Status {
            code: Code::Ok as i32,
            ..Default::default()
        }),
        http_response: Some(HttpResponse::OkResponse(ok)),
        ..Default::default()
    }
}

/// Both RateLimit headers of the quotas that applied, for a refusal.
fn quota_headers(quotas: &QuotaReport) -> impl Iterator<Item = HeaderValueOption> {
    let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd;
    let policy = rate_limit_policy(quotas).map(|v| header("ratelimit-policy", v, overwrite));
    let state = rate_limit(quotas).map(|v| header("ratelimit", v, overwrite));
    policy.into_iter().chain(state)
}

/// A denied answer: 401 or 403 with the RFC 6750 challenge and the RFC 6749 error body, or 429
/// with `Retry-After` (whole seconds, at least 1), as the one presentation of the error says.
fn denied(shown: &Presentation, err: &Error) -> CheckResponse {
    let http = match shown.http.as_u16() {
        403 => HttpStatusCode::Forbidden,
        429 => HttpStatusCode::TooManyRequests,
        _ => HttpStatusCode::Unauthorized,
    };
    let description = err.to_string();
    let body = error_body(shown.oauth2.unwrap_or("invalid_token"), &description);
    let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd;
    let mut headers = vec![
        header("content-type", "application/json".into(), overwrite),
        header("cache-control", "no-store".into(), overwrite),
    ];
    if let Some(secs) = shown.retry_after_secs() {
        headers.push(header("retry-after", secs.max(1).to_string(), overwrite));
    }
    if let Some(challenge) = &shown.challenge {
        headers.insert(
            0,
            header("www-authenticate", challenge.header_value(), overwrite),
        );
    }
    CheckResponse {
        status: Some(rpc::Status {
            code: shown.grpc as i32,
            message: description,
            details: Vec::new(),
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus { code: http as i32 }),
            headers,
            body: body.to_string(),
        })),
        ..Default::default()
    }
}

fn header(key: &str, value: String, action: HeaderAppendAction) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value,
            raw_value: Vec::new(),
        }),
        append_action: action as i32,
        ..Default::default()
    }
}

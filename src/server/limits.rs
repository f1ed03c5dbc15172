//! Load shedding and the server-side deadline: a tower layer around every route of the API
//! port. Beyond `limits.max_requests_in_flight` calls in progress a call is answered at once
//! (RESOURCE_EXHAUSTED, or HTTP 503 with `Retry-After`) rather than queued behind the others,
//! and a call not answered within `limits.request_timeout_ms` gets DEADLINE_EXCEEDED (HTTP 503).
//! An HTTP/1.1 request whose header fields exceed `limits.max_header_list_bytes` is answered
//! 431 here (HTTP/2's own codec enforces the same size, counted the same way, on its requests;
//! hyper's HTTP/1.1 codec, which tonic does not let us configure, would take far more).
//! The other limits (message size, streams per connection, keepalive, connection age) are the
//! HTTP/2 server's and the generated services' own settings, set in `server::routing` and
//! `grpc`; the connection limits are `server::connections`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Semaphore;

/// The layer; `max_in_flight` 0 means no global limit.
#[derive(Clone)]
pub struct LimitsLayer {
    in_flight: Option<Arc<Semaphore>>,
    timeout: Duration,
    max_header_list: usize,
}

impl LimitsLayer {
    /// Shedding beyond `max_in_flight` calls (0: never), answering DEADLINE_EXCEEDED after
    /// `timeout`, and 431 to an HTTP/1.1 request with more than `max_header_list` bytes of
    /// header fields.
    pub fn new(max_in_flight: usize, timeout: Duration, max_header_list: u32) -> Self {
        Self {
            in_flight: (max_in_flight > 0).then(|| Arc::new(Semaphore::new(max_in_flight))),
            timeout,
            max_header_list: max_header_list as usize,
        }
    }
}

impl<S> tower::Layer<S> for LimitsLayer {
    type Service = Limits<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Limits {
            inner,
            in_flight: self.in_flight.clone(),
            timeout: self.timeout,
            max_header_list: self.max_header_list,
        }
    }
}

/// The service [`LimitsLayer`] wraps around the routes.
#[derive(Clone)]
pub struct Limits<S> {
    inner: S,
    in_flight: Option<Arc<Semaphore>>,
    timeout: Duration,
    max_header_list: usize,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, ResB> tower::Service<http::Request<B>> for Limits<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResB: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResB::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let grpc = crate::transport::is_grpc(request.headers());
        if request.version() < http::Version::HTTP_2
            && header_list_size(request.headers()) > self.max_header_list
        {
            let answer = headers_too_large(grpc, self.max_header_list);
            return Box::pin(std::future::ready(Ok(answer)));
        }
        let permit = match &self.in_flight {
            None => None,
            Some(in_flight) => match in_flight.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    let answer = refusal(
                        grpc,
                        tonic::Code::ResourceExhausted,
                        "the server is at limits.max_requests_in_flight; retry shortly, or on another replica",
                    );
                    return Box::pin(std::future::ready(Ok(answer)));
                }
            },
        };
        let timeout = self.timeout;
        let answer = self.inner.call(request);
        Box::pin(async move {
            let _permit = permit;
            match tokio::time::timeout(timeout, answer).await {
                Ok(answer) => Ok(answer?.map(tonic::body::Body::new)),
                Err(_) => Ok(refusal(
                    grpc,
                    tonic::Code::DeadlineExceeded,
                    &format!(
                        "no answer within limits.request_timeout_ms ({} ms)",
                        timeout.as_millis()
                    ),
                )),
            }
        })
    }
}

/// The size of a header list as HTTP/2 counts it for `SETTINGS_MAX_HEADER_LIST_SIZE` (RFC 9113
/// section 6.5.2): each field's name and value plus 32 bytes.
fn header_list_size(headers: &http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum()
}

/// 431 Request Header Fields Too Large (RFC 6585 section 5) with an OAuth 2.0
/// `invalid_request` body (a gRPC call gets RESOURCE_EXHAUSTED, as HTTP/2 would refuse it);
/// the connection closes after it.
fn headers_too_large(grpc: bool, limit: usize) -> http::Response<tonic::body::Body> {
    let message = format!(
        "the request's header fields exceed limits.max_header_list_bytes ({limit} bytes, each field counted as name + value + 32)"
    );
    if grpc {
        return tonic::Status::resource_exhausted(message).into_http();
    }
    let status = http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    oauth2_error(
        status,
        "invalid_request",
        &message,
        (http::header::CONNECTION, "close"),
    )
}

/// A refusal in the caller's protocol: a trailers-only gRPC status, or the OAuth 2.0
/// `temporarily_unavailable` error as HTTP 503 with `Retry-After`.
fn refusal(grpc: bool, code: tonic::Code, message: &str) -> http::Response<tonic::body::Body> {
    if grpc {
        return tonic::Status::new(code, message).into_http();
    }
    let status = http::StatusCode::SERVICE_UNAVAILABLE;
    let retry = (http::header::RETRY_AFTER, "1");
    oauth2_error(status, "temporarily_unavailable", message, retry)
}

/// An OAuth 2.0 error answer (RFC 6749 section 5.2) written by a layer, before any handler:
/// a JSON body, never cached, with one more header the refusal needs.
fn oauth2_error(
    status: http::StatusCode,
    error: &str,
    message: &str,
    (name, value): (http::HeaderName, &'static str),
) -> http::Response<tonic::body::Body> {
    let body = serde_json::json!({ "error": error, "error_description": message }).to_string();
    let mut response = http::Response::new(tonic::body::Body::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(name, http::HeaderValue::from_static(value));
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

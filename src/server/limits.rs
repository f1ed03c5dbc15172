//! Load shedding and the server-side deadline: a tower layer around every route of the API
//! port. Beyond `limits.max_requests_in_flight` calls in progress a call is answered at once
//! (RESOURCE_EXHAUSTED, or HTTP 503 with `Retry-After`) rather than queued behind the others,
//! and a call not answered within `limits.request_timeout_ms` gets DEADLINE_EXCEEDED (HTTP 503).
//! The other limits (message size, header list, streams per connection, keepalive, connection
//! age) are the HTTP/2 server's and the generated services' own settings, set in
//! `server::routing` and `grpc`.

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
}

impl LimitsLayer {
    /// Shedding beyond `max_in_flight` calls (0: never), answering DEADLINE_EXCEEDED after
    /// `timeout`.
    pub fn new(max_in_flight: usize, timeout: Duration) -> Self {
        Self {
            in_flight: (max_in_flight > 0).then(|| Arc::new(Semaphore::new(max_in_flight))),
            timeout,
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
        }
    }
}

/// The service [`LimitsLayer`] wraps around the routes.
#[derive(Clone)]
pub struct Limits<S> {
    inner: S,
    in_flight: Option<Arc<Semaphore>>,
    timeout: Duration,
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

/// A refusal in the caller's protocol: a trailers-only gRPC status, or the OAuth 2.0
/// `temporarily_unavailable` error as HTTP 503 with `Retry-After`.
fn refusal(grpc: bool, code: tonic::Code, message: &str) -> http::Response<tonic::body::Body> {
    if grpc {
        return tonic::Status::new(code, message).into_http();
    }
    let body = serde_json::json!({
        "error": "temporarily_unavailable",
        "error_description": message,
    })
    .to_string();
    let mut response = http::Response::new(tonic::body::Body::new(body));
    *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

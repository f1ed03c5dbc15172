//! The tower layer around every route of the API port that counts each request: gRPC calls by
//! status code (from the head of a trailers-only answer, else from the trailers at the end of
//! the stream), HTTP requests by route and status, with their latencies.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use super::Metrics;
use super::registry::{CANCELLED, Endpoint, GrpcSeries, UNKNOWN};

/// Counts every request of the API port (when metrics are on; otherwise passes them through).
#[derive(Clone)]
pub struct RequestMetricsLayer {
    metrics: Option<Arc<Metrics>>,
}

impl RequestMetricsLayer {
    /// Counting into `metrics`, or not at all.
    pub fn new(metrics: Option<Arc<Metrics>>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`RequestMetricsLayer`] wraps around the routes.
#[derive(Clone)]
pub struct RequestMetrics<S> {
    inner: S,
    metrics: Option<Arc<Metrics>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, ResB> tower::Service<http::Request<B>> for RequestMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResB: http_body::Body + Unpin + Send + 'static,
{
    type Response = http::Response<Observed<ResB>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let Some(metrics) = self.metrics.clone() else {
            let answer = self.inner.call(request);
            return Box::pin(async move { Ok(answer.await?.map(Observed::passthrough)) });
        };
        let endpoint = metrics.endpoint(&request);
        let start = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            match endpoint {
                Endpoint::Http(route) => {
                    metrics.observe_http(route, response.status(), start.elapsed());
                    Ok(response.map(Observed::passthrough))
                }
                // A trailers-only answer (every error tonic returns) has its status in the head.
                Endpoint::Grpc(series) => match grpc_status(response.headers()) {
                    Some(code) => {
                        series.observe(code, start.elapsed());
                        Ok(response.map(Observed::passthrough))
                    }
                    None => Ok(response.map(|body| Observed {
                        inner: body,
                        pending: Some((series, start)),
                    })),
                },
            }
        })
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<usize> {
    let value = headers.get("grpc-status")?;
    Some(
        std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(UNKNOWN),
    )
}

/// A response body that records its call's status when the trailers pass (or, if the stream
/// ends without them or is dropped early, UNKNOWN or CANCELLED).
pub struct Observed<B> {
    inner: B,
    pending: Option<(Arc<GrpcSeries>, Instant)>,
}

impl<B> Observed<B> {
    fn passthrough(inner: B) -> Self {
        Self {
            inner,
            pending: None,
        }
    }

    fn finish(&mut self, code: usize) {
        if let Some((series, start)) = self.pending.take() {
            series.observe(code, start.elapsed());
        }
    }
}

impl<B> Drop for Observed<B> {
    fn drop(&mut self) {
        self.finish(CANCELLED);
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for Observed<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if this.pending.is_some() {
            match &frame {
                Some(Ok(frame)) => {
                    if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                        this.finish(code);
                    }
                }
                Some(Err(_)) | None => this.finish(UNKNOWN),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

//! Logs and traces. The subscriber is built separately from being installed, so tests can give
//! it a sink. OTLP export is on only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; incoming W3C
//! `traceparent` metadata becomes the parent of each request's span.

use std::fmt;

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Keeps the trace exporter alive; `shutdown` flushes what is buffered.
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Flushes and stops the trace exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown()
        {
            eprintln!("tokend: flushing traces failed: {err}");
        }
    }
}

fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The subscriber: `RUST_LOG`-filtered logs (`json` or human, coloured if `ansi`) to `writer`, plus span export to
/// `provider` when given.
pub fn subscriber<W>(
    json: bool,
    ansi: bool,
    writer: W,
    provider: Option<&SdkTracerProvider>,
) -> impl Subscriber + Send + Sync + for<'a> LookupSpan<'a>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let traces = provider.map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("tokend"))
            .with_filter(env_filter())
            .boxed()
    });
    let layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> =
        std::iter::once(log_layer(json, ansi, writer))
            .chain(traces)
            .collect();
    tracing_subscriber::registry().with(layers)
}

/// The `RUST_LOG`-filtered log lines, JSON or human (coloured if `ansi`), to `writer`. Field
/// values come from callers too (a client_id, a path), so neither format lets one break a
/// line: JSON escapes control characters itself, and the human format's fields go through
/// [`EscapedFields`]. (Tests build a subscriber from both formats at once with this.)
pub fn log_layer<W>(json: bool, ansi: bool, writer: W) -> Box<dyn Layer<Registry> + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(false)
        .with_ansi(ansi && !json);
    if json {
        fmt.json()
            .with_current_span(true)
            .with_filter(env_filter())
            .boxed()
    } else {
        fmt.fmt_fields(EscapedFields::default())
            .with_filter(env_filter())
            .boxed()
    }
}

/// The human format's fields (of events and of the spans shown before them): the default
/// `message name=value` layout, with every control character written as an escape (`\n`,
/// `\r`, `\t`, `\u{1b}`...), so a value cannot end its line and start a forged one, nor
/// send terminal escapes to whoever reads the log. Unicode line and paragraph separators are
/// escaped too: some viewers break lines on them.
#[derive(Debug, Default)]
pub struct EscapedFields(DefaultFields);

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut escaping = EscapeControls(&mut writer);
        self.0.format_fields(Writer::new(&mut escaping), fields)
    }
}

/// Writes through, escaping control characters.
struct EscapeControls<W>(W);

impl<W: fmt::Write> fmt::Write for EscapeControls<W> {
    fn write_str(&mut self, mut rest: &str) -> fmt::Result {
        let escaped = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
        while let Some((at, c)) = rest.char_indices().find(|&(_, c)| escaped(c)) {
            self.0.write_str(&rest[..at])?;
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// Installs logging (to stderr) and, if configured by the standard `OTEL_*` variables, OTLP
/// trace export. Must run inside the Tokio runtime (the exporter's gRPC client needs it).
pub fn init(json: bool) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name("tokend")
                .build();
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
        _ => None,
    };
    tracing::subscriber::set_global_default(subscriber(
        json,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::io::stderr,
        provider.as_ref(),
    ))?;
    Ok(TelemetryGuard { provider })
}

/// Reads W3C trace-context headers from HTTP/2 request headers (gRPC metadata).
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The span for one gRPC request, child of the caller's trace when it sent `traceparent`.
pub fn request_span(request: &http::Request<()>) -> tracing::Span {
    let span = tracing::info_span!("grpc", rpc = %request.uri().path(), otel.kind = "server");
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&HeaderExtractor(request.headers()))
    });
    let _ = span.set_parent(parent);
    span
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let mut out = String::new();
        let mut escaping = EscapeControls(&mut out);
        write!(escaping, "a\nb\r\x1b[31mc\td\u{2028}é\u{7f}").unwrap();
        assert_eq!(out, "a\\nb\\r\\u{1b}[31mc\\td\\u{2028}é\\u{7f}");
    }
}

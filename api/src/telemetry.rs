//! Structured logs with `tracing`. `RUST_LOG` filters (default `info`);
//! `LEADRANK_LOG_FORMAT=json` writes one JSON object a line.
//!
//! Built with the `otel` feature, spans are also exported over OTLP/HTTP
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the standard `OTEL_*`
//! variables apply; the service name is `leadrank` unless
//! `OTEL_SERVICE_NAME` says otherwise). Each request's span carries its
//! request id, method, path, tenant, user or API key, and operation.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Keeps the trace exporter alive; dropping it flushes the spans not yet
/// sent.
#[must_use = "dropping the guard stops the trace export"]
pub struct Guard {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("the trace exporter did not shut down cleanly: {err}");
        }
    }
}

/// Installs the global subscriber once; later calls do nothing.
pub fn init() -> Guard {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let json = std::env::var("LEADRANK_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let (traces, guard) = traces();
    let registry = tracing_subscriber::registry().with(filter).with(traces);
    let _ = if json {
        registry.with(fmt::layer().json()).try_init()
    } else {
        registry.with(fmt::layer()).try_init()
    };
    guard
}

fn endpoint() -> Option<String> {
    std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

#[cfg(not(feature = "otel"))]
fn traces() -> (Option<tracing_subscriber::layer::Identity>, Guard) {
    if endpoint().is_some() {
        eprintln!(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but this build has no trace export: \
             build with `--features otel`"
        );
    }
    (None, Guard {})
}

#[cfg(feature = "otel")]
fn traces<S>() -> (
    Option<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>>,
    Guard,
)
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use opentelemetry::trace::TracerProvider as _;

    if endpoint().is_none() {
        return (None, Guard { provider: None });
    }
    // The exporter's HTTP client takes TLS from the process-wide provider.
    crate::tls::install_provider();
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(exporter) => exporter,
        Err(err) => {
            eprintln!("trace export is off: the OTLP exporter could not be built: {err}");
            return (None, Guard { provider: None });
        }
    };
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "leadrank".to_owned());
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("leadrank"));
    (
        Some(layer),
        Guard {
            provider: Some(provider),
        },
    )
}

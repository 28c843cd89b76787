//! Traces: a service entry point's span says which tenant and which lead it
//! worked on, so one company's requests can be followed through the logs.

use std::sync::{Mutex, OnceLock};

use serde_json::json;
use tracing::{
    Subscriber,
    field::{Field, Visit},
    span,
};
use tracing_subscriber::{
    Layer, filter::filter_fn, layer::Context, prelude::*, registry::LookupSpan,
};

use crate::{helpers::spawn_app, leads::strong};

/// A span's fields by name, as text.
type Fields = Vec<(String, String)>;

/// Every `create_lead` span opened in this process, with its fields as they
/// were when it closed.
fn created() -> &'static Mutex<Vec<Fields>> {
    static CREATED: OnceLock<Mutex<Vec<Fields>>> = OnceLock::new();
    CREATED.get_or_init(|| {
        // The server runs on threads of its own, so only a global
        // subscriber sees its spans; it keeps just the one span kind, so
        // the other tests running beside this one pay almost nothing.
        let only_create_lead = filter_fn(|meta| meta.is_span() && meta.name() == "create_lead");
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(Capture.with_filter(only_create_lead)),
        )
        .expect("no other test sets a global subscriber");
        Mutex::new(Vec::new())
    })
}

/// Keeps the fields of the spans it is shown.
struct Capture;

#[derive(Default)]
struct Recorded(Fields);

impl Visit for Recorded {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut fields = Recorded::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Recorded>()
        {
            values.record(fields);
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id)
            && let Some(fields) = span.extensions_mut().remove::<Recorded>()
        {
            created().lock().unwrap().push(fields.0);
        }
    }
}

#[tokio::test]
async fn creating_a_lead_is_traced_with_its_tenant_and_its_id() {
    let spans = created();
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    let lead = app
        .new_lead(
            &acme.token,
            json!({"name": "Li Wei", "company": "Hangzhou Optics", "attributes": strong()}),
        )
        .await;

    let lead_id = lead["id"].as_str().unwrap();
    let ours: Vec<Fields> = spans
        .lock()
        .unwrap()
        .iter()
        .filter(|fields| fields.iter().any(|(k, v)| k == "lead_id" && v == lead_id))
        .cloned()
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert!(
        ours[0]
            .iter()
            .any(|(k, v)| k == "tenant_id" && *v == acme.id),
        "{ours:?}"
    );
}

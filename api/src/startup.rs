//! Building and running the HTTP server.

use std::{net::TcpListener, sync::Arc, time::Instant};

use actix_cors::Cors;
use actix_web::{
    App, HttpRequest, HttpResponse, HttpServer,
    body::MessageBody,
    dev::{Server, ServiceRequest, ServiceResponse},
    guard,
    http::header,
    middleware::{Next, from_fn},
    web,
};
use anyhow::Context;
use async_graphql::http::GraphiQLSource;
use sea_orm::DatabaseConnection;
use tracing::{Instrument, field::Empty};

use crate::{
    auth::{
        Authentication,
        throttle::LoginThrottle,
        tokens::{TokenKeys, load_or_create_secret},
    },
    config::Settings,
    db,
    graphql::{LeadRankSchema, Loaders, RequestContext, build_schema},
    service::account::Auth,
};

/// What every request handler shares.
struct AppState {
    db: DatabaseConnection,
    schema: LeadRankSchema,
    auth: Arc<Auth>,
    trust_forwarded_for: bool,
}

/// A bound, ready-to-run server.
pub struct Application {
    port: u16,
    db: DatabaseConnection,
    queries: db::QueryCounter,
    server: Server,
}

impl Application {
    /// Connects to the database, applies migrations and binds the port
    /// (port 0 picks a free one).
    ///
    /// # Errors
    /// When the database, the secret file or the port is unusable.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let mut db = db::connect(&settings).await?;
        db::migrate(&db).await?;
        let queries = db::count_queries(&mut db);
        let secret = load_or_create_secret(&settings.jwt_secret)?;
        let auth = Arc::new(Auth {
            keys: TokenKeys::from_secret(&secret),
            access_ttl: chrono::Duration::from_std(settings.access_token_ttl)
                .context("LEADRANK_ACCESS_TOKEN_TTL_SECS is too large")?,
            refresh_ttl: chrono::Duration::from_std(settings.refresh_token_ttl)
                .context("LEADRANK_REFRESH_TOKEN_TTL_SECS is too large")?,
            throttle: LoginThrottle {
                per_account: settings.login_max_failures,
                per_client: settings.login_max_failures_per_client,
                window: chrono::Duration::from_std(settings.login_window)
                    .context("LEADRANK_LOGIN_WINDOW_SECS is too large")?,
            },
        });
        if settings.scheduler {
            crate::jobs::scheduler::spawn(db.clone(), settings.job_concurrency);
        }
        if settings.webhooks.worker {
            crate::jobs::webhooks::spawn(db.clone(), settings.webhooks.clone());
        }
        let listener = TcpListener::bind(&settings.bind)
            .with_context(|| format!("failed to bind LEADRANK_BIND={}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let bus = crate::live::Bus::new(settings.subscription_buffer);
        if settings.live_updates {
            bus.spawn_listener(db.clone());
        }
        let state = web::Data::new(AppState {
            db: db.clone(),
            schema: build_schema(&settings, bus),
            auth,
            trust_forwarded_for: settings.trust_forwarded_for,
        });
        let body_limit = settings.body_limit_bytes;
        let cors_origins = settings.cors_origins.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(cors(&cors_origins))
                .wrap(from_fn(trace_request))
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(body_limit))
                .route("/graphql", web::post().to(graphql_post))
                .route(
                    "/graphql",
                    web::get()
                        .guard(guard::Header("upgrade", "websocket"))
                        .to(graphql_ws),
                )
                .route("/graphql", web::get().to(graphql_get))
                .route("/healthz", web::get().to(healthz))
                .route("/", web::get().to(ide))
        })
        .listen(listener)?
        .shutdown_timeout(30)
        .run();
        tracing::info!(bind = %settings.bind, port, database = %db::redact(&settings.database_url), "LeadRank is listening");
        Ok(Self {
            port,
            db,
            queries,
            server,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection pool, for jobs that run beside the server.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Statements the server has run so far.
    pub fn queries(&self) -> db::QueryCounter {
        self.queries.clone()
    }

    /// Serves until SIGTERM or Ctrl-C, then finishes requests in flight.
    ///
    /// # Errors
    /// I/O errors of the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

fn cors(origins: &[String]) -> Cors {
    let cors = Cors::default()
        .allowed_methods(["GET", "POST"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .max_age(3600);
    if origins.iter().any(|o| o == "*") {
        return cors.allow_any_origin();
    }
    origins
        .iter()
        .fold(cors, |cors, origin| cors.allowed_origin(origin))
}

/// One span per request: request id, method, path, then tenant, user and
/// operation as the GraphQL handler learns them, status and duration.
async fn trace_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = uuid::Uuid::now_v7();
    let span = tracing::info_span!(
        "request",
        %request_id,
        method = %req.method(),
        path = %req.path(),
        tenant_id = Empty,
        user_id = Empty,
        operation = Empty,
    );
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let _entered = span.enter();
    match &result {
        Ok(res) => tracing::info!(
            status = res.status().as_u16(),
            elapsed_ms,
            "request finished"
        ),
        Err(err) => tracing::warn!(error = %err, elapsed_ms, "request failed"),
    }
    result.map(|mut res| {
        if let Ok(value) = header::HeaderValue::from_str(&request_id.to_string()) {
            res.headers_mut()
                .insert(header::HeaderName::from_static("x-request-id"), value);
        }
        res
    })
}

fn authenticate(req: &HttpRequest, auth: &Auth) -> Authentication {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Authentication::Anonymous;
    };
    let token = value.to_str().ok().and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    });
    match token {
        Some(token) => match auth.keys.verify(token.trim()) {
            Ok(principal) => Authentication::Authenticated(principal),
            Err(why) => Authentication::Rejected(why),
        },
        None => Authentication::Rejected("the Authorization header must be `Bearer <accessToken>`"),
    }
}

fn client_address(req: &HttpRequest, trust_forwarded_for: bool) -> String {
    let forwarded = trust_forwarded_for
        .then(|| {
            req.headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
        })
        .flatten()
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_owned());
    forwarded
        .or_else(|| req.peer_addr().map(|a| a.ip().to_string()))
        .unwrap_or_else(|| "unknown".to_owned())
}

async fn execute(
    req: &HttpRequest,
    state: &AppState,
    batch: async_graphql::BatchRequest,
) -> HttpResponse {
    let authentication = authenticate(req, &state.auth);
    let span = tracing::Span::current();
    if let Authentication::Authenticated(p) = &authentication {
        span.record("tenant_id", tracing::field::display(p.tenant_id));
        span.record("user_id", tracing::field::display(p.user_id));
    }
    let operations: Vec<&str> = batch
        .iter()
        .filter_map(|r| r.operation_name.as_deref())
        .collect();
    if !operations.is_empty() {
        span.record("operation", operations.join(","));
    }
    let client = client_address(req, state.trust_forwarded_for);
    // Each request of a batch gets its own context and loaders.
    let mut batch = batch;
    for request in batch.iter_mut() {
        if let Authentication::Authenticated(p) = &authentication {
            request
                .data
                .insert(Loaders::new(state.db.clone(), p.tenant_id));
        }
        request.data.insert(RequestContext {
            db: state.db.clone(),
            auth: state.auth.clone(),
            authentication: authentication.clone(),
            client: client.clone(),
        });
    }
    let response = state.schema.execute_batch(batch).await;
    HttpResponse::Ok().json(response)
}

/// The most operations one batched request may carry.
const MAX_BATCH: usize = 10;

async fn graphql_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    match serde_json::from_slice::<async_graphql::BatchRequest>(&body) {
        Ok(batch) if batch.iter().count() > MAX_BATCH => {
            bad_request(&format!("a batch may hold at most {MAX_BATCH} operations"))
        }
        Ok(batch) => execute(&req, &state, batch).await,
        Err(err) => bad_request(&format!("the request body is not a GraphQL request: {err}")),
    }
}

async fn graphql_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if req.query_string().is_empty() {
        return ide().await;
    }
    match async_graphql::http::parse_query_string(req.query_string()) {
        Ok(request) => execute(&req, &state, async_graphql::BatchRequest::Single(request)).await,
        Err(err) => bad_request(&format!("the query string is not a GraphQL request: {err}")),
    }
}

/// Subscriptions: the same endpoint, upgraded to a WebSocket.
async fn graphql_ws(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    crate::ws::serve(
        &req,
        body,
        state.schema.clone(),
        state.db.clone(),
        state.auth.clone(),
        client_address(&req, state.trust_forwarded_for),
    )
}

fn bad_request(message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(serde_json::json!({
        "errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]
    }))
}

async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    match state.db.ping().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ok", "database": "ok"})),
        Err(err) => {
            tracing::error!(error = %err, "health check: the database does not answer");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "unavailable", "database": "unreachable"}))
        }
    }
}

async fn ide() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .title("LeadRank GraphQL")
                .finish(),
        )
}

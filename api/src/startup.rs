//! Building and running the HTTP server.

use std::{
    net::TcpListener,
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use actix_cors::Cors;
use actix_web::{
    App, HttpRequest, HttpResponse, HttpServer,
    body::MessageBody,
    dev::{Server, ServiceRequest, ServiceResponse},
    guard,
    http::{StatusCode, header},
    middleware::{Next, from_fn},
    web,
};
use anyhow::Context;
use async_graphql::{
    http::GraphiQLSource,
    parser::types::{DocumentOperations, OperationType},
};
use futures_util::FutureExt;
use sea_orm::DatabaseConnection;
use tracing::{Instrument, field::Empty};

use crate::{
    auth::{
        Authentication,
        throttle::{LoginThrottle, SignUpThrottle},
        tokens::{Claims, TokenKeys, load_or_create_secret},
    },
    caller::{Caller, authenticate},
    config::Settings,
    db,
    graphql::{
        Loaders, RequestContext, Schemas, build_schemas, key_gate,
        limits::{self, QueryBudget, check_nesting},
        persisted::PersistedQueries,
    },
    rate_limit::{Bucket, Exhausted, RequestRateLimit},
    service::accounts::account::Auth,
};

/// What every request handler shares.
struct AppState {
    db: DatabaseConnection,
    schemas: Schemas,
    auth: Arc<Auth>,
    trust_forwarded_for: bool,
    rate_limit: Arc<RequestRateLimit>,
    request_timeout: Duration,
    max_nesting: usize,
    bus: crate::live::Bus,
    connections: Arc<crate::live::ws::Connections>,
    live_limits: crate::live::ws::LiveLimits,
    persisted: PersistedQueries,
    /// The bearer token `/metrics` asks for; none: `/metrics` is off.
    metrics_token: Option<crate::config::Secret>,
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
        db::warn_if_the_wall_is_bypassed(&db).await?;
        let queries = db::count_queries(&mut db);
        let secret = load_or_create_secret(&settings.jwt_secret)?;
        let auth = Arc::new(Auth {
            keys: TokenKeys::from_secret(&secret),
            access_ttl: chrono::Duration::from_std(settings.access_token_ttl)
                .context("LEADRANK_ACCESS_TOKEN_TTL_SECS is too large")?,
            refresh_ttl: chrono::Duration::from_std(settings.refresh_token_ttl)
                .context("LEADRANK_REFRESH_TOKEN_TTL_SECS is too large")?,
            session_max_lifetime: chrono::Duration::from_std(settings.session_max_lifetime)
                .context("LEADRANK_SESSION_MAX_LIFETIME_SECS is too large")?,
            throttle: LoginThrottle {
                per_account: settings.login_max_failures,
                per_client: settings.login_max_failures_per_client,
                window: chrono::Duration::from_std(settings.login_window)
                    .context("LEADRANK_LOGIN_WINDOW_SECS is too large")?,
            },
            sign_ups: SignUpThrottle {
                per_client: settings.sign_ups_per_client,
                window: chrono::Duration::from_std(settings.sign_up_window)
                    .context("LEADRANK_SIGNUP_WINDOW_SECS is too large")?,
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
        let rate_limit = Arc::new(RequestRateLimit::new(
            settings.user_requests_per_minute,
            settings.tenant_requests_per_minute,
        ));
        spawn_bucket_cleanup(Arc::downgrade(&rate_limit));
        let state = web::Data::new(AppState {
            db: db.clone(),
            schemas: build_schemas(&settings, bus.clone()),
            bus,
            connections: Arc::default(),
            live_limits: crate::live::ws::LiveLimits {
                subscriptions_per_connection: settings.max_subscriptions_per_connection,
                connections_per_user: settings.max_connections_per_user,
            },
            auth,
            trust_forwarded_for: settings.trust_forwarded_for,
            rate_limit,
            request_timeout: settings.request_timeout,
            max_nesting: settings.max_query_nesting,
            persisted: PersistedQueries::default(),
            metrics_token: settings.metrics_token.clone(),
        });
        let ingest = web::Data::new(crate::events_http::Deps {
            db: db.clone(),
            keys: Arc::clone(&state.auth),
            limit: Arc::clone(&state.schemas.events_limit),
        });
        let exports = web::Data::new(crate::export_http::Deps {
            db: db.clone(),
            auth: Arc::clone(&state.auth),
        });
        let body_limit = settings.body_limit_bytes;
        let cors_origins = settings.cors_origins.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(cors(&cors_origins))
                .wrap(from_fn(trace_request))
                .app_data(state.clone())
                .app_data(ingest.clone())
                .app_data(exports.clone())
                .app_data(web::PayloadConfig::new(body_limit))
                .route(
                    "/v1/events",
                    web::post().to(crate::events_http::post_events),
                )
                .route(
                    "/v1/exports/{link}",
                    web::get().to(crate::export_http::get_export),
                )
                .route("/graphql", web::post().to(graphql_post))
                .route(
                    "/graphql",
                    web::get()
                        .guard(guard::Header("upgrade", "websocket"))
                        .to(graphql_ws),
                )
                .route("/graphql", web::get().to(graphql_get))
                .route("/healthz", web::get().to(healthz))
                .route("/metrics", web::get().to(metrics))
                .route("/", web::get().to(ide))
        })
        .listen(listener)?
        .shutdown_timeout(30)
        .run();
        tracing::info!(bind = %settings.bind, port, database = %crate::config::redact(&settings.database_url), "LeadRank is listening");
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

/// Every minute, drops the rate-limit buckets that have refilled, until the
/// server is gone.
fn spawn_bucket_cleanup(rate_limit: Weak<RequestRateLimit>) {
    tokio::spawn(async move {
        let mut every_minute = tokio::time::interval(Duration::from_secs(60));
        loop {
            every_minute.tick().await;
            let Some(rate_limit) = rate_limit.upgrade() else {
                return;
            };
            rate_limit.forget_full_buckets();
        }
    });
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
/// A request's path as logged: an export link is cut off.
fn logged_path(path: &str) -> &str {
    if path.starts_with("/v1/exports/") {
        "/v1/exports/…"
    } else {
        path
    }
}

async fn trace_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = uuid::Uuid::now_v7();
    let span = tracing::info_span!(
        "request",
        %request_id,
        method = %req.method(),
        // An export link in the path is a credential while it lasts.
        path = %logged_path(req.path()),
        tenant_id = Empty,
        user_id = Empty,
        api_key_id = Empty,
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
    let Caller {
        authentication,
        claims,
        api_key,
    } = authenticate(req, &state.db, &state.auth.keys).await;
    let session = claims.as_ref().map(Claims::session).unwrap_or_default();
    let span = tracing::Span::current();
    if let Authentication::Authenticated(p) = &authentication {
        span.record("tenant_id", tracing::field::display(p.tenant_id));
        span.record("user_id", tracing::field::display(p.user_id));
    }
    if let Some(key) = &api_key {
        span.record("api_key_id", tracing::field::display(key.id));
    }
    let started = Instant::now();
    let names: Vec<Option<String>> = batch.iter().map(|r| r.operation_name.clone()).collect();
    let operations: Vec<&str> = batch
        .iter()
        .filter_map(|r| r.operation_name.as_deref())
        .collect();
    if !operations.is_empty() {
        span.record("operation", operations.join(","));
    }
    if let Authentication::Authenticated(p) = &authentication
        && let Err(exhausted) = state
            .rate_limit
            .check(p.tenant_id, p.user_id, batch.iter().count())
    {
        tracing::info!(
            bucket = ?exhausted.whose,
            retry_after_secs = exhausted.retry_after_secs,
            "request refused by the rate limit"
        );
        crate::metrics::request(
            names.first().and_then(Option::as_deref),
            "RATE_LIMITED",
            started.elapsed(),
        );
        return rate_limited(exhausted);
    }
    let client = client_address(req, state.trust_forwarded_for);
    // The operations of a batch share one allowance of fields and cost.
    let budget = QueryBudget::shared();
    // Each request of a batch gets its own context and loaders.
    let mut batch = batch;
    if let Some(key) = &api_key {
        for request in batch.iter_mut() {
            if let Err(refused) = key_gate::check(request, key.scopes, state.max_nesting) {
                tracing::info!(api_key_id = %key.id, "request refused: beyond the API key's scopes");
                crate::metrics::request(
                    request.operation_name.as_deref(),
                    "FORBIDDEN",
                    started.elapsed(),
                );
                return HttpResponse::Ok()
                    .json(async_graphql::Response::from_errors(vec![refused]));
            }
        }
    }
    for request in batch.iter_mut() {
        request.data.insert(budget.clone());
        if let Authentication::Authenticated(p) = &authentication {
            request
                .data
                .insert(Loaders::new(state.db.clone(), p.tenant_id));
        }
        request.data.insert(RequestContext {
            db: state.db.clone(),
            auth: state.auth.clone(),
            authentication: authentication.clone(),
            session,
            client: client.clone(),
            api_key: api_key.clone(),
            walled: std::sync::OnceLock::new(),
        });
    }
    let work = async {
        match batch {
            async_graphql::BatchRequest::Single(mut request) => {
                let checked = limits::admit(&mut request, &state.schemas.limits, &budget);
                async_graphql::BatchResponse::Single(match checked {
                    Ok(()) => {
                        let mut response = state.schemas.lean.execute(request).await;
                        limits::code_validation_errors(&mut response);
                        response
                    }
                    Err(refused) => async_graphql::Response::from_errors(vec![refused]),
                })
            }
            batch => state.schemas.full.execute_batch(batch).await,
        }
    };
    match guarded(work, state.request_timeout).await {
        Ok(response) => {
            observe(&names, &response, started);
            respond(Media::of(req), &response)
        }
        Err(Stopped::Panicked) => {
            crate::metrics::request(
                names.first().and_then(Option::as_deref),
                "INTERNAL",
                started.elapsed(),
            );
            tracing::error!(
                "a request panicked; it was answered INTERNAL and the server carries on"
            );
            graphql_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "something went wrong on our side; it has been logged",
            )
        }
        Err(Stopped::Deadline) => {
            crate::metrics::request(
                names.first().and_then(Option::as_deref),
                "TIMEOUT",
                started.elapsed(),
            );
            let secs = state.request_timeout.as_secs();
            tracing::warn!(timeout_secs = secs, "request cancelled at its deadline");
            graphql_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "TIMEOUT",
                &format!(
                    "the request took longer than {secs} s and was stopped; ask for less \
                     (smaller pages, fewer fields) or try again later"
                ),
            )
        }
    }
}

/// Counts the operations of an answered request with their outcomes: `ok`,
/// or the first error's code.
fn observe(names: &[Option<String>], response: &async_graphql::BatchResponse, started: Instant) {
    fn outcome(response: &async_graphql::Response) -> &str {
        let Some(error) = response.errors.first() else {
            return "ok";
        };
        match error.extensions.as_ref().and_then(|e| e.get("code")) {
            Some(async_graphql::Value::String(code))
                if code.len() <= 40
                    && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') =>
            {
                code
            }
            _ => "ERROR",
        }
    }
    let elapsed = started.elapsed();
    let name = |i: usize| names.get(i).and_then(Option::as_deref);
    match response {
        async_graphql::BatchResponse::Single(one) => {
            crate::metrics::request(name(0), outcome(one), elapsed);
        }
        async_graphql::BatchResponse::Batch(many) => {
            for (i, one) in many.iter().enumerate() {
                crate::metrics::request(name(i), outcome(one), elapsed);
            }
        }
    }
}

/// Why a guarded request did not finish.
#[derive(Debug, PartialEq, Eq)]
enum Stopped {
    /// It panicked.
    Panicked,
    /// It ran past its deadline and was dropped, which cancels it at its
    /// next await (an open transaction rolls back).
    Deadline,
}

/// Runs a request's work so that a panic in a resolver answers that
/// request instead of unwinding through the worker, which would drop every
/// connection the worker serves, and so that work past `deadline` is
/// cancelled rather than holding a worker and a database connection.
async fn guarded<T>(work: impl Future<Output = T>, deadline: Duration) -> Result<T, Stopped> {
    match tokio::time::timeout(deadline, std::panic::AssertUnwindSafe(work).catch_unwind()).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(_panic)) => Err(Stopped::Panicked),
        Err(_elapsed) => Err(Stopped::Deadline),
    }
}

/// The media type of a GraphQL answer, as the client's `Accept` asks
/// (GraphQL over HTTP): `application/graphql-response+json` when it names
/// it, otherwise `application/json`, also for `*/*` or no `Accept`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Media {
    Json,
    GraphqlResponse,
}

/// The GraphQL-over-HTTP media type whose status codes follow the outcome.
const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

impl Media {
    fn of(req: &HttpRequest) -> Self {
        let accepts = req
            .headers()
            .get_all(header::ACCEPT)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.split(';').next().unwrap_or_default().trim())
            .any(|v| v.eq_ignore_ascii_case(GRAPHQL_RESPONSE_JSON));
        if accepts {
            Self::GraphqlResponse
        } else {
            Self::Json
        }
    }
}

/// Whether a response is a request error: nothing ran (the document did
/// not parse or validate, or it was refused), so no error has a path.
fn is_request_error(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// Answers a GraphQL response. As `application/json` every response that
/// ran or was refused by GraphQL is HTTP 200, as clients of that type
/// expect; as `application/graphql-response+json` a request error is
/// HTTP 400 (403 for an API key's refused scope) without a `data` entry.
/// The errors' `extensions.code` are the same either way.
fn respond(media: Media, response: &async_graphql::BatchResponse) -> HttpResponse {
    match (media, response) {
        (Media::Json, _) => HttpResponse::Ok().json(response),
        (Media::GraphqlResponse, async_graphql::BatchResponse::Single(single))
            if is_request_error(single) =>
        {
            let forbidden = single.errors.first().is_some_and(|e| {
                e.extensions
                    .as_ref()
                    .and_then(|x| x.get("code"))
                    .is_some_and(|c| *c == async_graphql::Value::from("FORBIDDEN"))
            });
            let status = if forbidden {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::BAD_REQUEST
            };
            HttpResponse::build(status)
                .content_type(GRAPHQL_RESPONSE_JSON)
                .json(serde_json::json!({ "errors": single.errors }))
        }
        (Media::GraphqlResponse, _) => HttpResponse::Ok()
            .content_type(GRAPHQL_RESPONSE_JSON)
            .json(response),
    }
}

fn rate_limited(exhausted: Exhausted) -> HttpResponse {
    let wait = exhausted.retry_after_secs;
    let message = match exhausted.whose {
        Bucket::User => format!("you are sending too many requests; try again in {wait} seconds"),
        Bucket::Tenant => format!(
            "your company's users together are sending too many requests; try again in {wait} seconds"
        ),
    };
    HttpResponse::TooManyRequests()
        .insert_header((header::RETRY_AFTER, wait.to_string()))
        .json(serde_json::json!({
            "errors": [{"message": message, "extensions": {"code": "RATE_LIMITED", "retryAfter": wait}}]
        }))
}

/// Query-string parameters that look like credentials. A token in a URL
/// ends up in proxy logs, browser history and `Referer` headers, so such a
/// request is refused rather than quietly ignored: the client learns to
/// use the header before anything leaks again.
const CREDENTIAL_PARAMETERS: &[&str] = &[
    "access_token",
    "accesstoken",
    "token",
    "refresh_token",
    "refreshtoken",
    "authorization",
    "auth",
    "bearer",
    "jwt",
    "api_key",
    "apikey",
    "password",
];

fn credentials_in_url(req: &HttpRequest) -> Option<HttpResponse> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string()).ok()?;
    let name = pairs.iter().map(|(name, _)| name).find(|name| {
        CREDENTIAL_PARAMETERS
            .iter()
            .any(|c| name.eq_ignore_ascii_case(c))
    })?;
    tracing::warn!(parameter = %name, "request refused: a credential in the URL");
    Some(bad_request(&format!(
        "credentials are never accepted in the URL (`{name}`): send the access token in the \
         `Authorization: Bearer <accessToken>` header, and passwords in the POST body"
    )))
}

/// Whether `doc` holds a mutation, which GET must never run: a link or a
/// prefetch would otherwise change data.
fn has_mutation(doc: &async_graphql::parser::types::ExecutableDocument) -> bool {
    match &doc.operations {
        DocumentOperations::Single(op) => op.node.ty == OperationType::Mutation,
        DocumentOperations::Multiple(ops) => {
            ops.values().any(|op| op.node.ty == OperationType::Mutation)
        }
    }
}

/// Whether the request's body is declared as JSON (`application/json`,
/// with or without parameters such as `charset`).
fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

const NO_QUERY: &str = "the request has no `query`: send the GraphQL document in `query` \
    (or a persisted query's hash in `extensions.persistedQuery`)";

/// Whether a request carries neither a document nor a persisted query's
/// hash: a malformed request (HTTP 400), not a document that fails to
/// parse.
fn lacks_query(request: &async_graphql::Request) -> bool {
    request.query.trim().is_empty() && !request.extensions.contains_key("persistedQuery")
}

/// Puts the documents of persisted queries named by hash in place, before
/// anything else looks at the requests; the refusal when one is unknown
/// (`PERSISTED_QUERY_NOT_FOUND`, for the client to send it) or malformed.
/// A batch is refused whole.
fn resolve_persisted<'a>(
    req: &HttpRequest,
    state: &AppState,
    requests: impl Iterator<Item = &'a mut async_graphql::Request>,
) -> Option<HttpResponse> {
    for request in requests {
        if let Err(err) = state.persisted.resolve(request) {
            let refused = async_graphql::Response::from_errors(vec![err]);
            return Some(respond(
                Media::of(req),
                &async_graphql::BatchResponse::Single(refused),
            ));
        }
    }
    None
}

/// The most operations one batched request may carry.
const MAX_BATCH: usize = 10;

async fn graphql_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Some(refused) = credentials_in_url(&req) {
        return refused;
    }
    if !is_json(&req) {
        return graphql_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_REQUEST",
            "send the GraphQL request as JSON, with `Content-Type: application/json`",
        );
    }
    match serde_json::from_slice::<async_graphql::BatchRequest>(&body) {
        Ok(batch) if batch.iter().count() > MAX_BATCH => {
            bad_request(&format!("a batch may hold at most {MAX_BATCH} operations"))
        }
        Ok(batch) if batch.iter().any(lacks_query) => bad_request(NO_QUERY),
        Ok(mut batch) => {
            if let Some(refused) = resolve_persisted(&req, &state, batch.iter_mut()) {
                return refused;
            }
            execute(&req, &state, batch).await
        }
        Err(err) => bad_request(&format!("the request body is not a GraphQL request: {err}")),
    }
}

async fn graphql_get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if req.query_string().is_empty() {
        return ide().await;
    }
    if let Some(refused) = credentials_in_url(&req) {
        return refused;
    }
    match async_graphql::http::parse_query_string(req.query_string()) {
        Ok(request) if lacks_query(&request) => bad_request(NO_QUERY),
        Ok(mut request) => {
            if let Some(refused) = resolve_persisted(&req, &state, std::iter::once(&mut request)) {
                return refused;
            }
            // The nesting check comes before the parse, as on every path.
            if let Err(err) = check_nesting(&request.query, state.max_nesting) {
                let refused = async_graphql::Response::from_errors(vec![err]);
                return respond(
                    Media::of(&req),
                    &async_graphql::BatchResponse::Single(refused),
                );
            }
            // A document that does not parse goes on, to be reported with
            // the usual parse error.
            if request.parsed_query().is_ok_and(has_mutation) {
                return graphql_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "BAD_REQUEST",
                    "mutations must be sent with POST; GET only runs queries",
                );
            }
            execute(&req, &state, async_graphql::BatchRequest::Single(request)).await
        }
        Err(err) => bad_request(&format!("the query string is not a GraphQL request: {err}")),
    }
}

/// Subscriptions: the same endpoint, upgraded to a WebSocket.
async fn graphql_ws(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    if let Some(refused) = credentials_in_url(&req) {
        return Ok(refused);
    }
    crate::live::ws::serve(
        &req,
        body,
        state.schemas.full.clone(),
        crate::live::ws::ConnectionDeps {
            db: state.db.clone(),
            auth: state.auth.clone(),
            bus: state.bus.clone(),
            connections: Arc::clone(&state.connections),
            limits: state.live_limits,
            client: client_address(&req, state.trust_forwarded_for),
        },
    )
}

fn bad_request(message: &str) -> HttpResponse {
    graphql_error(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
}

/// A GraphQL-shaped error answered with an HTTP status of its own.
fn graphql_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response.insert_header((header::ALLOW, "POST"));
    }
    response.json(serde_json::json!({
        "errors": [{"message": message, "extensions": {"code": code}}]
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

/// Prometheus metrics, when `LEADRANK_METRICS_TOKEN` is set and sent as
/// the bearer token; 404 when it is not set, so the endpoint does not show.
async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    use subtle::ConstantTimeEq;
    let Some(expected) = &state.metrics_token else {
        return HttpResponse::NotFound().finish();
    };
    let sent = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let matches: bool = sent.as_bytes().ct_eq(expected.expose().as_bytes()).into();
    if !matches {
        return HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
            .finish();
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render(&state.db).await)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_the_work_is_caught_and_reported() {
        let outcome = guarded(
            async {
                let pages: Vec<u32> = Vec::new();
                // A stand-in for a resolver bug: indexing past the end.
                #[allow(clippy::indexing_slicing)]
                pages[3]
            },
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(outcome, Err(Stopped::Panicked));
    }

    #[tokio::test]
    async fn work_past_its_deadline_is_stopped() {
        let outcome = guarded(std::future::pending::<()>(), Duration::from_millis(20)).await;
        assert_eq!(outcome, Err(Stopped::Deadline));
        assert_eq!(guarded(async { 7 }, Duration::from_secs(5)).await, Ok(7));
    }
}

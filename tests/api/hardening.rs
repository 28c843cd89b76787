//! Attacks on availability, replayed over HTTP: each request that used to
//! crash or stall the server is refused with a code the sender can read,
//! and `/healthz` keeps answering during and after it.

use std::time::Duration;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, TransactionTrait,
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::{
    helpers::{Connection, GraphqlErrors, Introspected, TestApp, parse_answer},
    helpers::{spawn_app, spawn_app_with, spawn_quiet_app},
    live::Subscriber,
};

/// Reads a body this file got by hand (a batch's answer, a GET, a refused
/// POST) as the typed client reads an answer: `Ok(data)` or its errors.
fn answer<T: DeserializeOwned>(body: &Value) -> Result<T, GraphqlErrors> {
    parse_answer("(sent by hand)", body.clone())
}

/// The body is refused with the error `code`, and its message says `says`.
fn assert_refused(body: &Value, code: &str, says: &str) {
    let refused = answer::<Value>(body).expect_err("the request is refused");
    assert_eq!(refused.code(), code, "{body}");
    assert!(refused.message().contains(says), "{body}");
}

/// `/healthz` answers 200 with a database that answers too: the server
/// has neither crashed nor wedged. How fast is not asserted: a second on
/// a machine other tests share is no promise, and the checks that matter
/// are made while an attack is still in flight (see [`while_healthy`]).
/// The 30 s only keeps a wedged server from hanging the test run.
pub(crate) async fn assert_healthy(app: &TestApp) {
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("/healthz answers");
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body, json!({"status": "ok", "database": "ok"}));
}

/// Checks health three times in a row while `attack` runs, then once more
/// after it, and returns what the attack got.
pub(crate) async fn while_healthy<T>(app: &TestApp, attack: impl Future<Output = T>) -> T {
    let (answer, ()) = tokio::join!(attack, async {
        for _ in 0..3 {
            assert_healthy(app).await;
        }
    });
    assert_healthy(app).await;
    answer
}

/// Posts any JSON body and returns the status and the JSON answer,
/// whatever the status.
async fn post(app: &TestApp, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = app
        .client
        .post(format!("{}/graphql", app.address))
        .timeout(Duration::from_secs(30))
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

async fn get(app: &TestApp, query_string: &str) -> reqwest::Response {
    app.client
        .get(format!("{}/graphql?{query_string}", app.address))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the server answers")
}

/// `{ me(x: {a:{a:…1…}}) { id } }` with `levels` nested object literals.
fn nested_argument(levels: usize) -> String {
    format!(
        "{{ me(x: {}1{}) {{ id }} }}",
        "{a:".repeat(levels),
        "}".repeat(levels)
    )
}

/// The reported fragment chain: each level spreads the next twice.
fn doubling_fragments(levels: usize) -> String {
    let mut query = String::from("query{...F0}");
    for level in 0..levels - 1 {
        query.push_str(&format!(
            " fragment F{level} on Query{{...F{n} ...F{n}}}",
            n = level + 1
        ));
    }
    query.push_str(&format!(" fragment F{} on Query{{__typename}}", levels - 1));
    query
}

// 1. Nesting that would overflow the parser's stack.

#[tokio::test]
async fn a_document_nested_1500_levels_deep_is_refused_before_it_is_parsed() {
    let app = spawn_app().await;
    let attack = json!({"query": nested_argument(1_500)});
    assert!(attack.to_string().len() < 7_000);

    let answers = while_healthy(&app, async {
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(post(&app, None, &attack).await);
        }
        answers
    })
    .await;

    for (status, body) in answers {
        assert_eq!(status, 200);
        // Refused before parsing: it carries no data at all.
        let refused = answer::<Value>(&body).expect_err("too deep");
        assert!(refused.has_no_data(), "{body}");
        assert_refused(&body, "QUERY_TOO_DEEP", "more than 64 levels");
    }
}

#[tokio::test]
async fn a_document_nested_right_at_the_limit_is_parsed_without_harm() {
    let app = spawn_app().await;
    // The operation's braces and the parentheses take two of the 64 levels.
    let (_, body) = post(&app, None, &json!({"query": nested_argument(62)})).await;
    // Parsed and validated: the argument is unknown, which is all that is
    // wrong with it.
    let refused = answer::<Value>(&body).expect_err("an unknown argument");
    assert_ne!(refused.code(), "QUERY_TOO_DEEP", "{body}");
    assert_eq!(refused.code(), "GRAPHQL_VALIDATION_FAILED", "{body}");

    let (_, body) = post(&app, None, &json!({"query": nested_argument(63)})).await;
    let refused = answer::<Value>(&body).expect_err("one level too deep");
    assert_eq!(refused.code(), "QUERY_TOO_DEEP", "{body}");
    assert_healthy(&app).await;
}

#[tokio::test]
async fn brackets_inside_strings_or_comments_do_not_count_as_nesting() {
    let app = spawn_app().await;
    let braces = "{".repeat(500);
    let query = format!("# {braces}\n{{ me(a: \"{braces}\", b: \"\"\"{braces}\"\"\") {{ id }} }}");
    let (_, body) = post(&app, None, &json!({"query": query})).await;
    // Past the nesting check: the parsed document is refused by validation.
    let refused = answer::<Value>(&body).expect_err("unknown arguments");
    assert_eq!(refused.code(), "GRAPHQL_VALIDATION_FAILED", "{body}");
}

#[tokio::test]
async fn a_deeply_nested_document_is_refused_over_every_transport() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let query = nested_argument(1_500);

    let response = get(&app, &format!("query={}", encode(&query))).await;
    let body: Value = response.json().await.unwrap();
    let refused = answer::<Value>(&body).expect_err("too deep over GET");
    assert_eq!(refused.code(), "QUERY_TOO_DEEP", "{body}");

    let mut subscriber = Subscriber::start(&app, &acme.token, &query, json!({})).await;
    let message = subscriber
        .next(Duration::from_secs(5))
        .await
        .expect("the server answers the subscription");
    let refused = answer::<Value>(&message).expect_err("too deep over a subscription");
    assert_eq!(refused.code(), "QUERY_TOO_DEEP", "{message}");
    assert_healthy(&app).await;
}

#[tokio::test]
async fn deeply_nested_variables_are_refused_by_the_json_parser() {
    let app = spawn_app().await;
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let body =
        format!(r#"{{"query": "query($x: JSON) {{ __typename }}", "variables": {{"x": {deep}}}}}"#);
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_refused(&body, "BAD_REQUEST", "recursion limit");
    assert_healthy(&app).await;
}

// 2. Fragments that expand exponentially.

#[tokio::test]
async fn a_doubling_fragment_chain_is_refused_before_validation_expands_it() {
    let app = spawn_app().await;
    let attack = json!({"query": doubling_fragments(24)});
    assert!(attack.to_string().len() < 1_100);

    // Four at once: two of the unguarded kind stalled /healthz.
    let answers = while_healthy(&app, async {
        let sent: Vec<_> = (0..4).map(|_| post(&app, None, &attack)).collect();
        futures_util::future::join_all(sent).await
    })
    .await;

    for (status, body) in answers {
        assert_eq!(status, 200);
        assert_refused(&body, "QUERY_TOO_LARGE", "8388608 fields");
    }
}

#[tokio::test]
async fn a_fragment_that_spreads_itself_is_refused_before_validation_follows_it() {
    let app = spawn_app().await;
    let query =
        "{ ...A } fragment A on Query { ...B ...B __typename } fragment B on Query { ...A ...A }";
    let (_, body) = while_healthy(&app, post(&app, None, &json!({ "query": query }))).await;
    assert_refused(&body, "GRAPHQL_VALIDATION_FAILED", "spreads itself");
}

#[tokio::test]
async fn too_many_fragments_are_refused() {
    let app = spawn_app_with(&[("LEADRANK_MAX_QUERY_FRAGMENTS", "3")]).await;
    let fragments: String = (0..4)
        .map(|n| format!(" fragment F{n} on Query {{ __typename }}"))
        .collect();
    let spreads: String = (0..4).map(|n| format!("...F{n} ")).collect();
    let (_, body) = post(
        &app,
        None,
        &json!({"query": format!("{{ {spreads} }}{fragments}")}),
    )
    .await;
    assert_refused(&body, "QUERY_TOO_LARGE", "at most 3 are allowed");
}

#[tokio::test]
async fn the_operations_of_a_batch_share_one_field_allowance() {
    let app = spawn_app_with(&[("LEADRANK_MAX_QUERY_FIELDS", "10")]).await;
    let four_fields = json!({"query": "{ __typename a: __typename b: __typename c: __typename }"});
    let (status, body) = post(&app, None, &json!([four_fields, four_fields, four_fields])).await;
    assert_eq!(status, 200);
    let answers = body.as_array().expect("one answer per operation");
    assert_eq!(answers.len(), 3, "{body}");
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Typenames {
        __typename: String,
        a: String,
        b: String,
        c: String,
    }
    for passed in &answers[..2] {
        let names: Typenames =
            answer(passed).unwrap_or_else(|e| panic!("within the allowance: {e}"));
        for name in [&names.__typename, &names.a, &names.b, &names.c] {
            assert_eq!(name, "Query", "{body}");
        }
    }
    let refused = answer::<Value>(&answers[2]).expect_err("past the allowance");
    assert_eq!(refused.code(), "QUERY_TOO_LARGE", "{body}");
    assert!(refused.message().contains("12 fields"), "{body}");
}

// 3. Cost: aliases, counts, analytics, batches, rate and deadline.

#[tokio::test]
async fn ten_batches_of_ten_thousand_me_aliases_are_refused_at_once() {
    // On a slow machine the pollers alone ran hundreds of statements
    // while the attack was counted.
    let app = spawn_quiet_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let manager = app.user_with_role(&acme, "MANAGER").await;
    let aliases: String = (0..9_990).map(|n| format!("m{n}: me {{ id }} ")).collect();
    let operation = json!({"query": format!("{{ {aliases} }}")});
    let batch = Value::Array(vec![operation; 10]);

    let before = app.queries.get();
    let (status, body) = while_healthy(&app, post(&app, Some(&manager), &batch)).await;
    assert_eq!(status, 200);
    let answers = body.as_array().expect("one answer per operation");
    assert_eq!(answers.len(), 10, "{body}");
    for each in answers {
        let refused = answer::<Value>(each).expect_err("too many aliases");
        assert_eq!(refused.code(), "QUERY_TOO_LARGE", "{each}");
        assert!(refused.message().contains("at most 30 aliases"), "{each}");
    }
    // Refused before anything ran: not the 99,900 lookups of the attack.
    // The health checks beside it and the token's session check may run
    // a few statements each.
    let ran = app.queries.get() - before;
    assert!(ran < 50, "the refused batch ran {ran} statements");
}

#[tokio::test]
async fn thousands_of_total_count_aliases_never_reach_the_database() {
    let app = spawn_quiet_app().await;
    let acme = app.sign_up_tenant("acme").await;

    let aliases: String = (0..19_990).map(|n| format!("t{n}: totalCount ")).collect();
    let before = app.queries.get();
    let refused = app
        .refused(
            Some(&acme.token),
            &format!("{{ leads(first: 1) {{ {aliases} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(refused.code(), "QUERY_TOO_LARGE", "{refused}");

    // Spread over fragments to stay under the alias cap, the aliases of
    // one connection still share one count.
    let fragments: String = (0..10)
        .map(|f| {
            let counts: String = (0..30).map(|n| format!("c{f}_{n}: totalCount ")).collect();
            format!(" fragment C{f} on LeadConnection {{ {counts} }}")
        })
        .collect();
    let spreads: String = (0..10).map(|f| format!("...C{f} ")).collect();
    let counted = app.queries.get();
    // Three hundred aliases of one count: read by name, each must be 0.
    let counts: std::collections::BTreeMap<String, i64> = app
        .root(
            Some(&acme.token),
            &format!("{{ leads(first: 1) {{ {spreads} }} }}{fragments}"),
            json!({}),
        )
        .await;
    assert_eq!(counts.len(), 300, "{counts:?}");
    assert_eq!(counts.get("c9_29"), Some(&0), "{counts:?}");
    assert!(counts.values().all(|c| *c == 0), "{counts:?}");
    assert!(app.queries.get() - counted < 100);

    // Many connections, each counted, cost more than a request may.
    let fragments: String = (0..4)
        .map(|f| {
            let connections: String = (0..30)
                .map(|n| format!("l{f}_{n}: leads(first: 1) {{ totalCount }} "))
                .collect();
            format!(" fragment L{f} on Query {{ {connections} }}")
        })
        .collect();
    let refused = app
        .refused(
            Some(&acme.token),
            &format!("{{ ...L0 ...L1 ...L2 ...L3 }}{fragments}"),
            json!({}),
        )
        .await;
    assert_eq!(refused.code(), "QUERY_TOO_COMPLEX", "{refused}");
    assert!(app.queries.get() - before < 300);

    // One count is fine.
    let leads: Connection<Value> = app
        .root(
            Some(&acme.token),
            "{ leads(first: 1) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(leads.total_count, Some(0), "{leads:?}");
    assert_healthy(&app).await;
}

#[tokio::test]
async fn analytics_cost_enough_that_a_query_cannot_repeat_them_many_times() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let repeated = |n: usize| -> String {
        let fields: String = (0..n)
            .map(|i| format!("t{i}: tierDistribution {{ tier count }} "))
            .collect();
        format!("{{ {fields} }}")
    };
    // Five distributions, each under its own alias.
    let counted: std::collections::BTreeMap<String, Vec<TierCount>> =
        app.data(Some(&acme.token), &repeated(5), json!({})).await;
    assert_eq!(counted.len(), 5, "{counted:?}");

    let refused = app
        .refused(Some(&acme.token), &repeated(25), json!({}))
        .await;
    assert_eq!(refused.code(), "QUERY_TOO_COMPLEX", "{refused}");
}

#[tokio::test]
async fn the_operations_of_a_batch_share_one_complexity_budget() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let fields: String = (0..5)
        .map(|i| format!("t{i}: tierDistribution {{ tier count }} "))
        .collect();
    // About 5,000 each: four of them pass the limit of 20,000 together.
    let operation = json!({"query": format!("{{ {fields} }}")});
    let batch = Value::Array(vec![operation; 5]);

    let (status, body) = post(&app, Some(&acme.token), &batch).await;
    assert_eq!(status, 200);
    let answers = body.as_array().expect("one answer per operation");
    assert_eq!(answers.len(), 5, "{body}");
    for passed in &answers[..3] {
        let counted: std::collections::BTreeMap<String, Vec<TierCount>> =
            answer(passed).unwrap_or_else(|e| panic!("within the budget: {e}"));
        assert_eq!(counted.len(), 5, "{body}");
    }
    for refused in &answers[3..] {
        let refused = answer::<Value>(refused).expect_err("past the budget");
        assert_eq!(refused.code(), "QUERY_TOO_COMPLEX", "{body}");
    }
}

#[tokio::test]
async fn a_user_sending_too_fast_is_told_when_to_retry_without_slowing_others() {
    let app = spawn_app_with(&[("LEADRANK_USER_REQUESTS_PER_MINUTE", "5")]).await;
    let acme = app.sign_up_tenant("acme").await;
    // Creating the rep is the owner's first request.
    let rep = app.user_with_role(&acme, "REP").await;
    let me = json!({"query": "{ me { id } }"});
    for _ in 0..4 {
        let (status, body) = post(&app, Some(&acme.token), &me).await;
        assert_eq!(status, 200, "{body}");
    }

    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&acme.token)
        .json(&me)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let header: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let refused = answer::<Value>(&body).expect_err("rate limited");
    assert_eq!(refused.code(), "RATE_LIMITED");
    let retry_after = refused.errors[0]
        .extensions
        .retry_after
        .unwrap_or_else(|| panic!("RATE_LIMITED says when to retry: {body}"));
    // Five a minute refill one every 12 seconds.
    assert!((1..=12).contains(&retry_after), "{body}");
    assert_eq!(header, retry_after);
    assert!(refused.message().contains("try again in"), "{body}");

    let (status, body) = post(&app, Some(&rep), &me).await;
    assert_eq!(status, 200, "another user is not slowed: {body}");
    assert_healthy(&app).await;
}

#[tokio::test]
async fn one_tenant_using_up_its_rate_does_not_slow_another_tenant() {
    let app = spawn_app_with(&[("LEADRANK_TENANT_REQUESTS_PER_MINUTE", "6")]).await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let rep = app.user_with_role(&acme, "REP").await;
    let me = json!({"query": "{ me { id } }"});
    // One request went to creating the rep; five more fill the bucket.
    for token in [&acme.token, &acme.token, &acme.token, &rep, &rep] {
        let (status, body) = post(&app, Some(token), &me).await;
        assert_eq!(status, 200, "{body}");
    }

    let (status, body) = post(&app, Some(&rep), &me).await;
    assert_eq!(status, 429, "{body}");
    assert_refused(&body, "RATE_LIMITED", "your company");

    let (status, body) = post(&app, Some(&globex.token), &me).await;
    assert_eq!(status, 200, "{body}");
    let me: Me = answer(&body).unwrap_or_else(|e| panic!("globex is served: {e}"));
    assert!(!me.me.id.is_empty(), "{body}");
}

#[tokio::test]
async fn a_request_past_its_deadline_is_cancelled_with_a_timeout_answer() {
    // No background pollers: on SQLite each of their writes would queue
    // behind the held lock for the 10 s busy timeout, holding a pooled
    // connection, and /healthz's ping waited for one. That, not the
    // request's deadline, made the health checks below slow.
    let app = spawn_app_with(&[
        ("LEADRANK_REQUEST_TIMEOUT_SECS", "1"),
        ("LEADRANK_WEBHOOK_WORKER", "false"),
        ("LEADRANK_LIVE_UPDATES", "false"),
    ])
    .await;
    let acme = app.sign_up_tenant("acme").await;
    // Another connection holds the teams table, so creating a team waits on
    // the database far longer than the deadline. The health checks run
    // while it is held: a request stuck on the database does not take
    // /healthz down with it.
    let holder = app.system_db.begin().await.unwrap();
    let hold = match app.db.get_database_backend() {
        DbBackend::Postgres => "LOCK TABLE teams IN ACCESS EXCLUSIVE MODE",
        _ => "CREATE TABLE hold_the_write_lock (x INTEGER)",
    };
    holder.execute_unprepared(hold).await.unwrap();

    let (status, body) = while_healthy(
        &app,
        post(
            &app,
            Some(&acme.token),
            &json!({"query": "mutation { createTeam(input: {name: \"Waiting\"}) { team { id } } }"}),
        ),
    )
    .await;
    holder.rollback().await.unwrap();

    assert_eq!(status, 503, "{body}");
    assert_refused(&body, "TIMEOUT", "longer than 1 s ");
    assert_healthy(&app).await;
}

// 13. HTTP hygiene.

#[tokio::test]
async fn get_never_runs_a_mutation() {
    let app = spawn_app().await;
    let sign_up = "mutation { signUp(input: {tenantName: \"Evil\", tenantSlug: \"evil\", email: \"e@evil.test\", password: \"correct horse battery staple\", displayName: \"E\"}) { accessToken } }";
    let response = get(&app, &format!("query={}", encode(sign_up))).await;
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let body: Value = response.json().await.unwrap();
    assert_refused(&body, "BAD_REQUEST", "POST");

    // Nothing was created: the slug is still free.
    let acme = app.sign_up_tenant("evil").await;
    assert_eq!(acme.slug, "evil");

    // Queries still work over GET.
    let response = get(&app, "query=%7B__typename%7D").await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Typename {
        __typename: String,
    }
    let typename: Typename = answer(&body).unwrap_or_else(|e| panic!("a query over GET: {e}"));
    assert_eq!(typename.__typename, "Query");
}

#[tokio::test]
async fn a_token_in_the_url_is_refused_even_when_it_is_valid() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    let response = get(
        &app,
        &format!("query=%7Bme%7Bid%7D%7D&access_token={}", acme.token),
    )
    .await;
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_refused(&body, "BAD_REQUEST", "Authorization");
    // Refused before GraphQL runs: it carries no data at all.
    let refused = answer::<Value>(&body).expect_err("a token in the URL");
    assert!(refused.has_no_data(), "{body}");

    let response = app
        .client
        .post(format!("{}/graphql?Token={}", app.address, acme.token))
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
}

#[tokio::test]
async fn introspection_is_on_only_in_development() {
    let query = "{ __schema { queryType { name } } }";
    let production = spawn_app_with(&[("LEADRANK_ENV", "production")]).await;
    let shown: Introspected = production.data(None, query, json!({})).await;
    assert!(shown.__schema.is_none(), "{shown:?}");

    let development = spawn_app_with(&[("LEADRANK_ENV", "development")]).await;
    let shown: Introspected = development.data(None, query, json!({})).await;
    let schema = shown
        .__schema
        .expect("introspection answers in development");
    assert_eq!(schema.query_type.name, "Query");
}

#[tokio::test]
async fn a_unique_violation_reaches_the_client_without_the_databases_text() {
    let app = spawn_app().await;
    app.db
        .execute_unprepared("CREATE TABLE uniquely_named (secret_column TEXT UNIQUE)")
        .await
        .unwrap();
    let insert = "INSERT INTO uniquely_named (secret_column) VALUES ('x')";
    app.db.execute_unprepared(insert).await.unwrap();
    let violation = app.db.execute_unprepared(insert).await.unwrap_err();
    assert!(
        violation.to_string().contains("secret_column") || violation.to_string().contains("unique")
    );

    // What the client is shown: the code and the message.
    let error = leadrank::error::AppError::from(violation);
    assert_eq!(error.code(), "CONFLICT");
    let shown = error.to_string();
    for leak in [
        "uniquely_named",
        "secret_column",
        "UNIQUE",
        "unique",
        "duplicate key",
    ] {
        assert!(!shown.contains(leak), "{leak} reached the client: {shown}");
    }
}

fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `{ me { id } }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Me {
    me: crate::helpers::Id,
}

/// `tierDistribution { tier count }`.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TierCount {
    tier: String,
    count: i64,
}

/// What [`import`] asks `importLeads` for.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ImportReport {
    created: i64,
    updated: i64,
    skipped: i64,
    error_count: i64,
    errors: Vec<ImportError>,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportError {
    line: i64,
    field: Option<String>,
    message: String,
}

/// Runs `importLeads` as the tenant's owner (sign-up makes anyone one) and
/// returns its report, which must come.
async fn import(app: &TestApp, token: &str, csv: &str, dry_run: bool) -> ImportReport {
    app.root(
        Some(token),
        "mutation($input: ImportLeadsInput!) { importLeads(input: $input) {
            created updated skipped errorCount errors { line field message } } }",
        json!({"input": {"csv": csv, "dryRun": dry_run}}),
    )
    .await
}

/// A few kilobytes of counts used to become millions of activities in
/// memory: a row holds at most 2,000, and no row of this file is written.
#[tokio::test]
async fn counts_that_multiply_into_millions_of_activities_are_refused_row_by_row() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("bomb").await;
    let mut csv = "name,signal:website_visit,signal:email,signal:meeting\n".to_owned();
    for i in 0..340 {
        csv.push_str(&format!("Lead {i},1000,1000,1000\n"));
    }
    assert!(csv.len() < 10_000);

    let report = while_healthy(&app, import(&app, &t.token, &csv, false)).await;

    assert_eq!(report.created, 0, "{report:?}");
    assert_eq!(report.skipped, 340, "{report:?}");
    assert_eq!(report.error_count, 340, "{report:?}");
    assert_eq!(report.errors.len(), 200, "{report:?}");
    assert_eq!(report.errors[0].line, 2, "{report:?}");
    let message = &report.errors[0].message;
    assert!(
        message.contains("3000 activities") && message.contains("at most 2000"),
        "{report:?}"
    );
    let leads: Connection<Value> = app
        .root(Some(&t.token), "{ leads { totalCount } }", json!({}))
        .await;
    assert_eq!(leads.total_count, Some(0), "{leads:?}");
}

/// Rows at the limit add up: past five million activities a file's rows
/// are refused from that line on, and the report says where to split.
#[tokio::test]
async fn a_file_holds_at_most_five_million_activities() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("bomb").await;
    let mut csv = "name,signal:website_visit,signal:email\n".to_owned();
    for i in 0..2_502 {
        csv.push_str(&format!("Lead {i},1000,1000\n"));
    }

    let report = import(&app, &t.token, &csv, true).await;

    assert_eq!(report.created, 2_500, "{report:?}");
    assert_eq!(report.skipped, 2, "{report:?}");
    let lines: Vec<i64> = report.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [2_502, 2_503], "{report:?}");
    assert!(
        report.errors[0].message.contains("another file"),
        "{report:?}"
    );
}

/// A 2 MB header of unknown columns used to answer with 252 MB of errors:
/// the report lists the first 200 problems and counts the rest.
#[tokio::test]
async fn a_header_of_a_hundred_thousand_unknown_columns_gets_a_short_answer() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("bomb").await;
    let header: Vec<String> = (0..100_000).map(|i| format!("column{i}")).collect();
    let csv = format!("name,{}\nAna,{}\n", header.join(","), ",".repeat(99_999));
    assert!(csv.len() > 1_000_000);

    // The whole body, as sent: its size is what this is about.
    let query = "mutation($input: ImportLeadsInput!) { importLeads(input: $input) {
        created updated skipped errorCount errors { line field message } } }";
    let body = while_healthy(
        &app,
        app.graphql(
            Some(&t.token),
            query,
            json!({"input": {"csv": csv, "dryRun": false}}),
        ),
    )
    .await;
    assert!(body.to_string().len() < 100_000, "the answer stays short");

    let report: ImportReport =
        parse_answer::<std::collections::BTreeMap<String, ImportReport>>(query, body)
            .unwrap_or_else(|e| panic!("importLeads failed: {e}"))
            .remove("importLeads")
            .expect("the report");
    assert_eq!(report.error_count, 100_000, "{report:?}");
    assert_eq!(report.errors.len(), 200);
    assert_eq!(report.skipped, 1);
}

/// Twenty fields of two hundred options each made 4,030 columns and a
/// training that ran 143 s on the runtime that answers requests: the
/// columns are capped, and the server answers while the model trains.
#[tokio::test]
async fn a_tenant_of_many_many_option_fields_trains_on_a_bounded_model() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("wide").await;
    let options: Vec<String> = (0..200).map(|i| format!("o{i}")).collect();
    let keys: Vec<String> = (0..20).map(|i| format!("wide{i}")).collect();
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Upserted {
        field: Key,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Key {
        key: String,
    }
    for key in &keys {
        let upserted: Upserted = app
            .root(
                Some(&t.token),
                "mutation($input: LeadFieldInput!) { upsertLeadField(input: $input) { field { key } } }",
                json!({"input": {"key": key, "label": key, "type": "CATEGORY", "options": options}}),
            )
            .await;
        assert_eq!(&upserted.field.key, key, "{upserted:?}");
    }
    let mut csv = format!("name,status,closed_at,{}\n", keys.join(","));
    let closed = (chrono::Utc::now() - chrono::Duration::days(3)).format("%Y-%m-%d");
    for i in 0..200 {
        let outcome = if i % 2 == 0 { "won" } else { "lost" };
        let cells: Vec<String> = (0..20)
            .map(|f| format!("o{}", (i * 7 + f * 13) % 200))
            .collect();
        csv.push_str(&format!(
            "Lead {i},{outcome},{closed},{}\n",
            cells.join(",")
        ));
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Imported {
        created: i64,
        error_count: i64,
        job_run: Option<crate::helpers::Id>,
    }
    let imported: Imported = app
        .root(
            Some(&t.token),
            "mutation($input: ImportLeadsInput!) { importLeads(input: $input) { created errorCount jobRun { id } } }",
            json!({"input": {"csv": csv}}),
        )
        .await;
    assert_eq!(imported.created, 200, "{imported:?}");
    assert_eq!(imported.error_count, 0, "{imported:?}");

    // The import queued the run that retrains the predictor.
    let queued = imported
        .job_run
        .as_ref()
        .unwrap_or_else(|| panic!("the import queues a run: {imported:?}"));
    let run = while_healthy(&app, app.finished_run(&t.token, &queued.id)).await;
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    let tenant: uuid::Uuid = t.id.parse().expect("a tenant id");
    let predictor = entity::predictor_model::Entity::find()
        .filter(entity::predictor_model::Column::TenantId.eq(tenant))
        .filter(entity::predictor_model::Column::Active.eq(true))
        .one(&app.system_db)
        .await
        .expect("the predictor is read")
        .expect("a predictor was trained");
    let columns = predictor.model["space"]["features"]
        .as_array()
        .map(Vec::len)
        .expect("the predictor lists its features");
    assert!(columns <= 200, "{columns} columns");
    assert!(
        columns > 20,
        "the common options keep their columns: {columns}"
    );
}

//! Taking access away (issue 17, item 10): a changed password, a sign-out,
//! an admin's revocation, a demotion and a deactivation each hold on the
//! very next request, with the token the user already has; and a session
//! cannot be refreshed forever.

use chrono::{Duration, Utc};
use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, error_code, error_field, error_message, spawn_app};

const NEW_PASSWORD: &str = "a much better passphrase";

async fn me(app: &TestApp, token: &str) -> Value {
    app.graphql(Some(token), "{ me { id email role } }", json!({}))
        .await
}

/// Asserts that `token` no longer gets in, with the reason.
async fn assert_shut_out(app: &TestApp, token: &str, says: &str) {
    let body = me(app, token).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    assert!(error_message(&body).contains(says), "{body}");
}

async fn assert_gets_in(app: &TestApp, token: &str) {
    let body = me(app, token).await;
    assert!(body["data"]["me"]["id"].is_string(), "{body}");
}

async fn refresh(app: &TestApp, refresh_token: &str) -> Value {
    app.graphql(
        None,
        "mutation($input: RefreshInput!) { refreshSession(input: $input) { accessToken refreshToken } }",
        json!({"input": {"refreshToken": refresh_token}}),
    )
    .await
}

/// Signs in again as `email`: a second device. Its access and refresh
/// tokens.
async fn second_device(app: &TestApp, slug: &str, email: &str, password: &str) -> (String, String) {
    let body = app.login(slug, email, password).await;
    let login = &body["data"]["login"];
    assert!(login.is_object(), "{body}");
    (
        login["accessToken"].as_str().unwrap().to_owned(),
        login["refreshToken"].as_str().unwrap().to_owned(),
    )
}

async fn change_password(app: &TestApp, token: &str, current: &str, new: &str) -> Value {
    app.graphql(
        Some(token),
        "mutation($input: ChangePasswordInput!) { changePassword(input: $input) { accessToken refreshToken user { email } } }",
        json!({"input": {"currentPassword": current, "newPassword": new}}),
    )
    .await
}

async fn sign_out(app: &TestApp, token: &str, everywhere: bool) -> Value {
    app.graphql(
        Some(token),
        "mutation($input: SignOutInput!) { signOut(input: $input) { sessionsEnded } }",
        json!({"input": {"everywhere": everywhere}}),
    )
    .await
}

async fn revoke_sessions(app: &TestApp, token: &str, user_id: &str) -> Value {
    app.graphql(
        Some(token),
        "mutation($input: RevokeSessionsInput!) { revokeSessions(input: $input) { sessionsEnded user { id } } }",
        json!({"input": {"userId": user_id}}),
    )
    .await
}

async fn update_role(app: &TestApp, token: &str, user_id: &str, role: &str) -> Value {
    app.graphql(
        Some(token),
        "mutation($input: UpdateUserRoleInput!) { updateUserRole(input: $input) { user { id role } } }",
        json!({"input": {"userId": user_id, "role": role}}),
    )
    .await
}

#[tokio::test]
async fn changing_a_password_ends_every_session_but_the_callers_own() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    // A thief signed in elsewhere with the old password.
    let (thief, thief_refresh) = second_device(&app, &acme.slug, &acme.owner_email, PASSWORD).await;

    let wrong = change_password(&app, &acme.token, "not my password", NEW_PASSWORD).await;
    assert_eq!(error_code(&wrong), "BAD_USER_INPUT");
    assert_eq!(error_field(&wrong), "input.currentPassword");
    let weak = change_password(&app, &acme.token, PASSWORD, "short").await;
    assert_eq!(error_field(&weak), "input.newPassword");
    assert_gets_in(&app, &thief).await;

    let changed = change_password(&app, &acme.token, PASSWORD, NEW_PASSWORD).await;
    let fresh = changed["data"]["changePassword"]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{changed}"));

    assert_shut_out(&app, &thief, "ended").await;
    assert_shut_out(&app, &acme.token, "ended").await;
    assert_eq!(
        error_code(&refresh(&app, &thief_refresh).await),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        error_code(&refresh(&app, &acme.refresh_token).await),
        "UNAUTHENTICATED"
    );
    assert_gets_in(&app, fresh).await;
    let old = app.login(&acme.slug, &acme.owner_email, PASSWORD).await;
    assert_eq!(error_code(&old), "UNAUTHENTICATED");
    second_device(&app, &acme.slug, &acme.owner_email, NEW_PASSWORD).await;
    let audited = app.audit_entries(fresh).await;
    assert!(
        audited
            .iter()
            .any(|e| e["action"] == "user.password_changed"),
        "{audited:?}"
    );
}

#[tokio::test]
async fn guessing_the_current_password_with_a_stolen_token_is_throttled() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    for _ in 0..5 {
        let wrong = change_password(&app, &acme.token, "a wrong guess!", NEW_PASSWORD).await;
        assert_eq!(error_code(&wrong), "BAD_USER_INPUT");
    }
    let throttled = change_password(&app, &acme.token, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(error_code(&throttled), "RATE_LIMITED", "{throttled}");
}

#[tokio::test]
async fn signing_out_ends_only_this_session_unless_asked_to_end_them_everywhere() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let (laptop, laptop_refresh) =
        second_device(&app, &acme.slug, &acme.owner_email, PASSWORD).await;
    let (phone, _) = second_device(&app, &acme.slug, &acme.owner_email, PASSWORD).await;

    let out = sign_out(&app, &laptop, false).await;
    assert_eq!(out["data"]["signOut"]["sessionsEnded"], 1, "{out}");
    assert_shut_out(&app, &laptop, "ended").await;
    assert_eq!(
        error_code(&refresh(&app, &laptop_refresh).await),
        "UNAUTHENTICATED"
    );
    assert_gets_in(&app, &phone).await;
    assert_gets_in(&app, &acme.token).await;

    let out = sign_out(&app, &phone, true).await;
    assert_eq!(out["data"]["signOut"]["sessionsEnded"], 2, "{out}");
    assert_shut_out(&app, &phone, "ended").await;
    assert_shut_out(&app, &acme.token, "ended").await;
    assert_eq!(
        error_code(&refresh(&app, &acme.refresh_token).await),
        "UNAUTHENTICATED"
    );
    // Signing in again works.
    let (again, _) = second_device(&app, &acme.slug, &acme.owner_email, PASSWORD).await;
    assert_gets_in(&app, &again).await;
}

#[tokio::test]
async fn a_rep_whose_sessions_an_admin_ended_is_refused_at_once() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let (rep_id, rep) = app.member(&acme, "rep@acme.test", "REP", &[]).await;
    let (_, rep_refresh) = second_device(&app, &acme.slug, "rep@acme.test", PASSWORD).await;
    let (admin_id, admin) = app.member(&acme, "admin@acme.test", "ADMIN", &[]).await;

    // A rep may not end anyone else's sessions, an admin not an owner's,
    // and another company's admin does not see the rep at all.
    let refused = revoke_sessions(&app, &rep, &admin_id).await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let refused = revoke_sessions(&app, &admin, &acme.owner_id).await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let refused = revoke_sessions(&app, &globex.token, &rep_id).await;
    assert_eq!(error_code(&refused), "NOT_FOUND");
    assert_gets_in(&app, &rep).await;

    let revoked = revoke_sessions(&app, &admin, &rep_id).await;
    assert_eq!(
        revoked["data"]["revokeSessions"]["sessionsEnded"], 2,
        "{revoked}"
    );
    assert_shut_out(&app, &rep, "ended").await;
    assert_eq!(
        error_code(&refresh(&app, &rep_refresh).await),
        "UNAUTHENTICATED"
    );
    assert_gets_in(&app, &admin).await;
    let audited = app.audit_entries(&acme.token).await;
    assert!(
        audited
            .iter()
            .any(|e| e["action"] == "user.sessions_revoked" && e["entityId"] == rep_id.as_str()),
        "{audited:?}"
    );
}

#[tokio::test]
async fn a_demoted_admin_loses_admin_rights_on_the_next_request_with_the_same_token() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let (admin_id, admin) = app.member(&acme, "admin@acme.test", "ADMIN", &[]).await;
    let (rep_id, rep) = app.member(&acme, "rep@acme.test", "REP", &[]).await;
    let users = |token: String| {
        let app = &app;
        async move {
            app.graphql(Some(&token), "{ users { id } }", json!({}))
                .await
        }
    };
    assert!(users(admin.clone()).await["data"]["users"].is_array());

    let demoted = update_role(&app, &acme.token, &admin_id, "REP").await;
    assert_eq!(demoted["data"]["updateUserRole"]["user"]["role"], "REP");

    assert_eq!(error_code(&users(admin.clone()).await), "FORBIDDEN");
    assert_eq!(me(&app, &admin).await["data"]["me"]["role"], "REP");
    let audited = app.audit_entries(&acme.token).await;
    let entry = audited
        .iter()
        .find(|e| e["action"] == "user.role_changed")
        .expect("audited");
    assert_eq!(entry["before"]["role"], "ADMIN");
    assert_eq!(entry["after"]["role"], "REP");

    // And a promotion holds at once too.
    update_role(&app, &acme.token, &rep_id, "ADMIN").await;
    assert!(users(rep).await["data"]["users"].is_array());
}

#[tokio::test]
async fn role_changes_follow_the_rules_of_create_user() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let (admin_id, admin) = app.member(&acme, "admin@acme.test", "ADMIN", &[]).await;
    let (rep_id, rep) = app.member(&acme, "rep@acme.test", "REP", &[]).await;

    // Reps and managers change no roles; a rep cannot promote themselves.
    assert_eq!(
        error_code(&update_role(&app, &rep, &rep_id, "ADMIN").await),
        "FORBIDDEN"
    );
    // Only an owner grants OWNER or changes an owner's role.
    assert_eq!(
        error_code(&update_role(&app, &admin, &rep_id, "OWNER").await),
        "FORBIDDEN"
    );
    assert_eq!(
        error_code(&update_role(&app, &admin, &acme.owner_id, "REP").await),
        "FORBIDDEN"
    );
    // Another company's user does not exist.
    assert_eq!(
        error_code(&update_role(&app, &globex.token, &rep_id, "REP").await),
        "NOT_FOUND"
    );
    // The last owner cannot step down...
    let alone = update_role(&app, &acme.token, &acme.owner_id, "ADMIN").await;
    assert_eq!(error_code(&alone), "BAD_USER_INPUT");
    assert_eq!(error_field(&alone), "input.role");
    // ...until there is another.
    assert_eq!(
        update_role(&app, &acme.token, &admin_id, "OWNER").await["data"]["updateUserRole"]["user"]
            ["role"],
        "OWNER"
    );
    let stepped_down = update_role(&app, &acme.token, &acme.owner_id, "ADMIN").await;
    assert_eq!(
        stepped_down["data"]["updateUserRole"]["user"]["role"], "ADMIN",
        "{stepped_down}"
    );
}

#[tokio::test]
async fn a_deactivated_users_token_stops_working_at_once() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let (rep_id, rep) = app.member(&acme, "rep@acme.test", "REP", &[]).await;
    assert_gets_in(&app, &rep).await;

    // What a deactivation does: clear the flag and announce the change in
    // the same transaction, through the one mechanism every access change
    // uses.
    let txn = app.system_db.begin().await.unwrap();
    let backend = txn.get_database_backend();
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        match backend {
            sea_orm::DbBackend::Postgres => "UPDATE users SET active = false WHERE id = $1",
            _ => "UPDATE users SET active = false WHERE id = ?",
        },
        [rep_id.parse::<uuid::Uuid>().unwrap().into()],
    ))
    .await
    .unwrap();
    leadrank::auth::access::commit_change(
        txn,
        acme.id.parse().unwrap(),
        &[rep_id.parse().unwrap()],
        Utc::now(),
    )
    .await
    .unwrap();

    assert_shut_out(&app, &rep, "no longer active").await;
}

#[tokio::test]
async fn a_session_cannot_be_refreshed_past_its_absolute_lifetime() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let rotated = refresh(&app, &acme.refresh_token).await;
    let next = rotated["data"]["refreshSession"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let backdate = |days: i64| {
        let db = app.system_db.clone();
        async move {
            let backend = db.get_database_backend();
            let at = Utc::now() - Duration::days(days);
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                match backend {
                    sea_orm::DbBackend::Postgres => {
                        "UPDATE refresh_sessions SET family_started_at = $1"
                    }
                    _ => "UPDATE refresh_sessions SET family_started_at = ?",
                },
                [at.into()],
            ))
            .await
            .unwrap();
        }
    };

    // Signed in 89 days ago and refreshed since: the family still lives
    // (the default lifetime is 90 days), and rotation keeps its start.
    backdate(89).await;
    let refreshed = refresh(&app, &next).await;
    let last = refreshed["data"]["refreshSession"]["refreshToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{refreshed}"))
        .to_owned();
    backdate(91).await;
    let refused = refresh(&app, &last).await;
    assert_eq!(error_code(&refused), "UNAUTHENTICATED");
    assert!(
        error_message(&refused).contains("maximum lifetime"),
        "{refused}"
    );
}

//! Taking access away (issue 17, item 10): a changed password, a sign-out,
//! an admin's revocation, a demotion and a deactivation each hold on the
//! very next request, with the token the user already has; and a session
//! cannot be refreshed forever.

use chrono::{Duration, Utc};
use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
use serde::Deserialize;
use serde_json::json;

use crate::helpers::{GraphqlErrors, Id, PASSWORD, TestApp, spawn_app};

const NEW_PASSWORD: &str = "a much better passphrase";

/// The signed-in user as `me` shows them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Me {
    id: String,
    email: String,
    role: String,
}

async fn me(app: &TestApp, token: &str) -> Result<Me, GraphqlErrors> {
    app.query_root(Some(token), "{ me { id email role } }", json!({}))
        .await
}

/// Asserts that `token` no longer gets in, with the reason.
async fn assert_shut_out(app: &TestApp, token: &str, says: &str) {
    let refused = me(app, token).await.expect_err("the token is refused");
    assert_eq!(refused.code(), "UNAUTHENTICATED", "{refused}");
    assert!(refused.message().contains(says), "{refused}");
}

async fn assert_gets_in(app: &TestApp, token: &str) {
    let me = me(app, token).await.expect("the token gets in");
    assert!(!me.id.is_empty() && !me.email.is_empty(), "{me:?}");
}

/// A pair of tokens.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Tokens {
    access_token: String,
    refresh_token: String,
}

async fn refresh(app: &TestApp, refresh_token: &str) -> Result<Tokens, GraphqlErrors> {
    app.query_root(
        None,
        "mutation($input: RefreshInput!) { refreshSession(input: $input) { accessToken refreshToken } }",
        json!({"input": {"refreshToken": refresh_token}}),
    )
    .await
}

/// Asserts that `refresh_token` no longer gives a session.
async fn assert_refresh_refused(app: &TestApp, refresh_token: &str) {
    let refused = refresh(app, refresh_token)
        .await
        .expect_err("the refresh token is refused");
    assert_eq!(refused.code(), "UNAUTHENTICATED", "{refused}");
}

/// Signs in again as `email`: a second device. Its access and refresh
/// tokens.
async fn second_device(app: &TestApp, slug: &str, email: &str, password: &str) -> (String, String) {
    let session = app
        .try_login(slug, email, password)
        .await
        .unwrap_or_else(|e| panic!("the second device cannot sign in: {e}"));
    assert_eq!(session.user.email, email);
    (session.access_token, session.refresh_token)
}

async fn change_password(
    app: &TestApp,
    token: &str,
    current: &str,
    new: &str,
) -> Result<Tokens, GraphqlErrors> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Changed {
        access_token: String,
        refresh_token: String,
        user: Email,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Email {
        email: String,
    }
    let changed: Changed = app
        .query_root(
            Some(token),
            "mutation($input: ChangePasswordInput!) { changePassword(input: $input) { accessToken refreshToken user { email } } }",
            json!({"input": {"currentPassword": current, "newPassword": new}}),
        )
        .await?;
    assert!(!changed.user.email.is_empty());
    Ok(Tokens {
        access_token: changed.access_token,
        refresh_token: changed.refresh_token,
    })
}

/// `{ sessionsEnded }`, with the user whose sessions ended when asked.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Ended {
    sessions_ended: i64,
    user: Option<Id>,
}

async fn sign_out(app: &TestApp, token: &str, everywhere: bool) -> Result<Ended, GraphqlErrors> {
    app.query_root(
        Some(token),
        "mutation($input: SignOutInput!) { signOut(input: $input) { sessionsEnded } }",
        json!({"input": {"everywhere": everywhere}}),
    )
    .await
}

async fn revoke_sessions(
    app: &TestApp,
    token: &str,
    user_id: &str,
) -> Result<Ended, GraphqlErrors> {
    app.query_root(
        Some(token),
        "mutation($input: RevokeSessionsInput!) { revokeSessions(input: $input) { sessionsEnded user { id } } }",
        json!({"input": {"userId": user_id}}),
    )
    .await
}

/// The user's role after `updateUserRole`, or why it was refused.
async fn update_role(
    app: &TestApp,
    token: &str,
    user_id: &str,
    role: &str,
) -> Result<String, GraphqlErrors> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Payload {
        user: Changed,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Changed {
        id: String,
        role: String,
    }
    let payload: Payload = app
        .query_root(
            Some(token),
            "mutation($input: UpdateUserRoleInput!) { updateUserRole(input: $input) { user { id role } } }",
            json!({"input": {"userId": user_id, "role": role}}),
        )
        .await?;
    assert_eq!(payload.user.id, user_id);
    Ok(payload.user.role)
}

/// The code `update_role` is refused with.
async fn role_refused(app: &TestApp, token: &str, user_id: &str, role: &str) -> GraphqlErrors {
    update_role(app, token, user_id, role)
        .await
        .expect_err("the role change is refused")
}

#[tokio::test]
async fn changing_a_password_ends_every_session_but_the_callers_own() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    // A thief signed in elsewhere with the old password.
    let (thief, thief_refresh) = second_device(&app, &acme.slug, &acme.owner_email, PASSWORD).await;

    let wrong = change_password(&app, &acme.token, "not my password", NEW_PASSWORD)
        .await
        .expect_err("a wrong current password is refused");
    assert_eq!(wrong.code(), "BAD_USER_INPUT");
    assert_eq!(wrong.field(), "input.currentPassword");
    let weak = change_password(&app, &acme.token, PASSWORD, "short")
        .await
        .expect_err("a weak new password is refused");
    assert_eq!(weak.field(), "input.newPassword");
    assert_gets_in(&app, &thief).await;

    let changed = change_password(&app, &acme.token, PASSWORD, NEW_PASSWORD)
        .await
        .expect("the password changes");
    let fresh = changed.access_token.as_str();

    assert_shut_out(&app, &thief, "ended").await;
    assert_shut_out(&app, &acme.token, "ended").await;
    assert_refresh_refused(&app, &thief_refresh).await;
    assert_refresh_refused(&app, &acme.refresh_token).await;
    assert_gets_in(&app, fresh).await;
    refresh(&app, &changed.refresh_token)
        .await
        .expect("the caller's new session refreshes");
    let old = app
        .try_login(&acme.slug, &acme.owner_email, PASSWORD)
        .await
        .expect_err("the old password is refused");
    assert_eq!(old.code(), "UNAUTHENTICATED");
    second_device(&app, &acme.slug, &acme.owner_email, NEW_PASSWORD).await;
    let audited = app.audit_entries(fresh).await;
    assert!(
        audited.iter().any(|e| e.action == "user.password_changed"),
        "{audited:?}"
    );
}

#[tokio::test]
async fn guessing_the_current_password_with_a_stolen_token_is_throttled() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    for _ in 0..5 {
        let wrong = change_password(&app, &acme.token, "a wrong guess!", NEW_PASSWORD)
            .await
            .expect_err("a wrong guess is refused");
        assert_eq!(wrong.code(), "BAD_USER_INPUT");
    }
    let throttled = change_password(&app, &acme.token, PASSWORD, NEW_PASSWORD)
        .await
        .expect_err("after five guesses even the password waits");
    assert_eq!(throttled.code(), "RATE_LIMITED", "{throttled}");
}

#[tokio::test]
async fn signing_out_ends_only_this_session_unless_asked_to_end_them_everywhere() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let (laptop, laptop_refresh) =
        second_device(&app, &acme.slug, &acme.owner_email, PASSWORD).await;
    let (phone, _) = second_device(&app, &acme.slug, &acme.owner_email, PASSWORD).await;

    let out = sign_out(&app, &laptop, false).await.expect("signed out");
    assert_eq!(out.sessions_ended, 1, "{out:?}");
    assert_shut_out(&app, &laptop, "ended").await;
    assert_refresh_refused(&app, &laptop_refresh).await;
    assert_gets_in(&app, &phone).await;
    assert_gets_in(&app, &acme.token).await;

    let out = sign_out(&app, &phone, true)
        .await
        .expect("signed out everywhere");
    assert_eq!(out.sessions_ended, 2, "{out:?}");
    assert_shut_out(&app, &phone, "ended").await;
    assert_shut_out(&app, &acme.token, "ended").await;
    assert_refresh_refused(&app, &acme.refresh_token).await;
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
    for (token, user, code) in [
        (&rep, &admin_id, "FORBIDDEN"),
        (&admin, &acme.owner_id, "FORBIDDEN"),
        (&globex.token, &rep_id, "NOT_FOUND"),
    ] {
        let refused = revoke_sessions(&app, token, user)
            .await
            .expect_err("the revocation is refused");
        assert_eq!(refused.code(), code, "{refused}");
    }
    assert_gets_in(&app, &rep).await;

    let revoked = revoke_sessions(&app, &admin, &rep_id)
        .await
        .expect("an admin ends a rep's sessions");
    assert_eq!(revoked.sessions_ended, 2, "{revoked:?}");
    assert_eq!(revoked.user, Some(Id { id: rep_id.clone() }));
    assert_shut_out(&app, &rep, "ended").await;
    assert_refresh_refused(&app, &rep_refresh).await;
    assert_gets_in(&app, &admin).await;
    let audited = app.audit_entries(&acme.token).await;
    assert!(
        audited.iter().any(|e| e.action == "user.sessions_revoked"
            && e.entity_id.as_deref() == Some(rep_id.as_str())),
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
            app.query_root::<Vec<Id>>(Some(&token), "{ users { id } }", json!({}))
                .await
        }
    };
    let listed = users(admin.clone()).await.expect("an admin lists users");
    assert_eq!(listed.len(), 3);

    let demoted = update_role(&app, &acme.token, &admin_id, "REP")
        .await
        .expect("the owner demotes the admin");
    assert_eq!(demoted, "REP");

    let refused = users(admin.clone())
        .await
        .expect_err("a rep lists no users");
    assert_eq!(refused.code(), "FORBIDDEN");
    assert_eq!(me(&app, &admin).await.expect("still signed in").role, "REP");
    let audited = app.audit_entries(&acme.token).await;
    let entry = audited
        .iter()
        .find(|e| e.action == "user.role_changed")
        .expect("audited");
    assert_eq!(entry.before["role"], "ADMIN");
    assert_eq!(entry.after["role"], "REP");

    // And a promotion holds at once too.
    update_role(&app, &acme.token, &rep_id, "ADMIN")
        .await
        .expect("the owner promotes the rep");
    users(rep).await.expect("the promoted rep lists users");
}

#[tokio::test]
async fn role_changes_follow_the_rules_of_create_user() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let (admin_id, admin) = app.member(&acme, "admin@acme.test", "ADMIN", &[]).await;
    let (rep_id, rep) = app.member(&acme, "rep@acme.test", "REP", &[]).await;

    // Reps and managers change no roles; a rep cannot promote themselves.
    let refused = role_refused(&app, &rep, &rep_id, "ADMIN").await;
    assert_eq!(refused.code(), "FORBIDDEN");
    // Only an owner grants OWNER or changes an owner's role.
    let refused = role_refused(&app, &admin, &rep_id, "OWNER").await;
    assert_eq!(refused.code(), "FORBIDDEN");
    let refused = role_refused(&app, &admin, &acme.owner_id, "REP").await;
    assert_eq!(refused.code(), "FORBIDDEN");
    // Another company's user does not exist.
    let refused = role_refused(&app, &globex.token, &rep_id, "REP").await;
    assert_eq!(refused.code(), "NOT_FOUND");
    // The last owner cannot step down...
    let alone = role_refused(&app, &acme.token, &acme.owner_id, "ADMIN").await;
    assert_eq!(alone.code(), "BAD_USER_INPUT");
    assert_eq!(alone.field(), "input.role");
    // ...until there is another.
    let promoted = update_role(&app, &acme.token, &admin_id, "OWNER")
        .await
        .expect("the owner makes a second owner");
    assert_eq!(promoted, "OWNER");
    let stepped_down = update_role(&app, &acme.token, &acme.owner_id, "ADMIN")
        .await
        .expect("one of two owners steps down");
    assert_eq!(stepped_down, "ADMIN");
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
    leadrank::service::accounts::access::commit_change(
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
    let next = refresh(&app, &acme.refresh_token)
        .await
        .expect("the refresh token works once")
        .refresh_token;
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
    let last = refresh(&app, &next)
        .await
        .expect("a family of 89 days still refreshes")
        .refresh_token;
    backdate(91).await;
    let refused = refresh(&app, &last)
        .await
        .expect_err("a family of 91 days is over");
    assert_eq!(refused.code(), "UNAUTHENTICATED");
    assert!(refused.message().contains("maximum lifetime"), "{refused}");
}

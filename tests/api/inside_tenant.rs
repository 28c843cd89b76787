//! Leaks inside a tenant (issue 17, item 12): what a rep or a manager may
//! not see of their colleagues' work stays hidden through the side doors
//! too: the duplicate check, a team's members, the funnel, closing pool
//! leads.

use serde::Deserialize;
use serde_json::json;

use crate::helpers::{Member, spawn_app};

#[tokio::test]
async fn a_duplicate_of_a_lead_the_caller_cannot_see_answers_conflict_without_its_name_or_id() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let (ada, ada_token) = app.member(&acme, "ada@acme.test", "REP", &[]).await;
    let (_, bo_token) = app.member(&acme, "bo@acme.test", "REP", &[]).await;
    let secret = app
        .new_lead(
            &acme.token,
            json!({"name": "Secret Deal", "email": "cfo@bigco.example", "phone": "+1 555 0100",
                   "ownerId": ada, "externalId": "CRM-7"}),
        )
        .await;
    let secret_id = secret.id.as_str();

    // Bo probes with Ada's customer's email, phone and external id.
    for probe in [
        json!({"name": "Probe", "email": "cfo@bigco.example"}),
        json!({"name": "Probe", "phone": "+1 555 0100"}),
        json!({"name": "Probe", "externalId": "CRM-7"}),
    ] {
        let refused = app
            .create_lead(&bo_token, probe)
            .await
            .expect_err("a duplicate");
        assert_eq!(refused.code(), "CONFLICT", "{refused}");
        assert!(
            refused.errors[0].extensions.existing_id.is_none(),
            "{refused}"
        );
        let message = refused.message();
        assert!(!message.contains("Secret Deal"), "{message}");
        assert!(!message.contains(secret_id), "{message}");
    }

    // Those who may see the lead are told which it is.
    for token in [&ada_token, &acme.token] {
        let refused = app
            .create_lead(
                token,
                json!({"name": "Again", "email": "cfo@bigco.example"}),
            )
            .await
            .expect_err("a duplicate");
        assert_eq!(refused.code(), "CONFLICT");
        assert_eq!(
            refused.errors[0].extensions.existing_id.as_deref(),
            Some(secret_id)
        );
        assert!(refused.message().contains("Secret Deal"), "{refused}");
    }
}

#[tokio::test]
async fn a_rep_sees_only_themself_among_a_teams_members_as_users_shows_them_nobody() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let east = app.new_team(&acme.token, "East").await;
    let (ada, ada_token) = app.member(&acme, "ada@acme.test", "REP", &[&east]).await;
    app.member(&acme, "bo@acme.test", "REP", &[&east]).await;
    let (_, boss) = app
        .member(&acme, "boss@acme.test", "MANAGER", &[&east])
        .await;
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Seen {
        teams: Vec<Team>,
        me: Me,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Team {
        name: String,
        members: Vec<Member>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Me {
        teams: Vec<MyTeam>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct MyTeam {
        members: Vec<Email>,
    }
    #[derive(Debug, PartialEq, Eq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Email {
        email: String,
    }
    let members = |token: String| {
        let app = &app;
        async move {
            app.data::<Seen>(
                Some(&token),
                "{ teams { name members { id email } } me { teams { members { email } } } }",
                json!({}),
            )
            .await
        }
    };

    let seen = members(ada_token.clone()).await;
    assert_eq!(seen.teams.len(), 1, "{seen:?}");
    assert_eq!(seen.teams[0].name, "East");
    assert_eq!(
        seen.teams[0].members,
        [Member {
            id: ada.clone(),
            email: "ada@acme.test".into()
        }]
    );
    assert_eq!(
        seen.me.teams[0].members,
        [Email {
            email: "ada@acme.test".into()
        }]
    );
    // The users rule itself, unchanged.
    let users = app
        .refused(Some(&ada_token), "{ users { id } }", json!({}))
        .await;
    assert_eq!(users.code(), "FORBIDDEN");

    // A manager still sees the whole team.
    let seen = members(boss).await;
    assert_eq!(seen.teams[0].members.len(), 3, "{seen:?}");
}

#[tokio::test]
async fn a_managers_funnel_counts_only_their_teams_leads() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let east = app.new_team(&acme.token, "East").await;
    let west = app.new_team(&acme.token, "West").await;
    let (ed, _) = app.member(&acme, "ed@acme.test", "REP", &[&east]).await;
    let (wes, _) = app.member(&acme, "wes@acme.test", "REP", &[&west]).await;
    let (_, boss) = app
        .member(&acme, "boss@acme.test", "MANAGER", &[&east])
        .await;
    // East's: one of Ed's, one filed under the team. Not East's: one of
    // Wes's and one in the pool.
    app.new_lead(&acme.token, json!({"name": "Ed's", "ownerId": ed}))
        .await;
    app.new_lead(&acme.token, json!({"name": "East's", "teamId": east}))
        .await;
    app.new_lead(&acme.token, json!({"name": "Wes's", "ownerId": wes}))
        .await;
    app.new_lead(&acme.token, json!({"name": "Pool"})).await;
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Pipeline {
        id: String,
        is_default: bool,
    }
    let pipelines: Vec<Pipeline> = app
        .root(
            Some(&acme.token),
            "{ pipelines { id isDefault } }",
            json!({}),
        )
        .await;
    let pipeline = pipelines
        .into_iter()
        .find(|p| p.is_default)
        .expect("a default pipeline")
        .id;
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entered {
        entered: i64,
    }
    let entered = |token: String| {
        let app = &app;
        let pipeline = pipeline.clone();
        async move {
            let stages: Vec<Entered> = app
                .root(
                    Some(&token),
                    "query($p: ID!) { funnel(pipelineId: $p) { entered } }",
                    json!({"p": pipeline}),
                )
                .await;
            stages.first().expect("a first stage").entered
        }
    };

    assert_eq!(entered(boss).await, 2);
    assert_eq!(entered(acme.token.clone()).await, 4);
}

#[tokio::test]
async fn a_rep_cannot_close_a_pool_lead_but_can_once_it_is_theirs() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let (ada, ada_token) = app.member(&acme, "ada@acme.test", "REP", &[]).await;
    let pool = app.new_lead(&acme.token, json!({"name": "Pool"})).await;
    let id = pool.id.as_str();
    let close = |token: String| {
        let app = &app;
        async move {
            app.lead_mutation(
                &token,
                "closeLead",
                "CloseLeadInput",
                json!({"id": id, "outcome": "LOST", "reason": "not mine to close"}),
            )
            .await
        }
    };

    let refused = close(ada_token.clone())
        .await
        .expect_err("a pool lead is not Ada's to close");
    assert_eq!(refused.code(), "FORBIDDEN", "{refused}");
    let still = app.lead_by_id(&acme.token, id).await;
    assert_eq!(still.status, "OPEN");

    let taken = app
        .lead_mutation(
            &ada_token,
            "assignLead",
            "AssignLeadInput",
            json!({"id": id, "ownerId": ada}),
        )
        .await
        .unwrap_or_else(|e| panic!("Ada takes the lead: {e}"));
    assert_eq!(taken.owner_id(), Some(ada.as_str()), "{taken:?}");
    let closed = close(ada_token)
        .await
        .unwrap_or_else(|e| panic!("Ada closes her own lead: {e}"));
    assert_eq!(closed.status, "LOST", "{closed:?}");
}

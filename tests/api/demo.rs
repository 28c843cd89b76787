//! `leadrank demo`: a new tenant full of scored leads, whose people can sign
//! in with the password it prints.

use std::collections::BTreeSet;

use entity::{activity, enums::LeadStatus, lead};
use leadrank::{
    cli::demo::{self, DemoOptions, DemoSummary},
    config::Settings,
};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

/// Runs the demo loader beside the server; the error is its message.
async fn generate(app: &TestApp, slug: &str, leads: u64) -> Result<DemoSummary, String> {
    let settings = Settings::from_lookup(|_| None).unwrap();
    let options = DemoOptions {
        tenant_slug: slug.into(),
        leads,
        activities_per_lead: 10,
        seed: 7,
        reps: 6,
        now: chrono::Utc::now(),
    };
    demo::generate(&app.db, &demo::auth(&settings).unwrap(), options)
        .await
        .map_err(|err| format!("{err:#}"))
}

#[tokio::test]
async fn a_demo_tenants_people_sign_in_to_scored_leads_in_several_tiers() {
    let app = spawn_app().await;

    let summary = generate(&app, "demo", 300).await.unwrap();

    assert_eq!(
        lead::Entity::find().count(&app.system_db).await.unwrap(),
        300
    );
    let tiers: BTreeSet<String> = lead::Entity::find()
        .select_only()
        .column(lead::Column::Tier)
        .into_tuple()
        .all(&app.system_db)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert!(tiers.len() >= 3, "tiers: {tiers:?}");
    for status in [LeadStatus::Won, LeadStatus::Lost] {
        let closed = lead::Entity::find()
            .filter(lead::Column::Status.eq(status))
            .count(&app.system_db)
            .await
            .unwrap();
        assert!(closed > 0, "no {status:?} leads");
    }
    let activities = activity::Entity::find()
        .count(&app.system_db)
        .await
        .unwrap();
    assert!(
        (2_100..=3_900).contains(&activities),
        "{activities} activities"
    );
    assert_eq!(summary.activities, activities);

    let password = summary.password.expose();
    for email in [
        summary.owner_email.clone(),
        summary.email("manager4"),
        summary.email("rep6"),
    ] {
        let session = app
            .try_login("demo", &email, password)
            .await
            .unwrap_or_else(|e| panic!("{email} cannot sign in: {e}"));
        assert_eq!(session.user.email, email);
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Slug {
            slug: String,
        }
        let tenant: Slug = app
            .root(
                Some(&session.access_token),
                "{ tenant { slug } }",
                json!({}),
            )
            .await;
        assert_eq!(tenant.slug, "demo", "{tenant:?}");
    }
    assert!(summary.report().contains(password));
}

#[tokio::test]
async fn a_demo_refuses_a_tenant_slug_that_is_taken() {
    let app = spawn_app().await;
    app.sign_up_tenant("taken").await;

    let err = generate(&app, "taken", 10).await.err().unwrap();

    assert!(err.contains("\"taken\" already exists"), "{err}");
    assert_eq!(lead::Entity::find().count(&app.system_db).await.unwrap(), 0);
}

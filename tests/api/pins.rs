//! Manual tier pins: a manager (or a rep, for their own leads, when the
//! company allows it) holds a lead at a tier with a reason until a date;
//! the score is still computed, the explanation says who and why, the pin
//! lapses by itself when the nightly job runs past it, and every pin and
//! unpin is audited. A second tenant sees none of it.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use entity::{lead_event, lead_facts};
use leadrank::jobs::rescore::{self, Options, Outcome, Trigger};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, sea_query::Expr};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    helpers::{
        AppliedOverride, AuditEntry, Connection, GraphqlErrors, Id, PASSWORD, Tenant, TestApp,
    },
    helpers::{spawn_app, weak},
};

const PIN_FIELDS: &str = "id score tier version
    pin { tier reason expiresAt pinnedBy { id displayName } }
    scoreBreakdown { total tier baseTier overrides { rule effect reason } }
    scoreHistory(first: 1) { oldTier newTier reason }";

const REASON: &str = "met the CFO, budget confirmed";

/// A lead as [`PIN_FIELDS`] asks for it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PinnedLead {
    id: String,
    score: f64,
    tier: String,
    version: i64,
    pin: Option<Pin>,
    score_breakdown: PinBreakdown,
    score_history: Vec<TierChange>,
}

/// `pin { tier reason expiresAt pinnedBy { id displayName } }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Pin {
    tier: String,
    reason: String,
    expires_at: Option<String>,
    pinned_by: PinnedBy,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PinnedBy {
    id: String,
    display_name: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PinBreakdown {
    total: f64,
    tier: String,
    base_tier: String,
    overrides: Vec<AppliedOverride>,
}

/// `scoreHistory { oldTier newTier reason }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TierChange {
    old_tier: Option<String>,
    new_tier: String,
    reason: String,
}

impl PinnedLead {
    /// The PIN override of its breakdown, if any.
    fn pin_override(&self) -> Option<&AppliedOverride> {
        self.score_breakdown
            .overrides
            .iter()
            .find(|o| o.rule == "PIN")
    }
}

/// `{ lead { … } }` of the pin mutations.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    lead: PinnedLead,
}

/// A user of `tenant` with a display name, signed in: (id, token).
async fn person(
    app: &TestApp,
    tenant: &Tenant,
    name: &str,
    role: &str,
    teams: &[&str],
) -> (String, String) {
    let email = format!(
        "{}@{}.test",
        name.to_lowercase().replace(' ', "."),
        tenant.slug
    );
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Created {
        user: Id,
    }
    let created: Created = app
        .root(
            Some(&tenant.token),
            "mutation($input: CreateUserInput!) { createUser(input: $input) { user { id } } }",
            json!({"input": {"email": email, "password": PASSWORD, "displayName": name,
                             "role": role, "teamIds": teams}}),
        )
        .await;
    let session = app
        .try_login(&tenant.slug, &email, PASSWORD)
        .await
        .unwrap_or_else(|e| panic!("the new user signs in: {e}"));
    (created.user.id, session.access_token)
}

/// A team of `tenant` with `members`; its id.
async fn team(app: &TestApp, tenant: &Tenant, name: &str, members: &[&str]) -> String {
    app.try_create_team(&tenant.token, name, members)
        .await
        .unwrap_or_else(|e| panic!("createTeam failed: {e}"))
        .id
}

/// A whole-second time `days` from now, as the API echoes it.
fn days_from_now(days: i64) -> DateTime<Utc> {
    (Utc::now() + Duration::days(days)).trunc_subsecs(0)
}

fn parse_time(value: Option<&str>) -> DateTime<Utc> {
    value
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("a time, got {value:?}"))
}

impl TestApp {
    async fn pin(
        &self,
        token: &str,
        lead: &str,
        tier: &str,
        reason: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<PinnedLead, GraphqlErrors> {
        let payload: Payload = self
            .query_root(
                Some(token),
                &format!(
                    "mutation($input: PinLeadTierInput!) {{ pinLeadTier(input: $input) {{ lead {{ {PIN_FIELDS} }} }} }}"
                ),
                json!({"input": {"id": lead, "tier": tier, "reason": reason,
                                 "expiresAt": expires_at.map(|t| t.to_rfc3339())}}),
            )
            .await?;
        Ok(payload.lead)
    }

    /// Pins a lead's tier, which must succeed; returns the lead.
    async fn pinned(
        &self,
        token: &str,
        lead: &str,
        tier: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> PinnedLead {
        self.pin(token, lead, tier, REASON, expires_at)
            .await
            .unwrap_or_else(|e| panic!("pinLeadTier failed: {e}"))
    }

    /// Unpins a lead: the lead, or why it was refused.
    async fn unpin(&self, token: &str, lead: &str) -> Result<PinnedLead, GraphqlErrors> {
        let payload: Payload = self
            .query_root(
                Some(token),
                &format!(
                    "mutation($input: UnpinLeadTierInput!) {{ unpinLeadTier(input: $input) {{ lead {{ {PIN_FIELDS} }} }} }}"
                ),
                json!({"input": {"id": lead}}),
            )
            .await?;
        Ok(payload.lead)
    }

    /// Unpins a lead, which must succeed.
    async fn unpinned(&self, token: &str, lead: &str) -> PinnedLead {
        self.unpin(token, lead)
            .await
            .unwrap_or_else(|e| panic!("unpinLeadTier failed: {e}"))
    }

    async fn pinned_lead(&self, token: &str, id: &str) -> PinnedLead {
        self.root(
            Some(token),
            &format!("query($id: ID!) {{ lead(id: $id) {{ {PIN_FIELDS} }} }}"),
            json!({ "id": id }),
        )
        .await
    }

    /// Sets whether reps may pin: the setting as saved, or why it was refused.
    async fn allow_reps_to_pin(&self, token: &str, allowed: bool) -> Result<bool, GraphqlErrors> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Updated {
            tenant: RepsMayPin,
        }
        let updated: Updated = self
            .query_root(
                Some(token),
                "mutation($input: UpdateTenantSettingsInput!) { updateTenantSettings(input: $input) { tenant { repsMayPin } } }",
                json!({"input": {"repsMayPin": allowed}}),
            )
            .await?;
        Ok(updated.tenant.reps_may_pin)
    }

    /// The tenant's audit entries with `action`, newest first.
    async fn audited(&self, token: &str, action: &str) -> Vec<AuditEntry> {
        self.audit_entries(token)
            .await
            .into_iter()
            .filter(|e| e.action == action)
            .collect()
    }

    /// A lead's history events of `kind`, oldest first.
    async fn history(&self, lead: &str, kind: &str) -> Vec<lead_event::Model> {
        lead_event::Entity::find()
            .filter(lead_event::Column::LeadId.eq(lead.parse::<Uuid>().expect("a lead id")))
            .filter(lead_event::Column::Kind.eq(kind))
            .order_by_asc(lead_event::Column::At)
            .all(&self.system_db)
            .await
            .expect("lead events")
    }

    async fn rescore_tenant_at(&self, tenant: &Tenant, at: DateTime<Utc>) {
        let outcome = rescore::run(
            &self.db,
            tenant.id.parse().expect("a tenant id"),
            Trigger::Manual,
            None,
            at,
            &Options::default(),
        )
        .await
        .expect("the run is recorded");
        match outcome {
            Outcome::Finished(run) => {
                assert_eq!(run.status, entity::enums::JobStatus::Succeeded, "{run:?}")
            }
            Outcome::Busy => panic!("the run found the lease taken"),
        }
    }
}

/// `tenant { repsMayPin }`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RepsMayPin {
    reps_may_pin: bool,
}

/// A tenant with a manager, Mia, of team East, and a weak lead of East.
struct Desk {
    tenant: Tenant,
    mia_id: String,
    mia: String,
    lead: PinnedLead,
}

async fn desk(app: &TestApp, slug: &str) -> Desk {
    let tenant = app.sign_up_tenant(slug).await;
    let east = team(app, &tenant, "East", &[]).await;
    let (mia_id, mia) = person(app, &tenant, "Mia Manager", "MANAGER", &[&east]).await;
    let created = app
        .new_lead(
            &tenant.token,
            json!({"name": "Wei", "company": "Small Co", "attributes": weak(), "teamId": east}),
        )
        .await;
    let lead = app.pinned_lead(&tenant.token, &created.id).await;
    Desk {
        tenant,
        mia_id,
        mia,
        lead,
    }
}

fn id(lead: &PinnedLead) -> &str {
    &lead.id
}

#[tokio::test]
async fn a_managers_pin_lifts_a_weak_lead_to_a_with_who_and_why_explained() {
    let app = spawn_app().await;
    let d = desk(&app, "acme").await;
    let before = &d.lead;
    assert_ne!(before.tier, "A", "{before:?}");
    assert!(before.pin.is_none());
    let until = days_from_now(30);

    let pinned = app.pinned(&d.mia, id(before), "A", Some(until)).await;

    assert_eq!(pinned.tier, "A", "{pinned:?}");
    assert_eq!(
        pinned.score, before.score,
        "only the tier is pinned: the score is computed as ever"
    );
    assert_eq!(pinned.score_breakdown.total, pinned.score);
    assert_eq!(pinned.score_breakdown.base_tier, before.tier);
    assert_eq!(pinned.version, before.version + 1);
    let pin = pinned
        .pin_override()
        .unwrap_or_else(|| panic!("a PIN override: {pinned:?}"));
    assert_eq!(pin.effect, format!("pinned {} → A", before.tier));
    assert_eq!(
        pin.reason,
        format!(
            "tier pinned to A by Mia Manager until {}: {REASON}",
            until.format("%Y-%m-%d")
        )
    );
    let shown = pinned.pin.as_ref().expect("the pin is shown");
    assert_eq!(shown.tier, "A");
    assert_eq!(shown.reason, REASON);
    assert_eq!(parse_time(shown.expires_at.as_deref()), until);
    assert_eq!(shown.pinned_by.display_name, "Mia Manager");
    assert_eq!(shown.pinned_by.id, d.mia_id);
    assert_eq!(
        pinned.score_history,
        [TierChange {
            old_tier: Some(before.tier.clone()),
            new_tier: "A".into(),
            reason: format!("tier pinned to A by Mia Manager: {REASON}")
        }]
    );

    let audited = app.audited(&d.tenant.token, "lead.tier_pinned").await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    let entry = &audited[0];
    assert_eq!(entry.entity, "lead");
    assert_eq!(entry.entity_id.as_deref(), Some(before.id.as_str()));
    assert_eq!(entry.actor_id(), Some(d.mia_id.as_str()));
    assert!(entry.before.is_null(), "{entry:?}");
    assert_eq!(entry.after["tier"], "A");
    assert_eq!(entry.after["reason"], REASON);
    assert_eq!(parse_time(entry.after["expiresAt"].as_str()), until);
    assert_eq!(entry.after["pinnedBy"], d.mia_id.as_str());
    let history = app.history(id(before), "PIN").await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].from_value.as_deref(), Some(before.tier.as_str()));
    assert_eq!(history[0].to_value.as_deref(), Some("A"));

    // Any later change re-scores the lead: the pin holds, still explained.
    let touched = app
        .record(&d.mia, id(before), "website_visit", json!({}))
        .await;
    assert_eq!(touched.tier, "A", "{touched:?}");
    let explained = touched
        .score_breakdown
        .overrides
        .iter()
        .find(|o| o.rule == "PIN")
        .unwrap_or_else(|| panic!("a PIN override: {touched:?}"));
    assert!(explained.reason.contains("by Mia Manager"), "{explained:?}");
}

#[tokio::test]
async fn a_pin_holds_through_nightly_runs_until_its_expiry() {
    let app = spawn_app().await;
    let d = desk(&app, "acme").await;
    let until = days_from_now(1);
    app.pinned(&d.mia, id(&d.lead), "A", Some(until)).await;

    app.rescore_tenant_at(&d.tenant, until - Duration::hours(12))
        .await;
    let held = app.pinned_lead(&d.tenant.token, id(&d.lead)).await;
    assert_eq!(held.tier, "A", "the nightly job keeps the pin: {held:?}");
    let explained = held
        .pin_override()
        .unwrap_or_else(|| panic!("a PIN override: {held:?}"));
    assert!(explained.reason.contains("by Mia Manager"), "{held:?}");

    app.rescore_tenant_at(&d.tenant, until + Duration::days(1))
        .await;
    let lapsed = app.pinned_lead(&d.tenant.token, id(&d.lead)).await;
    assert_eq!(lapsed.tier, d.lead.tier, "the model's tier: {lapsed:?}");
    assert!(lapsed.pin_override().is_none(), "{lapsed:?}");
    assert_eq!(
        lapsed.score_history,
        [TierChange {
            old_tier: Some("A".into()),
            new_tier: d.lead.tier.clone(),
            reason: "nightly re-scoring".into()
        }]
    );

    // `pin` is judged by the server's clock: move the expiry behind it, as
    // the day passing would.
    lead_facts::Entity::update_many()
        .col_expr(
            lead_facts::Column::PinExpiresAt,
            Expr::value(Some(Utc::now() - Duration::hours(1))),
        )
        .filter(lead_facts::Column::Id.eq(id(&d.lead).parse::<Uuid>().expect("an id")))
        .exec(&app.system_db)
        .await
        .expect("the expiry moves");
    let shown = app.pinned_lead(&d.tenant.token, id(&d.lead)).await;
    assert!(
        shown.pin.is_none(),
        "an expired pin is not shown: {shown:?}"
    );
    assert_eq!(shown.tier, d.lead.tier);
}

#[tokio::test]
async fn unpinning_gives_the_lead_its_models_tier_back_with_an_audit_entry() {
    let app = spawn_app().await;
    let d = desk(&app, "acme").await;
    app.pinned(&d.mia, id(&d.lead), "A", None).await;

    let unpinned = app.unpinned(&d.mia, id(&d.lead)).await;

    assert_eq!(unpinned.tier, d.lead.tier);
    assert_eq!(unpinned.score, d.lead.score);
    assert!(unpinned.pin.is_none());
    assert!(unpinned.pin_override().is_none(), "{unpinned:?}");
    assert_eq!(
        unpinned.score_history[0].reason,
        "tier pin removed by Mia Manager"
    );
    let audited = app.audited(&d.tenant.token, "lead.tier_unpinned").await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    let entry = &audited[0];
    assert_eq!(entry.entity_id.as_deref(), Some(d.lead.id.as_str()));
    assert_eq!(entry.before["tier"], "A");
    assert_eq!(entry.before["reason"], REASON);
    assert!(entry.before["expiresAt"].is_null(), "{entry:?}");
    assert!(entry.after.is_null(), "{entry:?}");
    let history = app.history(id(&d.lead), "UNPIN").await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].from_value.as_deref(), Some("A"));
    assert_eq!(history[0].to_value.as_deref(), Some(d.lead.tier.as_str()));

    // Nothing left to remove: the lead is answered as it is, nothing audited.
    let again = app.unpinned(&d.mia, id(&d.lead)).await;
    assert_eq!(again.version, unpinned.version);
    assert_eq!(
        app.audited(&d.tenant.token, "lead.tier_unpinned")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_rep_pins_only_their_own_leads_once_the_company_allows_it() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let (_, rep) = person(&app, &t, "Rey Rep", "REP", &[]).await;
    let (_, other_rep) = person(&app, &t, "Ola Other", "REP", &[]).await;
    let own = app
        .new_lead(&rep, json!({"name": "Mine", "attributes": weak()}))
        .await;
    let theirs = app
        .new_lead(&other_rep, json!({"name": "Theirs", "attributes": weak()}))
        .await;
    let pool = app
        .new_lead(&t.token, json!({"name": "Pool", "attributes": weak()}))
        .await;

    let refused = app
        .pin(&rep, &own.id, "A", REASON, None)
        .await
        .expect_err("reps may not pin yet");
    assert_eq!(refused.code(), "FORBIDDEN", "{refused}");
    let settings = app
        .allow_reps_to_pin(&rep, true)
        .await
        .expect_err("a rep changes no settings");
    assert_eq!(settings.code(), "FORBIDDEN", "{settings}");

    let allowed = app
        .allow_reps_to_pin(&t.token, true)
        .await
        .unwrap_or_else(|e| panic!("the owner changes the setting: {e}"));
    assert!(allowed);
    let audited = app.audited(&t.token, "tenant.settings_updated").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].before, json!({"repsMayPin": false}));
    assert_eq!(audited[0].after, json!({"repsMayPin": true}));
    let tenant: RepsMayPin = app
        .root(Some(&rep), "{ tenant { repsMayPin } }", json!({}))
        .await;
    assert!(tenant.reps_may_pin);

    let pinned = app.pinned(&rep, &own.id, "A", None).await;
    assert_eq!(pinned.tier, "A");
    let pinned_by = pinned
        .pin
        .as_ref()
        .map(|p| p.pinned_by.display_name.as_str());
    assert_eq!(pinned_by, Some("Rey Rep"));
    let pool_pin = app
        .pin(&rep, &pool.id, "A", REASON, None)
        .await
        .expect_err("a pool lead is not theirs");
    assert_eq!(pool_pin.code(), "FORBIDDEN", "a pool lead is not theirs");
    let other_pin = app
        .pin(&rep, &theirs.id, "A", REASON, None)
        .await
        .expect_err("another rep's lead is not visible");
    assert_eq!(
        other_pin.code(),
        "NOT_FOUND",
        "another rep's lead is not visible"
    );
    let other_unpin = app
        .unpin(&other_rep, &own.id)
        .await
        .expect_err("another rep's lead is not visible");
    assert_eq!(other_unpin.code(), "NOT_FOUND");
    assert_eq!(app.pinned_lead(&t.token, &pool.id).await.tier, pool.tier);
    assert_eq!(
        app.pinned_lead(&t.token, &theirs.id).await.tier,
        theirs.tier
    );
}

#[tokio::test]
async fn a_manager_cannot_pin_a_lead_outside_their_teams() {
    let app = spawn_app().await;
    let d = desk(&app, "acme").await;
    let west = team(&app, &d.tenant, "West", &[]).await;
    let elsewhere = app
        .new_lead(
            &d.tenant.token,
            json!({"name": "Far", "attributes": weak(), "teamId": west, "ownerId": d.tenant.owner_id}),
        )
        .await;

    let refused = app
        .pin(&d.mia, &elsewhere.id, "A", REASON, None)
        .await
        .expect_err("a lead outside Mia's teams");

    assert_eq!(refused.code(), "NOT_FOUND", "{refused}");
}

#[tokio::test]
async fn a_bad_tier_reason_or_expiry_is_refused_by_field_without_changing_anything() {
    let app = spawn_app().await;
    let d = desk(&app, "acme").await;
    let lead = id(&d.lead);
    let long = "x".repeat(501);
    let past = Some(Utc::now() - Duration::minutes(1));
    let cases: [(&str, &str, Option<DateTime<Utc>>, &str); 5] = [
        ("S", REASON, None, "input.tier"),
        ("A", "   ", None, "input.reason"),
        ("A", "", None, "input.reason"),
        ("A", &long, None, "input.reason"),
        ("A", REASON, past, "input.expiresAt"),
    ];
    for (tier, reason, expires_at, field) in cases {
        let refused = app
            .pin(&d.mia, lead, tier, reason, expires_at)
            .await
            .expect_err(field);
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{field}: {refused}");
        assert_eq!(refused.field(), field, "{refused}");
    }
    let unknown = app
        .pin(&d.mia, lead, "S", REASON, None)
        .await
        .expect_err("an unknown tier");
    assert!(
        unknown.message().contains("its tiers are A, B, C, D"),
        "{unknown}"
    );

    let after = app.pinned_lead(&d.tenant.token, lead).await;
    assert_eq!(after, d.lead, "nothing was written");
    assert!(
        app.audited(&d.tenant.token, "lead.tier_pinned")
            .await
            .is_empty()
    );
    assert!(app.history(lead, "PIN").await.is_empty());
}

#[tokio::test]
async fn a_second_tenant_can_neither_pin_nor_see_anothers_pinned_lead() {
    let app = spawn_app().await;
    let d = desk(&app, "acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let pinned = app.pinned(&d.mia, id(&d.lead), "A", None).await;

    let pin = app
        .pin(&globex.token, id(&d.lead), "D", REASON, None)
        .await
        .expect_err("another company's lead");
    assert_eq!(pin.code(), "NOT_FOUND", "{pin}");
    let unpin = app
        .unpin(&globex.token, id(&d.lead))
        .await
        .expect_err("another company's lead");
    assert_eq!(unpin.code(), "NOT_FOUND", "{unpin}");

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Seen {
        lead: Option<Value>,
        leads: Connection<Value>,
    }
    let seen: Seen = app
        .data(
            Some(&globex.token),
            "query($id: ID!) { lead(id: $id) { id pin { tier } } leads { totalCount } }",
            json!({"id": id(&d.lead)}),
        )
        .await;
    assert!(seen.lead.is_none(), "{seen:?}");
    assert_eq!(seen.leads.total_count, Some(0), "{seen:?}");
    for action in ["lead.tier_pinned", "lead.tier_unpinned"] {
        assert!(app.audited(&globex.token, action).await.is_empty());
    }
    let still = app.pinned_lead(&d.tenant.token, id(&d.lead)).await;
    assert_eq!(still, pinned, "acme's pin is untouched");
}

/// A lead's explanation, as the list shows it.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Explained {
    id: String,
    name: String,
    score: f64,
    tier: String,
    score_breakdown: Explanation,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Explanation {
    total: f64,
    tier: String,
    contributions: Vec<Points>,
    overrides: Vec<RuleReason>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Points {
    points: f64,
}

/// `overrides { rule reason }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleReason {
    rule: String,
    reason: String,
}

impl Explained {
    fn pin_override(&self) -> Option<&RuleReason> {
        self.score_breakdown
            .overrides
            .iter()
            .find(|o| o.rule == "PIN")
    }
}

/// Every lead's explanation, as the list shows it.
async fn explained(app: &TestApp, token: &str) -> Vec<Explained> {
    let leads: Connection<Explained> = app
        .root(
            Some(token),
            "{ leads(first: 50) { edges { node { id name score tier
                scoreBreakdown { total tier contributions { points } overrides { rule reason } } } } } }",
            json!({}),
        )
        .await;
    leads.edges.into_iter().map(|e| e.node).collect()
}

/// The explanation is not stored: it is worked out again when asked for,
/// from the lead's facts and the model version at the moment it was
/// scored. It must show the very numbers of the stored score, rules and
/// pins included, after every kind of write.
#[tokio::test]
async fn the_explanation_shown_adds_up_to_the_stored_score_after_every_kind_of_write() {
    let app = spawn_app().await;
    let d = desk(&app, "acme").await;
    let strong_lead = app
        .new_lead(
            &d.tenant.token,
            json!({"name": "Li", "company": "Big Co", "attributes": crate::helpers::strong()}),
        )
        .await;
    let urgent = app
        .new_lead(
            &d.tenant.token,
            json!({"name": "Rush", "company": "Rush Co", "attributes": weak()}),
        )
        .await;
    let recorded = app
        .record(
            &d.tenant.token,
            &urgent.id,
            "urgent_quote_request",
            json!({}),
        )
        .await;
    assert!(recorded.has_flag("URGENT"), "{recorded:?}");
    app.pinned(&d.mia, id(&d.lead), "A", Some(days_from_now(30)))
        .await;
    app.pinned(&d.tenant.token, &strong_lead.id, "D", None)
        .await;

    // Once as the mutations left them, once as the nightly job re-scored
    // them a day later, everything decayed a little.
    for round in ["after the mutations", "after the nightly job"] {
        let leads = explained(&app, &d.tenant.token).await;
        assert_eq!(leads.len(), 3, "{round}");
        for lead in &leads {
            let breakdown = &lead.score_breakdown;
            let points: f64 = breakdown.contributions.iter().map(|c| c.points).sum();
            assert!((points - lead.score).abs() < 1e-6, "{round}: {lead:?}");
            assert_eq!(breakdown.total, lead.score, "{round}: {lead:?}");
            assert_eq!(breakdown.tier, lead.tier, "{round}: {lead:?}");
        }
        let named = |name: &str| {
            leads
                .iter()
                .find(|l| l.name == name)
                .unwrap_or_else(|| panic!("{name} is listed"))
        };
        let rush = named("Rush");
        assert_eq!(rush.tier, "A", "{round}");
        assert!(
            rush.score_breakdown
                .overrides
                .iter()
                .any(|o| o.rule.contains("URGENT")),
            "{round}: {rush:?}"
        );
        let wei = named("Wei").pin_override().expect("Wei's pin is explained");
        assert!(
            wei.reason.contains("Mia Manager") && wei.reason.contains(REASON),
            "{round}: {wei:?}"
        );
        assert_eq!(named("Li").tier, "D", "{round}");
        assert!(named("Li").pin_override().is_some(), "{round}");
        if round == "after the mutations" {
            app.rescore_tenant_at(&d.tenant, Utc::now() + Duration::days(1))
                .await;
        }
    }
}

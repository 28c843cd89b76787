//! Leads out as a CSV file in the import's columns, behind a short-lived
//! signed link.

use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use crate::graphql::{RequestContext, cost, leads::lead::LeadFilter};
use crate::{error::IntoGraphql, service::analytics::export};

/// A download of leads as CSV.
#[derive(SimpleObject)]
pub struct LeadExport {
    /// Where to fetch the file with a plain GET, relative to the API's
    /// address (`/v1/exports/…`); it needs no token, so a browser can
    /// download it. The leads are those the caller may see when the file
    /// is fetched.
    pub url: String,
    /// The link works until then (10 minutes).
    pub expires_at: DateTime<Utc>,
}

#[derive(Default)]
pub struct ExportMutation;

#[Object]
impl ExportMutation {
    /// A link to a CSV of the leads matching `filter` that the caller may
    /// see (OWNER, ADMIN and MANAGER; audited), in the import's columns so
    /// it re-imports cleanly. `excelBom` starts the file with the
    /// byte-order mark Excel needs to read Chinese text in UTF-8.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn export_leads(
        &self,
        ctx: &Context<'_>,
        filter: Option<LeadFilter>,
        #[graphql(default = false)] excel_bom: bool,
    ) -> Result<LeadExport> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql()?;
        let request = export::ExportRequest {
            filter: filter.unwrap_or_default().into_service().gql()?,
            bom: excel_bom,
        };
        let (url, expires_at) = export::link(
            &rc.db,
            &principal,
            rc.session,
            &rc.auth.keys,
            &request,
            Utc::now(),
        )
        .await
        .gql()?;
        Ok(LeadExport { url, expires_at })
    }
}

//! `GET /v1/exports/{link}`: a CSV of leads behind a short-lived signed
//! link that `exportLeads` hands out, so a browser can download it without
//! the person's token. The link names the person and the export; the
//! leads written are those the person may see when the file is fetched,
//! with their role then. Refusals use the GraphQL error shape: 401
//! UNAUTHENTICATED for a link this server did not sign or that expired,
//! 403 FORBIDDEN for a person deactivated, signed out of that session or
//! no longer a MANAGER since. The request log shows the path without the
//! link, which stands for a session while it lasts.

use std::sync::Arc;

use actix_web::{
    HttpResponse,
    http::{StatusCode, header},
    web,
};
use chrono::Utc;
use entity::enums::Role;
use futures_util::StreamExt;
use sea_orm::DatabaseConnection;
use serde_json::json;

use crate::{
    auth::access,
    service::{accounts::account::Auth, analytics::export},
};

/// What the endpoint needs of the server.
pub struct Deps {
    pub db: DatabaseConnection,
    pub auth: Arc<Auth>,
}

fn refuse(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "errors": [{"message": message, "extensions": {"code": code}}]
    }))
}

pub async fn get_export(deps: web::Data<Deps>, link: web::Path<String>) -> HttpResponse {
    let (claims, request) = match deps.auth.keys.verify_export::<export::ExportRequest>(&link) {
        Ok(found) => found,
        Err(message) => return refuse(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message),
    };
    // The link stands for the session it was asked in: a person signed
    // out, deactivated or no longer a MANAGER since gets nothing.
    let principal = match access::admit(&deps.db, &claims, Utc::now()).await {
        Ok(Ok(principal)) => principal,
        Ok(Err(refusal)) => {
            return refuse(StatusCode::FORBIDDEN, "FORBIDDEN", refusal.message());
        }
        Err(e) => {
            tracing::error!(error = ?e, "an export link could not be checked");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "something went wrong on our side; it has been logged",
            );
        }
    };
    if let Err(e) = principal.require_at_least(Role::Manager, export::MAY_EXPORT) {
        return refuse(StatusCode::FORBIDDEN, "FORBIDDEN", &e.to_string());
    }
    let tenant = principal.tenant_id;
    let file = format!("leads-{}.csv", Utc::now().format("%Y-%m-%d-%H%M"));
    let body = export::stream(deps.db.clone(), principal, request).map(move |chunk| {
        chunk.map(web::Bytes::from).map_err(|e| {
            // The rows sent so far stay sent; the cut-off file tells the
            // browser the download failed.
            tracing::error!(error = ?e, tenant_id = %tenant, "an export stopped part way");
            actix_web::error::ErrorInternalServerError("the export stopped part way")
        })
    });
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body)
}

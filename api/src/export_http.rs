//! `GET /v1/exports/{link}`: a CSV of leads behind a short-lived signed
//! link that `exportLeads` hands out, so a browser can download it without
//! the person's token. The link names the person and the export; the
//! leads written are those the person may see when the file is fetched,
//! with their role then. Refusals use the GraphQL error shape: 401
//! UNAUTHENTICATED for a link this server did not sign or that expired,
//! 403 FORBIDDEN for a person deactivated since.

use std::sync::Arc;

use actix_web::{
    HttpResponse,
    http::{StatusCode, header},
    web,
};
use chrono::Utc;
use entity::user;
use futures_util::StreamExt;
use sea_orm::DatabaseConnection;
use serde_json::json;

use crate::{
    auth::Principal,
    service::{account::Auth, export},
    tenancy::TenantScope,
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
    let (tenant, person, request) =
        match deps.auth.keys.verify_export::<export::ExportRequest>(&link) {
            Ok(found) => found,
            Err(message) => return refuse(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message),
        };
    let scope = TenantScope::new(&deps.db, tenant);
    let role = match scope.find::<user::Entity>(person).await {
        Ok(Some(u)) if u.active => u.role,
        Ok(_) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "the person who asked for this export can no longer sign in",
            );
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
    let principal = Principal {
        tenant_id: tenant,
        user_id: person,
        role,
    };
    let file = format!("leads-{}.csv", Utc::now().format("%Y-%m-%d-%H%M"));
    let body = export::stream(deps.db.clone(), principal, request).map(move |chunk| {
        chunk.map(web::Bytes::from).map_err(|e| {
            // The rows sent so far stay sent; the cut-off file tells the
            // browser the download failed.
            tracing::error!(error = ?e, %tenant, "an export stopped part way");
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

//! `/v1/event-types`: the catalogue of events endpoints can subscribe to.

use axum::Json;
use peyk_jobs::events::catalogue;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Tenant;

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeView {
    #[serde(rename = "type")]
    pub event_type: String,
    pub description: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeList {
    pub data: Vec<EventTypeView>,
}

/// The event types endpoints can subscribe to.
#[utoipa::path(get, path = "/v1/event-types", tag = "webhooks", security(("api_key" = ["webhooks:admin"])),
    responses((status = 200, body = EventTypeList)))]
pub async fn event_types(_tenant: Tenant) -> Json<EventTypeList> {
    let data = catalogue::EVENT_TYPES
        .iter()
        .map(|(event_type, description)| EventTypeView { event_type: event_type.to_string(), description: description.to_string() })
        .collect();
    Json(EventTypeList { data })
}

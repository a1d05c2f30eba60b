//! A managed identity endpoint on loopback, as App Service serves one (`IDENTITY_ENDPOINT`,
//! `IDENTITY_HEADER`; API version 2019-08-01): `GET ?resource=…&api-version=2019-08-01` with
//! the header `X-IDENTITY-HEADER` answers the identity's token. Faults on purpose: a 500, or
//! no answer at all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::Shared;
use crate::error::json;

/// The endpoint's path on the simulator.
pub const PATH: &str = "/msi/token";

/// The API version App Service's endpoint takes.
const API_VERSION: &str = "2019-08-01";

/// How the endpoint fails, when it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityFault {
    /// Every request answers 500.
    ServerError,
    /// No request is ever answered.
    Hang,
}

impl std::str::FromStr for IdentityFault {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "500" => Ok(IdentityFault::ServerError),
            "hang" => Ok(IdentityFault::Hang),
            other => Err(format!("{other:?}: write 500 or hang")),
        }
    }
}

/// The machine's identity: an app of a tenant, and the header secret of this start.
#[derive(Debug)]
pub struct ManagedIdentity {
    pub(crate) tenant: String,
    pub(crate) client_id: String,
    pub(crate) header: String,
    pub(crate) fault: Option<IdentityFault>,
    pub(crate) requests: AtomicUsize,
}

fn answer(status: StatusCode, message: &str) -> Response {
    json(
        status,
        &serde_json::json!({ "statusCode": status.as_u16(), "message": message }),
    )
}

impl ManagedIdentity {
    /// The identity of `TENANT/CLIENT_ID`, with a new header secret.
    pub fn new(tenant: &str, client_id: &str, fault: Option<IdentityFault>) -> ManagedIdentity {
        ManagedIdentity {
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
            header: uuid::Uuid::new_v4().simple().to_string(),
            fault,
            requests: AtomicUsize::new(0),
        }
    }

    /// Answers one request of the endpoint.
    pub(crate) async fn serve(
        &self,
        s: &Shared,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Response {
        self.requests.fetch_add(1, Ordering::SeqCst);
        match self.fault {
            Some(IdentityFault::ServerError) => {
                return answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The managed identity endpoint failed (mde-sim --identity-fault 500)",
                );
            }
            Some(IdentityFault::Hang) => {
                std::future::pending::<()>().await;
            }
            None => {}
        }
        let given = headers
            .get("x-identity-header")
            .and_then(|v| v.to_str().ok());
        if given != Some(self.header.as_str()) {
            return answer(
                StatusCode::UNAUTHORIZED,
                "The X-IDENTITY-HEADER is missing or wrong",
            );
        }
        let query: Vec<(String, String)> =
            serde_urlencoded::from_str(query.unwrap_or_default()).unwrap_or_default();
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if param("api-version") != Some(API_VERSION) {
            return answer(StatusCode::BAD_REQUEST, "api-version must be 2019-08-01");
        }
        let asked = param("resource").map(|r| r.trim_end_matches('/'));
        let scopes = crate::auth::scopes();
        let scope = scopes
            .iter()
            .find(|s| Some(s.trim_end_matches("/.default")) == asked);
        let Some(scope) = scope else {
            return answer(
                StatusCode::BAD_REQUEST,
                "The resource is not one this identity can get a token for",
            );
        };
        if param("client_id").is_some_and(|c| c != self.client_id) {
            // App Service: "The requested identity has not been assigned to this resource".
            return answer(
                StatusCode::BAD_REQUEST,
                "The requested identity has not been assigned to this resource",
            );
        }
        let resource = scope.trim_end_matches("/.default");
        let Some((token, lifetime)) =
            s.tokens
                .issue_to((&self.tenant, &self.client_id), scope, &s.clock)
        else {
            return answer(
                StatusCode::BAD_REQUEST,
                "The identity's app is not registered in its tenant",
            );
        };
        // Wall-clock time: a client compares it with its own, whatever the simulator's speed.
        let real = Duration::from_secs_f64(lifetime.as_secs_f64() / s.clock.scale());
        let expires_on = chrono::Utc::now().timestamp() + real.as_secs() as i64;
        let body = serde_json::json!({
            "access_token": token,
            "expires_on": expires_on.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": self.client_id,
        });
        json(StatusCode::OK, &body)
    }
}

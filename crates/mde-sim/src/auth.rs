//! The Azure AD stand-in (client-credentials grant) and bearer-token checks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mde_client::operations::{self, Operation};
use serde_json::json;

use crate::clock::Clock;
use crate::config::App;
use crate::error::{AadError, ApiError};

/// What a token grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The tenant the token was issued in.
    pub tenant: String,
    /// The app it was issued to.
    pub client_id: String,
    /// Application permissions and directory roles (the token's `roles`).
    pub permissions: Vec<String>,
    /// The scope it was asked for (its audience): the API's, or Microsoft Graph's.
    pub scope: String,
    expires: Duration,
}

/// The scope a token for `op` is asked for: Microsoft Graph's for an operation on Graph, the
/// API's for the others (the spec's `x-token-scope`, the commercial cloud's).
pub fn scope_of(op: &Operation) -> String {
    mde_client::scope_for(
        op,
        mde_client::Cloud::Commercial,
        operations::TOKEN_SCOPES[0],
    )
}

/// Every scope the simulator issues tokens for: each operation's.
pub fn scopes() -> Vec<String> {
    let mut all: Vec<String> = operations::ALL.iter().map(scope_of).collect();
    all.sort();
    all.dedup();
    all
}

/// Registered apps and the tokens issued to them.
#[derive(Debug)]
pub struct Tokens {
    apps: Vec<App>,
    /// Certificates registered with apps, for client assertions.
    certs: Vec<crate::assertion::RegisteredCert>,
    /// The simulator's own issuer, and the subjects each app (tenant, client id) trusts.
    issuer: crate::federation::Issuer,
    federated: Vec<(String, String, String)>,
    lifetime: Duration,
    issued: Mutex<HashMap<String, Grant>>,
    count: std::sync::atomic::AtomicUsize,
}

impl Tokens {
    /// Tokens for these apps, each valid for `lifetime` of simulated time.
    pub fn new(
        apps: Vec<App>,
        (certs, issuer, federated): (
            Vec<crate::assertion::RegisteredCert>,
            crate::federation::Issuer,
            Vec<(String, String, String)>,
        ),
        lifetime: Duration,
    ) -> Tokens {
        Tokens {
            apps,
            certs,
            issuer,
            federated,
            lifetime,
            issued: Mutex::new(HashMap::new()),
            count: Default::default(),
        }
    }

    /// How many tokens were issued so far.
    pub fn issued(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Answers `POST /{tenant}/oauth2/v2.0/token` with a form body, as Azure AD does.
    pub fn token_endpoint(
        &self,
        (base_url, tenant): (&str, &str),
        content_type: Option<&str>,
        body: &[u8],
        clock: &Clock,
    ) -> Response {
        match self.issue((base_url, tenant), content_type, body, clock) {
            Ok(answer) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                answer.to_string(),
            )
                .into_response(),
            Err(e) => e.into_response(),
        }
    }

    /// A client assertion: a token of the simulator's own issuer for a subject the app trusts
    /// (workload identity), or one signed with a certificate registered with the app.
    fn check_assertion(
        &self,
        (base_url, tenant): (&str, &str),
        client_id: &str,
        assertion: &str,
    ) -> Result<(), AadError> {
        if self.issuer.claims_to_be_ours(assertion) {
            let subjects: Vec<&str> = self
                .federated
                .iter()
                .filter(|(t, c, _)| t == tenant && c == client_id)
                .map(|(_, _, subject)| subject.as_str())
                .collect();
            self.issuer.check(assertion, &subjects)
        } else {
            let audience = mde_client::token_url(base_url, tenant);
            crate::assertion::check(&self.certs, (tenant, client_id), &audience, assertion)
        }
    }

    fn issue(
        &self,
        (base_url, tenant): (&str, &str),
        content_type: Option<&str>,
        body: &[u8],
        clock: &Clock,
    ) -> Result<serde_json::Value, AadError> {
        let form = read_form(content_type, body)?;
        let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
        let grant_type = field("grant_type").ok_or_else(|| AadError::missing("grant_type"))?;
        if grant_type != "client_credentials" {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{grant_type}'."),
            ));
        }
        let client_id = field("client_id").ok_or_else(|| AadError::missing("client_id"))?;
        let secret = field("client_secret");
        let assertion = field("client_assertion");
        if secret.is_none() && assertion.is_none() {
            return Err(AadError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.".into(),
            ));
        }
        let scope = field("scope").ok_or_else(|| AadError::missing("scope"))?;
        if !self.apps.iter().any(|a| a.tenant == tenant) {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90002,
                format!("Tenant '{tenant}' not found."),
            ));
        }
        let app = self
            .apps
            .iter()
            .find(|a| a.tenant == tenant && a.client_id == client_id)
            .ok_or_else(|| {
                AadError::new(
                    StatusCode::BAD_REQUEST,
                    "unauthorized_client",
                    700016,
                    format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
                )
            })?;
        if let (None, Some(assertion)) = (secret, assertion) {
            const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
            if field("client_assertion_type") != Some(JWT_BEARER) {
                return Err(AadError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    50027,
                    format!("client_assertion_type must be {JWT_BEARER}."),
                ));
            }
            self.check_assertion((base_url, tenant), client_id, assertion)?;
        } else if secret != Some(app.secret.as_str()) {
            return Err(AadError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.".into(),
            ));
        }
        if !scopes().iter().any(|s| s == scope) {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                1002012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            ));
        }
        let token = self.grant(app, scope, clock);
        let seconds = self.lifetime.as_secs();
        Ok(json!({
            "token_type": "Bearer",
            "expires_in": seconds,
            "ext_expires_in": seconds,
            "access_token": token,
        }))
    }

    /// A new token of `app`, recorded with what it grants.
    fn grant(&self, app: &App, scope: &str, clock: &Clock) -> String {
        let now = clock.elapsed();
        let token = format!(
            "sim.{}.{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued.retain(|_, grant| grant.expires > now);
        issued.insert(
            token.clone(),
            Grant {
                tenant: app.tenant.clone(),
                client_id: app.client_id.clone(),
                permissions: app.permissions.clone(),
                scope: scope.to_string(),
                expires: now + self.lifetime,
            },
        );
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        token
    }

    /// A token for `scope` of the app `client_id` of `tenant` and its lifetime (simulated),
    /// as a managed identity gets one: no secret, the platform vouches for it.
    pub fn issue_to(
        &self,
        (tenant, client_id): (&str, &str),
        scope: &str,
        clock: &Clock,
    ) -> Option<(String, Duration)> {
        let app = self
            .apps
            .iter()
            .find(|a| a.tenant == tenant && a.client_id == client_id)?;
        Some((self.grant(app, scope, clock), self.lifetime))
    }

    /// The simulator's own token issuer (workload identity federation).
    pub fn issuer(&self) -> &crate::federation::Issuer {
        &self.issuer
    }

    /// The grant behind a request's `Authorization: Bearer …`, or the 401 to answer.
    pub fn check(&self, headers: &HeaderMap, clock: &Clock) -> Result<Grant, ApiError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("Authorization header is missing"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, token)| {
                scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' ')
            })
            .map(|(_, token)| token)
            .ok_or_else(|| {
                ApiError::unauthorized("Authorization header must be 'Bearer {token}'")
            })?;
        let issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        let grant = issued
            .get(token)
            .ok_or_else(|| ApiError::unauthorized("Invalid access token"))?;
        if grant.expires <= clock.elapsed() {
            return Err(ApiError::unauthorized("The access token has expired"));
        }
        Ok(grant.clone())
    }
}

/// The 401 to answer when the token is for another audience (an API token sent to Microsoft
/// Graph, or the reverse; Graph's words for it), then the 403 when the grant holds none of
/// the operation's permissions or roles.
pub fn authorize(grant: &Grant, op: &Operation) -> Result<(), ApiError> {
    let scope = scope_of(op);
    if grant.scope != scope {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            format!(
                "Access token validation failure. Invalid audience: the token is for {}, {} takes one for {}",
                grant.scope.trim_end_matches("/.default"),
                op.id,
                scope.trim_end_matches("/.default")
            ),
        ));
    }
    let needed: Vec<&str> = op
        .application_permissions
        .iter()
        .chain(op.directory_roles)
        .copied()
        .collect();
    if needed.is_empty()
        || needed
            .iter()
            .any(|p| grant.permissions.iter().any(|held| held == p))
    {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "The application lacks the permission this operation requires: one of {}",
            needed.join(", ")
        ),
    ))
}

/// The OpenID Connect discovery document of `tenant`, shaped like Azure AD's v2.0 one: what
/// MSAL and azure-identity read to find the token endpoint.
pub fn openid_configuration(base_url: &str, tenant: &str) -> axum::Json<serde_json::Value> {
    let tenant_url = format!("{base_url}/{tenant}");
    axum::Json(serde_json::json!({
        "issuer": format!("{tenant_url}/v2.0"),
        "token_endpoint": format!("{tenant_url}/oauth2/v2.0/token"),
        "authorization_endpoint": format!("{tenant_url}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{tenant_url}/oauth2/v2.0/devicecode"),
        "jwks_uri": format!("{tenant_url}/discovery/v2.0/keys"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scope_supported": ["openid", "profile", "email", "offline_access"],
        "grant_types_supported": ["client_credentials"],
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
    }))
}

/// A token request's form: form-encoded, as Azure AD requires (AADSTS900144 otherwise).
fn read_form(content_type: Option<&str>, body: &[u8]) -> Result<HashMap<String, String>, AadError> {
    if !content_type.is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must be form-encoded (application/x-www-form-urlencoded).".into(),
        ));
    }
    serde_urlencoded::from_bytes(body).map_err(|_| {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body is not a valid form.".into(),
        )
    })
}

//! The simulator's answers below every route: a JSON body, the API's error body
//! (`{"error": {"code", "message", "target"}}`) and Azure AD's (`{"error",
//! "error_description", "error_codes", …}`), each as a response.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mde_client::types;
use serde::Serialize;
use serde_json::json;
use std::time::Duration;

use crate::rate_limit::Refusal;

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The documented error code, e.g. `ResourceNotFound`.
    pub code: &'static str,
    /// Free text naming the problem.
    pub message: String,
    /// Seconds to wait, sent as `Retry-After` (429 only).
    pub retry_after: Option<u64>,
    /// In Microsoft Graph's envelope: `innerError` with `date` and `request-id`, no `target`.
    pub graph: bool,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            graph: false,
        }
    }

    /// The same error in Microsoft Graph's envelope when `graph`.
    pub fn in_graph(self, graph: bool) -> ApiError {
        ApiError { graph, ..self }
    }

    /// The 429 of a limit: for an operation counted per tenant (`x-tenant-quota`), the
    /// bodies callers reported (#4616: `code` the string "429", the window a .NET TimeSpan,
    /// no `Retry-After` documented), and for CPU the portal's words with when queries may
    /// run again (advanced-hunting-errors.md); for any other, [`ApiError::too_many_requests`].
    pub fn refused(refusal: Refusal, per_tenant: bool) -> ApiError {
        let message = match (refusal, per_tenant) {
            (Refusal::Calls { wait, .. } | Refusal::Cpu { wait }, false) => {
                return ApiError::too_many_requests(wait);
            }
            (Refusal::Calls { window, .. }, true) => format!(
                "API calls quota exceeded! maximum allowed {} per {}",
                window.calls,
                time_span(Duration::from_secs(window.seconds))
            ),
            (Refusal::Cpu { wait }, true) => format!(
                "You have exceeded processing resources allocated to this tenant. You can run queries again in {}.",
                time_span(wait)
            ),
        };
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "429", message)
    }

    /// 400 `InvalidRequestBody`.
    pub fn invalid_body(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "InvalidRequestBody", message)
    }

    /// 401 `Unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    /// 429 `TooManyRequests`, with `Retry-After` in whole seconds, rounded up (resubmitting
    /// sooner earns another 429).
    pub fn too_many_requests(wait: std::time::Duration) -> ApiError {
        let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        ApiError {
            retry_after: Some(seconds),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                format!("Rate limit is exceeded. Try again in {seconds} seconds."),
            )
        }
    }

    /// 404 `ResourceNotFound`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "ResourceNotFound", message)
    }
}

/// A duration as .NET writes a TimeSpan: `hh:mm:ss`, with `d.` before it past a day; whole
/// seconds, rounded up (coming back sooner earns another 429).
pub fn time_span(d: Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    let (days, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let day = if days > 0 {
        format!("{days}.")
    } else {
        String::new()
    };
    format!("{day}{h:02}:{m:02}:{s:02}")
}

/// Microsoft Graph's error body: `innerError` with `date`, `request-id` and
/// `client-request-id`, no `target` (hunting-indicators-alerts.md §2.6).
pub fn graph_body(code: &str, message: &str) -> types::Error {
    let id = uuid::Uuid::new_v4().to_string();
    let inner = json!({
        "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
        "request-id": id,
        "client-request-id": id,
    });
    let mut error = body(code, message);
    error.error.target = None;
    error.error.inner_error = inner.as_object().cloned().unwrap_or_default();
    error
}

/// Error bodies built from the generated type, so they are the spec's shape by construction.
pub fn body(code: &str, message: &str) -> types::Error {
    types::Error {
        error: types::ErrorDetail {
            code: code.to_string(),
            message: message.to_string(),
            // A correlation id, as the service quotes one for support.
            target: Some(uuid::Uuid::new_v4().to_string()),
            inner_error: Default::default(),
            extra: Default::default(),
        },
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = if self.graph {
            graph_body(self.code, &self.message)
        } else {
            body(self.code, &self.message)
        };
        let json = serde_json::to_vec(&error).unwrap_or_default();
        let mut response = (self.status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// `value` as a JSON answer with `status`.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            e.to_string(),
        )
        .into_response(),
    }
}

/// An Azure AD error answer: `{"error", "error_description", "error_codes", …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AadError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
}

impl AadError {
    pub(crate) fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        description: String,
    ) -> AadError {
        AadError {
            status,
            error,
            code,
            description,
        }
    }

    pub(crate) fn missing(parameter: &str) -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{parameter}'."),
        )
    }
}

impl IntoResponse for AadError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": self.error,
            "error_description": format!("AADSTS{}: {}", self.code, self.description),
            "error_codes": [self.code],
            "timestamp": chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
            "trace_id": uuid::Uuid::new_v4().to_string(),
            "correlation_id": uuid::Uuid::new_v4().to_string(),
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body.to_string(),
        )
            .into_response()
    }
}

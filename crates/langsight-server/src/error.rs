//! Request errors: what the client did wrong (4xx, with a message saying what to fix) or what failed on our
//! side (5xx, details logged, never sent). Bodies use the original's `{"detail": ...}` shape.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use langsight_storage::StorageError;
use serde_json::{json, Value};

#[derive(Debug)]
pub enum ApiError {
    /// 401 with `WWW-Authenticate: ApiKey`.
    Unauthenticated(String),
    Forbidden(String),
    NotFound(String),
    BadRequest(String),
    /// 422 with a string detail or FastAPI's list of field errors.
    Unprocessable(Value),
    PayloadTooLarge,
    /// 503 with `Retry-After`.
    Unavailable {
        detail: String,
        retry_after_s: u32,
    },
    NotImplemented(String),
    Conflict(String),
    /// 410
    Gone(String),
    /// 429 from a rule other than the rate limiter (login lockout).
    TooManyRequests(String),
    /// 415: a body encoding we do not read.
    Unsupported(String),
    /// 408: the client did not send the body in time; the connection is closed.
    RequestTimeout(String),
    /// 502: a service we depend on (a webhook receiver) failed.
    BadGateway(String),
    /// 500: the cause is logged where it happened, the client sees a bare message.
    Internal,
}

impl ApiError {
    pub fn unprocessable(msg: impl Into<String>) -> ApiError {
        ApiError::Unprocessable(Value::String(msg.into()))
    }
}

impl From<StorageError> for ApiError {
    #[track_caller]
    fn from(e: StorageError) -> Self {
        let at = std::panic::Location::caller();
        match e {
            StorageError::Unavailable(m) => {
                tracing::warn!(error = %m, at = %at, "storage.unavailable");
                ApiError::Unavailable {
                    detail: "Storage temporarily unavailable — retry after 5 seconds".into(),
                    retry_after_s: 5,
                }
            }
            StorageError::Conflict(m) => {
                tracing::warn!(error = %m, at = %at, "storage.conflict");
                ApiError::Unprocessable(Value::String("The request conflicts with existing data.".into()))
            }
            other => {
                tracing::error!(error = %other, at = %at, "storage.error");
                ApiError::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, detail) = match self {
            ApiError::Unauthenticated(d) => {
                let mut r = (StatusCode::UNAUTHORIZED, axum::Json(json!({ "detail": d }))).into_response();
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("ApiKey"));
                return r;
            }
            ApiError::Forbidden(d) => (StatusCode::FORBIDDEN, Value::String(d)),
            ApiError::NotFound(d) => (StatusCode::NOT_FOUND, Value::String(d)),
            ApiError::BadRequest(d) => (StatusCode::BAD_REQUEST, Value::String(d)),
            ApiError::Unprocessable(v) => (StatusCode::UNPROCESSABLE_ENTITY, v),
            ApiError::PayloadTooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, Value::String("Payload too large (max 10 MB)".into()))
            }
            ApiError::Unavailable { detail, retry_after_s } => {
                let mut r = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "detail": detail }))).into_response();
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
                return r;
            }
            ApiError::NotImplemented(d) => (StatusCode::NOT_IMPLEMENTED, Value::String(d)),
            ApiError::Unsupported(d) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, Value::String(d)),
            ApiError::BadGateway(d) => (StatusCode::BAD_GATEWAY, Value::String(d)),
            ApiError::Conflict(d) => (StatusCode::CONFLICT, Value::String(d)),
            ApiError::RequestTimeout(d) => {
                let mut r = (StatusCode::REQUEST_TIMEOUT, axum::Json(json!({ "detail": d }))).into_response();
                r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                return r;
            }
            ApiError::Gone(d) => (StatusCode::GONE, Value::String(d)),
            ApiError::TooManyRequests(d) => (StatusCode::TOO_MANY_REQUESTS, Value::String(d)),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, Value::String("Internal Server Error".into())),
        };
        (status, axum::Json(json!({ "detail": detail }))).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

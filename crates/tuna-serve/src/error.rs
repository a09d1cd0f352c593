//! Errors of the HTTP API in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`
//! with a 4xx status for a bad request and 5xx for a failure of the server.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One failed request: what the client is told.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's error type (`invalid_request_error`, `authentication_error`, ...).
    pub kind: &'static str,
    /// The request field at fault, when one is.
    pub param: Option<String>,
    /// A short machine-readable code (`model_not_found`, `queue_full`, ...).
    pub code: Option<&'static str>,
    /// Seconds the client should wait before trying again (sent as `Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// 400: a value is out of range or not one this endpoint takes (`invalid_value`); `param`
    /// names the field.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message);
        if !param.is_empty() {
            e.param = Some(param.into());
        }
        e.code = Some("invalid_value");
        e
    }

    /// 400: the body is not JSON (`invalid_json`).
    pub fn bad_json(message: impl Into<String>) -> Self {
        let mut e = Self::invalid("", message);
        e.code = Some("invalid_json");
        e
    }

    /// 400: a field (or the body, `param` empty) has the wrong JSON type (`invalid_type`).
    pub fn wrong_type(param: &str, message: impl Into<String>) -> Self {
        let mut e = Self::invalid(param, message);
        e.code = Some("invalid_type");
        e
    }

    /// 400: a required field is missing (`missing_required_parameter`).
    pub fn missing(param: &str) -> Self {
        let mut e = Self::invalid(param, format!("missing required field `{param}`"));
        e.code = Some("missing_required_parameter");
        e
    }

    /// 400: the prompt does not fit the model's positions (`context_length_exceeded`).
    pub fn context_length(param: &str, tokens: usize, max: usize) -> Self {
        let mut e = Self::invalid(
            param,
            format!(
                "the prompt has {tokens} tokens; this model takes fewer than {max}: shorten \
                 the {param}"
            ),
        );
        e.code = Some("context_length_exceeded");
        e
    }

    /// 415: the body is declared as something other than JSON.
    pub fn not_json(content_type: &str) -> Self {
        let mut e = Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            format!(
                "the body is declared as `{content_type}`; send JSON with \
                 `Content-Type: application/json`"
            ),
        );
        e.code = Some("unsupported_media_type");
        e
    }

    /// 409: the name is taken (an adapter loaded twice).
    pub fn conflict(param: &str, message: impl Into<String>) -> Self {
        let mut e = Self::invalid(param, message);
        e.status = StatusCode::CONFLICT;
        e.code = Some("already_exists");
        e
    }

    /// 404: no model of that name is served.
    pub fn unknown_model(name: &str, served: &[String]) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "the model `{name}` does not exist here; served: {}",
                served.join(", ")
            ),
        );
        e.param = Some("model".into());
        e.code = Some("model_not_found");
        e
    }

    /// 404: no such path.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("no endpoint at {path}; see GET /v1/models and the README"),
        )
    }

    /// 405: the path exists with another method.
    pub fn wrong_method() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "this endpoint does not take that HTTP method; its `Allow` header lists those it takes",
        )
    }

    /// 401: no API key or the wrong one.
    pub fn unauthorized() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "missing or wrong API key: send `Authorization: Bearer KEY`",
        );
        e.code = Some("invalid_api_key");
        e
    }

    /// 429: the queue of waiting requests is full.
    pub fn queue_full(capacity: usize) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            format!("the server is busy ({capacity} requests already wait); try again shortly"),
        );
        e.code = Some("queue_full");
        e.retry_after = Some(1);
        e
    }

    /// 504: the request ran past the server's time limit.
    pub fn timeout(seconds: u64) -> Self {
        let mut e = Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout_error",
            format!("the request took longer than the server's limit of {seconds} s"),
        );
        e.code = Some("timeout");
        e
    }

    /// 503: the server is shutting down (its worker is gone).
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the server is shutting down",
        )
    }

    /// 500: the model failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// The error of a model call: input the model refuses (too long, bad settings) is the
    /// client's fault, anything else the server's.
    pub fn from_model(e: &tuna_core::Error) -> Self {
        match e {
            tuna_core::Error::Invalid(m) => Self::invalid("", m.clone()),
            other => Self::internal(other.to_string()),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_openai_s_shape() {
        let e = ApiError::unknown_model("x", &["lm".into()]);
        let b = e.body();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(b["error"]["param"], "model");
        assert_eq!(b["error"]["code"], "model_not_found");
        assert_eq!(b["error"]["type"], "invalid_request_error");
        assert!(b["error"]["message"].as_str().unwrap().contains("`x`"));
        let r = ApiError::queue_full(4).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}

//! The JSON body extractor of every endpoint: a body over the size limit is 413, one declared as
//! something other than JSON 415, one that is not JSON or not of the endpoint's shape 400 naming
//! the field at fault, each with OpenAI's error body (axum's own extractor answers in plain text).

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

/// A request body parsed as `T`.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if let Some(ct) = req.headers().get(CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("(not text)");
            if !is_json(ct) {
                return Err(ApiError::not_json(ct));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            let mut e = ApiError::invalid("", r.body_text());
            e.status = r.status();
            e.code = None;
            if e.status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                e.message =
                    "the request body is larger than this server takes (see --max-body)".into();
                e.code = Some("request_too_large");
            }
            e
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// `application/json` or another `+json` type, with or without parameters (`; charset=utf-8`).
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// `bytes` as `T`: malformed JSON, a body that is not an object, a missing field and a field of
/// the wrong type are told apart, the field named in `param`.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        use serde_json::error::Category;
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::bad_json(format!("the body is not valid JSON: {inner}"))
            }
            Category::Data => shape_error(&path, &inner.to_string()),
        }
    })?;
    // Trailing characters after the value are malformed JSON too.
    de.end()
        .map_err(|e| ApiError::bad_json(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// A value read from an already parsed JSON value (the fields a request keeps aside), with the
/// same errors as [`parse`].
pub fn from_value<T: DeserializeOwned>(v: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        shape_error(&path, &e.into_inner().to_string())
    })
}

/// The error of a JSON value of the wrong shape at `path` (`.` for the body itself).
fn shape_error(path: &str, message: &str) -> ApiError {
    // serde says "missing field `NAME`" for the struct that misses it.
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    {
        let param = match path {
            "." | "" => name.to_string(),
            p => format!("{p}.{name}"),
        };
        return ApiError::missing(&param);
    }
    let message = message.split(" at line ").next().unwrap_or(message);
    match path {
        "." | "" if message.contains("expected struct") => ApiError::wrong_type(
            "",
            format!("the body must be a JSON object with this endpoint's fields ({message})"),
        ),
        "." | "" => ApiError::wrong_type(
            "",
            format!("the body does not match this endpoint's request: {message}"),
        ),
        p => ApiError::wrong_type(p, format!("`{p}` has the wrong type or value: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::ChatRequest;

    #[test]
    fn malformed_json_and_wrong_types_are_400s_that_say_which() {
        let e = parse::<ChatRequest>(b"{\"model\": ").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = parse::<ChatRequest>(br#"{"model": 3, "messages": []}"#).unwrap_err();
        assert_eq!(
            (e.param.as_deref(), e.code),
            (Some("model"), Some("invalid_type"))
        );
        let e = parse::<ChatRequest>(br#"{"messages": []}"#).unwrap_err();
        assert_eq!(
            (e.param.as_deref(), e.code),
            (Some("model"), Some("missing_required_parameter"))
        );
        let e = parse::<ChatRequest>(br#"[1]"#).unwrap_err();
        assert!(e.message.contains("JSON object"), "{}", e.message);
        let e = parse::<ChatRequest>(br#"{"model": "m", "messages": [{"role": 1}]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e = parse::<ChatRequest>(br#"{"model": "m", "messages": []} x"#).unwrap_err();
        assert_eq!(e.code, Some("invalid_json"));
    }

    #[test]
    fn json_content_types_are_known() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/vnd.api+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }
}

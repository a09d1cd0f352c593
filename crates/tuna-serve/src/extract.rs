//! The JSON body extractor of every endpoint: a body over the size limit is 413, one that is not
//! JSON or not of the endpoint's shape is 400, each with OpenAI's error body (axum's own
//! extractor answers in plain text).

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
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
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            let mut e = ApiError::invalid("", r.body_text());
            e.status = r.status();
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

/// `bytes` as `T`: malformed JSON and wrong field types are told apart in the message.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        let what = match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => "the body is not valid JSON",
            Category::Data => "the body does not match this endpoint's request",
        };
        ApiError::bad_json(format!("{what}: {e}"))
    })
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
        assert!(e.message.contains("does not match"), "{}", e.message);
        let e = parse::<ChatRequest>(br#"{"model": "m", "messages": [], "temperature": "hot"}"#)
            .unwrap_err();
        assert!(e.message.contains("invalid type"), "{}", e.message);
    }
}

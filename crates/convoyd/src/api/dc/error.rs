//! dcmanager's errors (spec/dcmanager-api.md §1.1): WebOb's HTML page by default, which the
//! dcmanager CLI scrapes, or `{"code", "title", "description"}` when the client asks for JSON.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use convoy_api::dc::DcErrorBody;

use crate::api::ApiError;

/// An error on a dcmanager route: a status and the detail dcmanager would give.
#[derive(Debug, Clone)]
pub struct DcError {
    pub status: StatusCode,
    pub detail: String,
}

impl DcError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        DcError {
            status,
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// An error the manager raises (dcmanager's RPC errors): 422.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    /// The JSON body.
    pub fn json_body(&self) -> DcErrorBody {
        DcErrorBody {
            code: self.status.as_u16(),
            title: title(self.status).into(),
            description: self.detail.clone(),
        }
    }

    /// WebOb's HTML page, byte for byte.
    pub fn html_body(&self) -> String {
        let code = self.status.as_u16();
        let title = title(self.status);
        format!(
            "<html>\n <head>\n  <title>{code} {title}</title>\n </head>\n <body>\n  <h1>{code} \
             {title}</h1>\n  {}<br /><br />\n{}\n\n\n </body>\n</html>",
            explanation(self.status),
            self.detail
        )
    }
}

/// WebOb's titles.
fn title(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Request Entity Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        _ => "Internal Server Error",
    }
}

/// WebOb's explanations, `\r\n` included.
fn explanation(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => {
            "The server could not comply with the request since\r\nit is either malformed or otherwise incorrect.\r\n"
        }
        401 => {
            "This server could not verify that you are authorized to\r\naccess the document you requested.  Either you supplied the\r\nwrong credentials (e.g., bad password), or your browser\r\ndoes not understand how to supply the credentials required.\r\n"
        }
        403 => "Access was denied to this resource.",
        404 => "The resource could not be found.",
        405 => "The method is not allowed for this resource.",
        408 => "The server has waited too long for the request to be sent by the client.",
        409 => "There was a conflict when trying to complete your request.",
        413 => "The request is larger than the server is willing or able to process.",
        422 => "Unable to process the contained instructions",
        429 => "The client has sent too many requests in a given amount of time.",
        _ => {
            "The server has either erred or is incapable of performing\r\nthe requested operation.\r\n"
        }
    }
}

impl IntoResponse for DcError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=UTF-8"),
            )],
            self.html_body(),
        )
            .into_response();
        // `negotiate` swaps the body for JSON when the client asked for it.
        response.extensions_mut().insert(self);
        response
    }
}

/// Convoy's own errors (authentication, bodies too large, store failures) in dcmanager's shape.
impl From<ApiError> for DcError {
    fn from(e: ApiError) -> Self {
        DcError::new(e.status, e.message)
    }
}

impl From<convoy_store::StoreError> for DcError {
    fn from(e: convoy_store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<convoy_core::ValidationError> for DcError {
    fn from(e: convoy_core::ValidationError) -> Self {
        DcError::bad_request(e.reason)
    }
}

/// Middleware: an error answered as HTML becomes dcmanager's JSON body when the request's
/// `Accept` asks for `application/json`.
pub async fn negotiate(request: Request, next: Next) -> Response {
    let wants_json = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    let response = next.run(request).await;
    if !wants_json {
        return response;
    }
    match response.extensions().get::<DcError>() {
        Some(error) => {
            let error = error.clone();
            (error.status, axum::Json(error.json_body())).into_response()
        }
        None => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_html_page_is_webobs() {
        let error = DcError::bad_request("Invalid group");
        assert_eq!(
            error.html_body(),
            "<html>\n <head>\n  <title>400 Bad Request</title>\n </head>\n <body>\n  \
             <h1>400 Bad Request</h1>\n  The server could not comply with the request since\r\n\
             it is either malformed or otherwise incorrect.\r\n<br /><br />\nInvalid group\n\n\n \
             </body>\n</html>"
        );
        assert_eq!(
            serde_json::to_string(&DcError::not_found("Subcloud not found").json_body()).unwrap(),
            r#"{"code":404,"title":"Not Found","description":"Subcloud not found"}"#
        );
    }
}

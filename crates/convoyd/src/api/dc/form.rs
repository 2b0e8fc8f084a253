//! `multipart/form-data` bodies, as dcmanager's client sends subcloud add and update. Bodies are
//! small and already capped by the router's body limit, so they are parsed whole.

use std::collections::BTreeMap;

use super::error::DcError;

/// The fields of a form, by name (a repeated name keeps its last value).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FormFields(pub BTreeMap<String, String>);

impl FormFields {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Parses a form body given its `Content-Type`. Anything that is not a well-formed form (text
/// fields in UTF-8) is refused with dcmanager's `Request body is malformed.`
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<FormFields, DcError> {
    let malformed = || DcError::bad_request("Request body is malformed.");
    let content_type = content_type.ok_or_else(malformed)?;
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|_| content_type.trim_start().starts_with("multipart/form-data"))
        .ok_or_else(malformed)?;
    let delimiter = format!("--{boundary}");
    let text = std::str::from_utf8(body).map_err(|_| malformed())?;
    let mut fields = BTreeMap::new();
    let mut sections = text.split(delimiter.as_str());
    // Before the first delimiter: the preamble, ignored.
    sections.next();
    for section in sections {
        if section.starts_with("--") {
            return Ok(FormFields(fields));
        }
        let section = section.strip_prefix("\r\n").ok_or_else(malformed)?;
        let (head, value) = section.split_once("\r\n\r\n").ok_or_else(malformed)?;
        let value = value.strip_suffix("\r\n").ok_or_else(malformed)?;
        let name = head
            .split("\r\n")
            .find(|line| {
                line.to_ascii_lowercase()
                    .starts_with("content-disposition:")
            })
            .and_then(disposition_name)
            .ok_or_else(malformed)?;
        fields.insert(name, value.to_string());
    }
    // No closing delimiter.
    Err(malformed())
}

/// The `name="..."` of a `Content-Disposition: form-data` line.
fn disposition_name(line: &str) -> Option<String> {
    line.split(';').map(str::trim).find_map(|part| {
        part.strip_prefix("name=")
            .map(|n| n.trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_client_writes() {
        let (content_type, body) = convoy_api::dc::Form::new()
            .text("name", "sc1")
            .text("description", "two\r\nlines")
            .file(
                "bootstrap_values",
                "b.yaml",
                "name: sc1\nsystem_mode: simplex\n",
            )
            .encode();
        let fields = parse(Some(&content_type), &body).unwrap();
        assert_eq!(fields.get("name"), Some("sc1"));
        assert_eq!(fields.get("description"), Some("two\r\nlines"));
        assert_eq!(
            fields.get("bootstrap_values"),
            Some("name: sc1\nsystem_mode: simplex\n")
        );
    }

    #[test]
    fn refuses_what_is_not_a_form() {
        for (content_type, body) in [
            (None, "x"),
            (Some("application/json"), "{}"),
            (Some("multipart/form-data; boundary=b"), "--b\r\nno head"),
            (
                Some("multipart/form-data; boundary=b"),
                "--b\r\nX: y\r\n\r\nv\r\n",
            ),
        ] {
            let error = parse(content_type, body.as_bytes()).unwrap_err();
            assert_eq!(error.detail, "Request body is malformed.", "{body}");
        }
        let empty = parse(Some("multipart/form-data; boundary=b"), b"--b--\r\n").unwrap();
        assert!(empty.is_empty());
    }
}

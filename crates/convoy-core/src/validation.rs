//! Validation of names and values that arrive from users and agents.
//!
//! Every error names the field and the reason, so the API can answer `"<field>: <reason>"`.

use std::fmt;

/// A value was refused; `field` is the JSON field or CLI option it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    pub field: String,
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Longest name accepted for a host, zone, pod, cluster or user.
pub const MAX_NAME_LEN: usize = 63;

/// Checks a name used as an identifier (hostname, zone, pod, cluster, user): 1 to 63 characters,
/// ASCII letters, digits, `-`, `_` and `.`, starting with a letter or digit. The rule is the
/// DNS label rule widened by `_` and `.`, so names are safe in URLs, file names and tables.
pub fn validate_name(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(ValidationError::new(
            field,
            format!(
                "must be at most {MAX_NAME_LEN} characters, got {}",
                value.len()
            ),
        ));
    }
    let first = value.chars().next().unwrap_or('-');
    if !first.is_ascii_alphanumeric() {
        return Err(ValidationError::new(
            field,
            "must start with a letter or a digit",
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(ValidationError::new(
            field,
            format!("contains {bad:?}; use letters, digits, '-', '_' and '.'"),
        ));
    }
    Ok(())
}

/// Shortest password accepted for a user.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Checks a new user's password: at least 8 characters, at most 1024 (hashing cost is bounded).
pub fn validate_password(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.chars().count() < MIN_PASSWORD_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    if value.len() > 1024 {
        return Err(ValidationError::new(field, "must be at most 1024 bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_typical_names() {
        for name in ["controller-0", "worker_12", "edge.site-3", "a", "0zone"] {
            assert_eq!(validate_name("hostname", name), Ok(()), "{name}");
        }
    }

    #[test]
    fn refuses_bad_names_and_names_the_field() {
        let err = validate_name("hostname", "").unwrap_err();
        assert_eq!(err.to_string(), "hostname: must not be empty");
        let err = validate_name("zone", "-x").unwrap_err();
        assert_eq!(err.field, "zone");
        assert!(validate_name("pod", "a/b").is_err());
        assert!(validate_name("pod", "a b").is_err());
        assert!(validate_name("pod", &"x".repeat(64)).is_err());
        assert!(validate_name("pod", &"x".repeat(63)).is_ok());
    }

    #[test]
    fn password_length_is_checked() {
        assert!(validate_password("password", "short").is_err());
        assert!(validate_password("password", "long enough").is_ok());
    }

    proptest! {
        #[test]
        fn accepted_names_are_path_and_url_safe(name in "\\PC{0,80}") {
            if validate_name("n", &name).is_ok() {
                prop_assert!(!name.contains('/'));
                prop_assert!(name.len() <= MAX_NAME_LEN);
                prop_assert!(name.chars().all(|c| c.is_ascii_graphic()));
                prop_assert!(name != "." && name != "..");
            }
        }
    }
}

//! The error body every failing route returns.

use serde::{Deserialize, Serialize};

/// `{"error": {"code": ..., "message": ...}}`
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `invalid_field`, `not_found`, `forbidden`.
    pub code: String,
    /// What went wrong and, where it helps, what to do; for bad input `"<field>: <reason>"`.
    pub message: String,
}

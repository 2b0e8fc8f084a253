//! Users' roles and what each may do.

use crate::names::named_enum;
use serde::{Deserialize, Serialize};

/// A user's role. Each role may do everything the roles below it may.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, changes nothing (GET only).
    Reader,
    /// Operates the site: locks hosts, runs commands and strategies.
    Operator,
    /// Also manages users.
    Admin,
}

named_enum!(Role, field = "role", {
    Reader => "reader",
    Operator => "operator",
    Admin => "admin",
});

impl Role {
    /// Whether a caller with this role may do what `required` guards.
    pub fn allows(self, required: Role) -> bool {
        self >= required
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Admin.allows(Role::Operator));
        assert!(Role::Admin.allows(Role::Reader));
        assert!(Role::Operator.allows(Role::Operator));
        assert!(!Role::Operator.allows(Role::Admin));
        assert!(!Role::Reader.allows(Role::Operator));
    }

    #[test]
    fn parses_only_known_roles() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert_eq!("root".parse::<Role>().unwrap_err().field, "role");
    }
}

//! Enums whose variants each have one name: the name in JSON, tables, the store and messages.

/// Gives a fieldless enum `ALL` (declaration order), `as_str`, `Display`, and a `FromStr` that
/// refuses an unknown name with a [`crate::ValidationError`] naming `field` and listing the
/// valid names. Keep the enum's serde names the same (each enum's tests check it).
macro_rules! named_enum {
    ($ty:ident, field = $field:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: [$ty; [$($name),+].len()] = [$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }

            /// The variant named `s`, if any: the cheap test for hot paths (`from_str` also
            /// builds the message for the user).
            pub fn from_name(s: &str) -> Option<$ty> {
                match s {
                    $($name => Some($ty::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::ValidationError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::from_name(s).ok_or_else(|| {
                    $crate::ValidationError::new(
                        $field,
                        format!("{s:?} is not one of {}", [$($name),+].join(", ")),
                    )
                })
            }
        }
    };
}

pub(crate) use named_enum;

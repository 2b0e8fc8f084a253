//! The one place convoyd reads the clock.

use jiff::Timestamp;

/// Now, to the millisecond: the precision the store keeps, so a record shows the same time
/// when it is created and when it is read back.
pub fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now)
}

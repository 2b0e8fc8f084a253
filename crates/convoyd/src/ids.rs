//! Identifiers the controller makes.

use uuid::Uuid;

/// A new command's id. Time-ordered (UUIDv7), so new commands land at the right edge of the
/// commands table's key index instead of on a random page of it: a tick that starts twenty
/// phases dirties (and writes to the WAL) a page or two of that index, not twenty.
pub fn command_id() -> String {
    Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_ids_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..100).map(|_| command_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}

//! Identifiers the controller makes.

use uuid::Uuid;

/// A new command's id. Time-ordered (UUIDv7), so new commands land at the right edge of the
/// commands table's key index instead of on a random page of it: a tick that starts twenty
/// phases dirties (and writes to the WAL) a page or two of that index, not twenty.
pub fn command_id() -> String {
    Uuid::now_v7().to_string()
}

/// The id of the command sent along with command `first` (the hook that follows a change of
/// maintenance state): `first`'s id with its last bit flipped. The driver finds it again from
/// `first` alone, also after a restart, without storing it; it stays time-ordered; and since
/// no carried command carries another, it never meets an id made by [`command_id`] but by a
/// 62-bit random collision.
pub fn carried_command_id(first: &str) -> Option<String> {
    let mut bytes = first.parse::<Uuid>().ok()?.into_bytes();
    bytes[15] ^= 1;
    Some(Uuid::from_bytes(bytes).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_carried_command_has_an_id_of_its_own_derived_from_the_first() {
        let first = command_id();
        let carried = carried_command_id(&first).unwrap();
        assert_ne!(carried, first);
        assert_eq!(carried_command_id(&first).unwrap(), carried);
        assert_eq!(carried.parse::<Uuid>().unwrap().get_version_num(), 7);
        assert_eq!(carried_command_id("not an id"), None);
    }

    #[test]
    fn command_ids_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..100).map(|_| command_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}

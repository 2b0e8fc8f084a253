//! Reading the tar archive: raw entries only, so the tar crate never interprets GNU long-name
//! or PAX headers for us (it would read them into memory without a bound); such headers are
//! refused as entries that are not regular files.

use std::io::{self, Read};

use tar::EntryType;

use crate::error::VerifyError;
use crate::limits::Limit;
use crate::path::plain_relative;

pub(crate) fn corrupt(e: io::Error) -> VerifyError {
    VerifyError::Corrupt(e.to_string())
}

/// The next entry, or a description of what is there instead, for error messages.
pub(crate) fn describe<R: Read>(next: &Option<tar::Entry<'_, R>>) -> String {
    match next {
        None => "nothing".into(),
        Some(entry) => format!("{:?}", String::from_utf8_lossy(&entry.path_bytes())),
    }
}

/// The member's name, once it is known to be a regular file with a plain relative path.
pub(crate) fn member_name<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, VerifyError> {
    let raw = entry.path_bytes();
    let kind = entry.header().entry_type();
    if !kind.is_file() {
        return Err(VerifyError::NotRegularFile {
            path: String::from_utf8_lossy(&raw).into_owned(),
            kind: kind_name(kind),
        });
    }
    plain_relative(&raw)
        .map(str::to_owned)
        .map_err(|problem| VerifyError::UnsafePath {
            path: String::from_utf8_lossy(&raw).into_owned(),
            problem,
        })
}

/// The mode bits of the entry's header.
pub(crate) fn mode<R: Read>(entry: &tar::Entry<'_, R>) -> Result<u32, VerifyError> {
    entry.header().mode().map(|m| m & 0o7777).map_err(corrupt)
}

/// Reads a member that is held in memory, refusing it unread if it is over `max` bytes.
pub(crate) fn read_small<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    name: &str,
    max: u64,
    limit: Limit,
) -> Result<Vec<u8>, VerifyError> {
    let size = entry.size();
    if size > max {
        return Err(VerifyError::LimitExceeded {
            what: format!("member {name}"),
            limit,
            actual: size,
            max,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    entry.read_to_end(&mut bytes).map_err(corrupt)?;
    if bytes.len() as u64 != size {
        return Err(VerifyError::Corrupt(format!("{name} is truncated")));
    }
    Ok(bytes)
}

fn kind_name(kind: EntryType) -> &'static str {
    match kind {
        EntryType::Symlink => "symbolic link",
        EntryType::Link => "hard link",
        EntryType::Char => "character device",
        EntryType::Block => "block device",
        EntryType::Directory => "directory",
        EntryType::Fifo => "FIFO",
        EntryType::Continuous => "contiguous file",
        EntryType::GNULongName | EntryType::GNULongLink => "GNU long-name header",
        EntryType::GNUSparse => "sparse file",
        EntryType::XHeader | EntryType::XGlobalHeader => "PAX header",
        _ => "entry of an unknown type",
    }
}

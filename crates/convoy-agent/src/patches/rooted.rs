//! Paths under the host's root (`--root`) resolved as if the root were `/`: a symbolic link on
//! the way with an absolute target is taken under the root, and `..` never climbs above it. A
//! root that is a copy of a real system has links such as `lib -> /usr/lib`; followed
//! naively they would make an install write to the machine's own `/usr/lib`.
//!
//! The walk reads links as they are now; someone who can change links inside the root while a
//! patch installs can still race it (an operator's tree, owned by root, is assumed).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use anyhow::bail;

/// As the kernel: more links than this on one path is a loop.
const MAX_LINKS: usize = 40;

/// The directory `dir` (relative, as a patch names it) under `root`, every link on the way
/// resolved inside the root, the last one included.
pub fn dir_in_root(root: &Path, dir: &str) -> anyhow::Result<PathBuf> {
    let mut pending: VecDeque<OsString> = components(Path::new(dir));
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let candidate = joined(root, &resolved).join(&name);
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    bail!(
                        "{} has more than {MAX_LINKS} symbolic links on its way (a loop?)",
                        root.join(dir).display()
                    );
                }
                let target = std::fs::read_link(&candidate)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for part in components(&target).into_iter().rev() {
                    pending.push_front(part);
                }
            }
            _ => resolved.push(name),
        }
    }
    Ok(joined(root, &resolved))
}

/// The file `path` (relative) under `root`: its directories resolved inside the root, the
/// file itself not followed (a patch replaces a link, not what it points to).
pub fn file_in_root(root: &Path, path: &str) -> anyhow::Result<PathBuf> {
    let path = Path::new(path);
    let Some(name) = path.file_name() else {
        bail!("{} names no file", path.display());
    };
    let parent = path.parent().and_then(Path::to_str).unwrap_or("");
    Ok(dir_in_root(root, parent)?.join(name))
}

fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

fn joined(root: &Path, parts: &[OsString]) -> PathBuf {
    let mut path = root.to_path_buf();
    path.extend(parts);
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::create_dir_all(root.join("opt")).unwrap();
        // Absolute and relative links, and one that tries to climb out.
        symlink("/usr/lib", root.join("lib")).unwrap();
        symlink("../usr", root.join("opt/usr")).unwrap();
        symlink("../../../../..", root.join("opt/up")).unwrap();
        symlink("/", root.join("slash")).unwrap();

        assert_eq!(
            file_in_root(&root, "lib/libc.so").unwrap(),
            root.join("usr/lib/libc.so")
        );
        assert_eq!(
            file_in_root(&root, "opt/usr/lib/x").unwrap(),
            root.join("usr/lib/x")
        );
        assert_eq!(
            file_in_root(&root, "opt/up/etc/passwd").unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(
            dir_in_root(&root, "slash/usr/lib").unwrap(),
            root.join("usr/lib")
        );
        // The file itself is not followed; missing directories stay as named.
        assert_eq!(file_in_root(&root, "lib").unwrap(), root.join("lib"));
        assert_eq!(
            file_in_root(&root, "new/dir/file").unwrap(),
            root.join("new/dir/file")
        );
    }

    #[test]
    fn a_link_loop_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        symlink("b", root.join("a")).unwrap();
        symlink("a", root.join("b")).unwrap();
        let err = file_in_root(root, "a/file").unwrap_err().to_string();
        assert!(err.contains("symbolic links"), "{err}");
    }
}

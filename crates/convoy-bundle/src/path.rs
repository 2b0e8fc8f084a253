//! Path safety: every member name, whether read from a tar header or from the manifest, and
//! every install path must be a plain relative path, so nothing can land outside the directory
//! it is unpacked into (tough's `target_path_safety`).

use std::fmt;

/// Why a path is not a plain relative path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathProblem {
    /// Starts with `/`.
    Absolute,
    /// Has a `..` component.
    ParentDir,
    /// Empty, `.` or empty components, a trailing `/`, a backslash, a control character or
    /// bytes that are not UTF-8.
    NotPlain(&'static str),
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathProblem::Absolute => f.write_str("it is absolute"),
            PathProblem::ParentDir => f.write_str("it climbs out with '..'"),
            PathProblem::NotPlain(why) => write!(f, "it is not a plain relative path ({why})"),
        }
    }
}

/// Checks that `path` is a plain relative path: UTF-8, components separated by single `/`,
/// none empty, `.` or `..`, no backslash or control character. Returns it as a `&str`.
pub fn plain_relative(path: &[u8]) -> Result<&str, PathProblem> {
    if path.is_empty() {
        return Err(PathProblem::NotPlain("empty"));
    }
    if path[0] == b'/' {
        return Err(PathProblem::Absolute);
    }
    let path = std::str::from_utf8(path).map_err(|_| PathProblem::NotPlain("not UTF-8"))?;
    // `..` is reported before other problems: it is the one that shows intent.
    if path.split('/').any(|c| c == "..") {
        return Err(PathProblem::ParentDir);
    }
    if path.chars().any(char::is_control) {
        return Err(PathProblem::NotPlain("a control character"));
    }
    // A backslash is a separator on Windows and in some unpackers.
    if path.contains('\\') {
        return Err(PathProblem::NotPlain("a backslash"));
    }
    if path.split('/').any(|c| c.is_empty() || c == ".") {
        return Err(PathProblem::NotPlain("an empty or '.' component"));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_pass() {
        for p in [
            "a",
            "usr/bin/tool",
            "etc/x.conf",
            "a/.hidden",
            "a/b..c",
            "..a/b",
        ] {
            assert_eq!(plain_relative(p.as_bytes()), Ok(p), "{p}");
        }
    }

    #[test]
    fn unsafe_paths_are_refused_with_their_reason() {
        let cases: &[(&[u8], PathProblem)] = &[
            (b"/etc/passwd", PathProblem::Absolute),
            (b"//x", PathProblem::Absolute),
            (b"..", PathProblem::ParentDir),
            (b"a/../../etc", PathProblem::ParentDir),
            (b"a/..", PathProblem::ParentDir),
            (b"", PathProblem::NotPlain("empty")),
            (b"a//b", PathProblem::NotPlain("an empty or '.' component")),
            (b"a/", PathProblem::NotPlain("an empty or '.' component")),
            (b"./a", PathProblem::NotPlain("an empty or '.' component")),
            (b"a\\..\\b", PathProblem::NotPlain("a backslash")),
            (b"a\nb", PathProblem::NotPlain("a control character")),
            (b"a\0b", PathProblem::NotPlain("a control character")),
            (b"a\xffb", PathProblem::NotPlain("not UTF-8")),
        ];
        for (path, problem) in cases {
            assert_eq!(
                plain_relative(path).as_ref(),
                Err(problem),
                "{}",
                String::from_utf8_lossy(path)
            );
        }
    }
}

//! Keeping paths inside a root: archive entry names must be plain relative paths, and symlink
//! targets must resolve — following the other symlinks of the same tree — without leaving it.
//!
//! Both packaging (against the file system) and extraction (against the archive's own entries)
//! use the same resolver, so what one accepts the other accepts too.

/// How many symlinks one resolution may pass through before it is treated as a loop
/// (the same bound Linux uses).
const MAX_LINK_DEPTH: usize = 40;

/// Why a symlink target leaves the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escape {
    Absolute,
    AboveRoot,
    Empty,
    TooManyLinks,
}

impl Escape {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Escape::Absolute => "the target is an absolute path",
            Escape::AboveRoot => "the target climbs above the root with `..`",
            Escape::Empty => "the target is empty",
            Escape::TooManyLinks => "the target goes through too many symlinks (a loop?)",
        }
    }
}

/// Splits an archive entry name into its components, refusing anything that is not a plain
/// relative path: absolute paths, `..`, `.`, empty components, backslashes and NUL bytes.
/// A single trailing `/` (directory entries) is allowed.
pub(crate) fn entry_components(name: &str) -> Result<Vec<&str>, &'static str> {
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.contains('\0') {
        return Err("the name contains a NUL byte");
    }
    if name.contains('\\') {
        return Err("the name contains a backslash");
    }
    if name.starts_with('/') {
        return Err("the name is an absolute path");
    }
    let trimmed = name.strip_suffix('/').unwrap_or(name);
    let mut components = Vec::new();
    for component in trimmed.split('/') {
        match component {
            "" => return Err("the name contains an empty path component"),
            "." => return Err("the name contains a `.` component"),
            ".." => return Err("the name contains a `..` component"),
            other => components.push(other),
        }
    }
    Ok(components)
}

/// Resolves `target`, a symlink found in the directory `link_parent` (components below the
/// root), to components below the root. `lookup` answers "is this path a symlink, and to what?"
/// for paths inside the root, so chains of links are followed the way the kernel would.
pub(crate) fn resolve_link(
    link_parent: &[String],
    target: &str,
    lookup: &dyn Fn(&[String]) -> Option<String>,
) -> Result<Vec<String>, Escape> {
    resolve(link_parent.to_vec(), target, lookup, 0)
}

fn resolve(
    start: Vec<String>,
    target: &str,
    lookup: &dyn Fn(&[String]) -> Option<String>,
    depth: usize,
) -> Result<Vec<String>, Escape> {
    if depth > MAX_LINK_DEPTH {
        return Err(Escape::TooManyLinks);
    }
    if target.is_empty() {
        return Err(Escape::Empty);
    }
    if target.starts_with('/') {
        return Err(Escape::Absolute);
    }
    let mut stack = start;
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if stack.pop().is_none() {
                    return Err(Escape::AboveRoot);
                }
            }
            name => {
                stack.push(name.to_owned());
                if let Some(next_target) = lookup(&stack) {
                    let parent = stack[..stack.len() - 1].to_vec();
                    stack = resolve(parent, &next_target, lookup, depth + 1)?;
                }
            }
        }
    }
    Ok(stack)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn entry_names() {
        let cases: &[(&str, Result<&[&str], &str>)] = &[
            ("a", Ok(&["a"])),
            ("a/b.txt", Ok(&["a", "b.txt"])),
            ("dir/", Ok(&["dir"])),
            ("", Err("empty")),
            ("/etc/passwd", Err("absolute")),
            ("../evil", Err("`..`")),
            ("a/../../evil", Err("`..`")),
            ("a/./b", Err("`.`")),
            ("a//b", Err("empty path component")),
            ("a\\..\\evil", Err("backslash")),
            ("a\0b", Err("NUL")),
        ];
        for (name, expected) in cases {
            match (entry_components(name), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{name:?}"),
                (Err(got), Err(fragment)) => assert!(got.contains(fragment), "{name:?}: {got}"),
                (got, want) => panic!("{name:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn link_targets() {
        // A small tree of links: `sub/up -> ..` (the root), `sub/deep/up2 -> ../..` (the root),
        // `loop1 -> loop2`, `loop2 -> loop1`.
        let links: BTreeMap<&str, &str> = [
            ("sub/up", ".."),
            ("sub/deep/up2", "../.."),
            ("loop1", "loop2"),
            ("loop2", "loop1"),
        ]
        .into_iter()
        .collect();
        let lookup = |path: &[String]| links.get(path.join("/").as_str()).map(|t| t.to_string());
        let parts = |raw: &str| -> Vec<String> {
            raw.split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let cases: &[(&str, &str, Result<&str, Escape>)] = &[
            ("", "file", Ok("file")),
            ("sub", "../file", Ok("file")),
            ("sub", "./x/../y", Ok("sub/y")),
            ("", "../outside", Err(Escape::AboveRoot)),
            ("sub", "../../etc", Err(Escape::AboveRoot)),
            ("", "/etc/passwd", Err(Escape::Absolute)),
            ("", "", Err(Escape::Empty)),
            // Lexically `sub/deep/up2/..` is `sub/deep`, but `up2` is the root, so `..` escapes.
            ("sub/deep", "up2/..", Err(Escape::AboveRoot)),
            ("sub", "up/file", Ok("file")),
            ("", "loop1", Err(Escape::TooManyLinks)),
        ];
        for (parent, target, expected) in cases {
            let got = resolve_link(&parts(parent), target, &lookup);
            let want = expected.map(parts);
            assert_eq!(got, want, "{parent:?} -> {target:?}");
        }
    }
}

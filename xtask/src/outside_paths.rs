//! The first check of `cargo xtask ci`: no tracked file refers to a path outside the checkout.
//!
//! A clone has nothing beside it, so a test, example, script or README that reads a folder next to
//! the repository, or a path of one machine, works there and nowhere else. Every line of every file
//! `git ls-files` lists is read, except in the fuzz corpora (`fuzz/corpus/`, binary inputs),
//! `Cargo.lock` and files that are not UTF-8 text, and these are refused:
//!
//! - A relative path whose `..` components climb above the repository root. It is resolved from
//!   where its file's readers resolve it: in Markdown, a link from the file's directory and anything
//!   else from the repository root (the commands in READMEs run there); in Rust, `include_str!`,
//!   `include_bytes!` and `#[path]` from the file's directory and any other path from the crate's
//!   directory (`CARGO_MANIFEST_DIR`, and where cargo runs the crate's tests); in other files from
//!   the file's directory. A path that starts with `/..` is relative when it follows `{}` or `)`
//!   or the line names `CARGO_MANIFEST_DIR` (it is joined to a directory); otherwise it is an
//!   absolute path such as a URL's (`/api/v1/namespaces/../pods`), not a file of this machine.
//! - The `shared/` folder beside the checkout that the project's fixtures once came from, named as
//!   a sibling or by its fixtures subfolder.
//! - An absolute path of this machine: the checkout's own location, its parent directory (unless
//!   that is `/` or a directory every machine has, such as `/tmp` or `/home`) and the home
//!   directory. Other absolute paths (`/usr/bin/kubectl`, `/var/run/tailscale/tailscaled.sock`,
//!   `/tmp/ts.sock`) mean the same on every machine and pass.
//! - A tracked symbolic link whose target is absolute or climbs above the repository root.
//!
//! A line that must keep such a path anyway carries the marker `outside-paths: allow`.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::tools::git;

/// The marker that exempts a line.
const ALLOW_MARKER: &str = "outside-paths: allow";

/// The folder beside the checkout that the fixtures once came from, and its fixtures subfolder
/// (kept apart so that this file does not trip its own check).
const OLD_SIBLING: [&str; 2] = ["shared", "fixtures"];

/// Directories every machine has: a checkout's parent that is one of them is not flagged as a path
/// of this machine (a clone in `/tmp/x` would otherwise flag `/tmp/ts.sock` in the docs).
const COMMON_DIRECTORIES: [&str; 7] = [
    "/",
    "/tmp",
    "/var/tmp",
    "/home",
    "/Users",
    "/private/tmp",
    "/private/var/tmp",
];

/// A line of a tracked file that refers to a path outside the checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// The file, relative to the repository root.
    pub(crate) file: String,
    /// The line, from 1 (0 for a symbolic link's target).
    pub(crate) line: usize,
    /// What is wrong with it, one entry per path.
    pub(crate) reasons: Vec<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}",
            self.file,
            self.line,
            self.reasons.join("; ")
        )
    }
}

/// The absolute paths that belong to this machine only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MachinePaths {
    /// Without a trailing `/`, longest first.
    prefixes: Vec<String>,
}

impl MachinePaths {
    /// The checkout at `root`, its parent, and the home directory of this process.
    pub(crate) fn of_this_machine(root: &Path) -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Self::new(root, home.as_deref(), &std::env::temp_dir())
    }

    /// The checkout at `root` (as given and with symbolic links resolved), its parent unless that
    /// is a directory every machine has (`temp` included), and `home` likewise.
    pub(crate) fn new(root: &Path, home: Option<&Path>, temp: &Path) -> Self {
        let mut common: HashSet<String> =
            COMMON_DIRECTORIES.iter().map(|d| d.to_string()).collect();
        for dir in [Some(temp.to_path_buf()), temp.canonicalize().ok()]
            .into_iter()
            .flatten()
        {
            common.extend(normalise(&dir));
        }
        let mut roots = vec![root.to_path_buf()];
        roots.extend(root.canonicalize().ok());
        let mut candidates = Vec::new();
        for root in &roots {
            candidates.push(root.clone());
            candidates.extend(root.parent().map(Path::to_path_buf));
        }
        candidates.extend(home.map(Path::to_path_buf));
        let mut prefixes: Vec<String> = candidates
            .iter()
            .filter_map(|dir| normalise(dir))
            .filter(|dir| !common.contains(dir))
            .collect();
        // The checkout itself is always of this machine, even under a common directory.
        prefixes.extend(roots.iter().filter_map(|root| normalise(root)));
        prefixes.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        prefixes.dedup();
        Self { prefixes }
    }
}

/// An absolute directory as text without a trailing `/` (`/` stays `/`); `None` when it is
/// relative or not UTF-8.
fn normalise(dir: &Path) -> Option<String> {
    let text = dir.to_str()?;
    if !text.starts_with('/') {
        return None;
    }
    let trimmed = text.trim_end_matches('/');
    Some(if trimmed.is_empty() { "/" } else { trimmed }.to_string())
}

/// Fails, naming each file and line, when a tracked file of the checkout at `root` refers to a
/// path outside it.
pub(crate) fn check(root: &Path) -> anyhow::Result<()> {
    eprintln!("$ outside-paths: no tracked file refers to a path outside the checkout");
    if !root.join(".git").exists() {
        eprintln!(
            "outside-paths: {} is not a git checkout, so nothing is tracked; skipped",
            root.display()
        );
        return Ok(());
    }
    let findings = scan_checkout(root, &MachinePaths::of_this_machine(root))?;
    if findings.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = findings.iter().map(|f| format!("  {f}")).collect();
    bail!(
        "{} line(s) of tracked files refer to paths outside the checkout, which a fresh clone does \
         not have; keep what they need in the repository (fixtures in testdata/) and refer to it \
         from inside:\n{}",
        findings.len(),
        list.join("\n")
    )
}

/// The files `git ls-files` lists in the checkout at `root`.
fn tracked_files(root: &Path) -> anyhow::Result<Vec<String>> {
    let output = git(root)
        .args(["ls-files", "-z"])
        .output()
        .context("cannot run git ls-files")?;
    if !output.status.success() {
        bail!(
            "git ls-files in {} failed ({}): {}",
            root.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output
        .stdout
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        // A name that is not UTF-8 cannot be opened through a `String`; such files are skipped.
        .filter_map(|name| String::from_utf8(name.to_vec()).ok())
        .collect())
}

/// Whether the guard reads a tracked file at all.
fn is_scanned(file: &str) -> bool {
    !(file.starts_with("fuzz/corpus/") || file == "Cargo.lock")
}

/// Every finding in the tracked files of the checkout at `root`.
pub(crate) fn scan_checkout(root: &Path, machine: &MachinePaths) -> anyhow::Result<Vec<Finding>> {
    let files = tracked_files(root)?;
    let manifest_dirs: HashSet<&str> = files
        .iter()
        .filter_map(|file| match file.rsplit_once('/') {
            Some((dir, "Cargo.toml")) => Some(dir),
            None if file == "Cargo.toml" => Some(""),
            _ => None,
        })
        .collect();
    let mut findings = Vec::new();
    for file in files.iter().filter(|file| is_scanned(file)) {
        let path = root.join(file);
        let metadata = match std::fs::symlink_metadata(&path) {
            Ok(metadata) => metadata,
            // Deleted in the working tree but not yet in the index: nothing to read.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error).with_context(|| format!("{}", path.display())),
        };
        if metadata.is_symlink() {
            let target =
                std::fs::read_link(&path).with_context(|| format!("{}", path.display()))?;
            findings.extend(check_link_target(file, &target));
            continue;
        }
        if !metadata.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).with_context(|| format!("{}", path.display()))?;
        if bytes.contains(&0) {
            continue;
        }
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        let package_depth = depth(package_dir(file, &manifest_dirs));
        findings.extend(scan_text(file, package_depth, &text, machine));
    }
    Ok(findings)
}

/// The directory of a file relative to the repository root (`""` at the root).
fn parent_dir(file: &str) -> &str {
    file.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// How many directories deep a directory relative to the root is.
fn depth(dir: &str) -> usize {
    dir.split('/').filter(|part| !part.is_empty()).count()
}

/// The nearest directory holding a tracked `Cargo.toml` that contains `file` (the root when none
/// does).
fn package_dir<'a>(file: &'a str, manifest_dirs: &HashSet<&str>) -> &'a str {
    let mut dir = parent_dir(file);
    loop {
        if manifest_dirs.contains(dir) || dir.is_empty() {
            return dir;
        }
        dir = parent_dir(dir);
    }
}

/// A symbolic link's target: absolute, or climbing above the root from the link's directory.
fn check_link_target(file: &str, target: &Path) -> Option<Finding> {
    let text = target.to_string_lossy();
    let reason = if text.starts_with('/') {
        format!("a symbolic link to the absolute path {text}")
    } else {
        let levels = climb(&text, depth(parent_dir(file)))?;
        format!(
            "a symbolic link to {text}, {} above the repository root",
            plural_levels(levels)
        )
    };
    Some(Finding {
        file: file.to_string(),
        line: 0,
        reasons: vec![reason],
    })
}

/// How a file's relative paths are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Markdown,
    Rust,
    Other,
}

impl Kind {
    fn of(file: &str) -> Self {
        if file.ends_with(".md") {
            Kind::Markdown
        } else if file.ends_with(".rs") {
            Kind::Rust
        } else {
            Kind::Other
        }
    }
}

/// The findings in one file's text; `package_depth` is the depth of the crate directory holding
/// it (0 outside crates).
pub(crate) fn scan_text(
    file: &str,
    package_depth: usize,
    text: &str,
    machine: &MachinePaths,
) -> Vec<Finding> {
    let kind = Kind::of(file);
    let file_depth = depth(parent_dir(file));
    let mut findings = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.contains(ALLOW_MARKER) {
            continue;
        }
        let mut reasons = climbing_paths(line, kind, file_depth, package_depth);
        reasons.extend(old_sibling(line));
        reasons.extend(machine_paths(line, machine));
        if !reasons.is_empty() {
            findings.push(Finding {
                file: file.to_string(),
                line: index + 1,
                reasons,
            });
        }
    }
    findings
}

/// A character that can be part of a path as written in text.
fn is_path_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '~' | '+' | '@' | '%')
}

/// The runs of path characters in a line, with their byte offsets.
fn tokens(line: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (at, c) in line.char_indices() {
        match (is_path_char(c), start) {
            (true, None) => start = Some(at),
            (false, Some(from)) => {
                spans.push((from, &line[from..at]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        spans.push((from, &line[from..]));
    }
    spans.into_iter()
}

/// How many levels above the root a relative path resolved from a directory `base` levels deep
/// climbs at its highest point, if it leaves the repository at all.
fn climb(path: &str, base: usize) -> Option<usize> {
    let mut depth = base as isize;
    let mut lowest = depth;
    for part in path.split('/') {
        match part {
            ".." => depth -= 1,
            "" | "." => {}
            _ => depth += 1,
        }
        lowest = lowest.min(depth);
    }
    (lowest < 0).then_some(lowest.unsigned_abs())
}

fn plural_levels(levels: usize) -> String {
    if levels == 1 {
        "1 level".to_string()
    } else {
        format!("{levels} levels")
    }
}

/// The relative paths in a line that climb above the repository root.
fn climbing_paths(line: &str, kind: Kind, file_depth: usize, package_depth: usize) -> Vec<String> {
    let mut reasons = Vec::new();
    for (start, token) in tokens(line) {
        if !token.contains('/') || !token.split('/').any(|part| part == "..") {
            continue;
        }
        let before = &line[..start];
        let path = if let Some(rest) = token.strip_prefix('/') {
            let rest = rest.trim_start_matches('/');
            // `{}/../x` or `concat!(env!("CARGO_MANIFEST_DIR"), "/../x")`: joined to a directory.
            let joined = before.ends_with('}')
                || before.ends_with(')')
                || line.contains("CARGO_MANIFEST_DIR");
            if !(rest.starts_with("../") || rest == "..") || !joined {
                continue;
            }
            rest
        } else {
            token
        };
        let (base, from) = match kind {
            Kind::Markdown if is_markdown_link(before) => (file_depth, "the file's directory"),
            Kind::Markdown => (0, "the repository root, where README commands run"),
            Kind::Rust
                if ["include_str!", "include_bytes!", "#[path"]
                    .iter()
                    .any(|m| line.contains(m)) =>
            {
                (file_depth, "the file's directory")
            }
            Kind::Rust => (package_depth, "the crate's directory"),
            Kind::Other => (file_depth, "the file's directory"),
        };
        if let Some(levels) = climb(path, base) {
            reasons.push(format!(
                "{token} climbs {} above the repository root (resolved from {from})",
                plural_levels(levels)
            ));
        }
    }
    reasons
}

/// Whether text ending here is followed by a Markdown or HTML link target.
fn is_markdown_link(before: &str) -> bool {
    before.ends_with("](")
        || before.ends_with("](<")
        || before.ends_with("href=\"")
        || before.ends_with("src=\"")
        || {
            // A reference definition: `[name]: target`.
            let trimmed = before.trim_end();
            trimmed.starts_with('[') && trimmed.ends_with("]:")
        }
}

/// Where `needle` occurs in `line` with a path boundary after it (end, `/` or a character that
/// cannot continue a path) and a character accepted by `before_ok` (or nothing) before it.
fn bounded_matches(line: &str, needle: &str, before_ok: impl Fn(char) -> bool) -> bool {
    line.match_indices(needle).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + needle.len()..].chars().next();
        before.is_none_or(&before_ok) && after.is_none_or(|c| c == '/' || !is_path_char(c))
    })
}

/// A character that starts or separates a path rather than continuing a name.
fn starts_path(c: char) -> bool {
    !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '~' | '+' | '@' | '%'))
}

/// The old sibling folder, by its relative path or its fixtures path.
fn old_sibling(line: &str) -> Vec<String> {
    let [sibling, fixtures] = OLD_SIBLING;
    let mut reasons = Vec::new();
    let relative = format!("{}/{sibling}", "..");
    if bounded_matches(line, &relative, |c| c != '.') {
        reasons.push(format!(
            "{relative} is a folder beside the checkout, which a clone does not have"
        ));
    }
    let nested = format!("{sibling}/{fixtures}");
    if bounded_matches(line, &nested, starts_path) {
        reasons.push(format!(
            "{nested} is the fixtures folder that used to sit beside the checkout (now testdata/)"
        ));
    }
    reasons
}

/// The absolute paths of this machine in a line.
fn machine_paths(line: &str, machine: &MachinePaths) -> Vec<String> {
    let mut reasons = Vec::new();
    for prefix in &machine.prefixes {
        if bounded_matches(line, prefix, starts_path) {
            reasons.push(format!(
                "{prefix} is a path of this machine (the checkout, its parent or the home directory)"
            ));
            // The longest prefix names the path; its parents would say the same again.
            break;
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// `n` parent steps, spelled at run time so that this file passes its own check.
    fn up(n: usize) -> String {
        "../".repeat(n)
    }

    /// The old sibling folder's fixtures path, relative to a crate two levels deep.
    fn planted_fixtures() -> String {
        format!("{}{}/{}/whois", up(3), OLD_SIBLING[0], OLD_SIBLING[1])
    }

    /// A git work tree in a temporary directory with `files` added to its index.
    fn tree(files: &[(&str, String)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let status = git(dir.path()).args(["init", "--quiet"]).status().unwrap();
        assert!(status.success());
        add(dir.path(), files);
        dir
    }

    fn add(root: &Path, files: &[(&str, String)]) {
        for (name, text) in files {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            let status = git(root).args(["add", "--", name]).status().unwrap();
            assert!(status.success(), "git add {name}");
        }
    }

    /// A small workspace with the kinds of references the real one has, all of them inside it.
    fn clean_files() -> Vec<(&'static str, String)> {
        vec![
            ("Cargo.toml", "[workspace]\nmembers = [\"crates/*\"]\n".into()),
            (
                "README.md",
                [
                    "```sh",
                    "cargo run -p testkit --bin testkit-localapi -- --socket /tmp/ts.sock",
                    "kube-auth-proxy --localapi-socket /var/run/tailscale/tailscaled.sock",
                    "```",
                    "kubectl 1.32 is expected at /usr/bin/kubectl; see [docs](docs/a.md).",
                    "A URL such as https://example.com/a/b is not a file.",
                ]
                .join("\n"),
            ),
            (
                "docs/a.md",
                format!("[back]({}README.md) and `testdata/whois/a.json`\n", up(1)),
            ),
            (
                "crates/a/Cargo.toml",
                format!("[dependencies]\nb = {{ path = \"{}b\" }}\n", up(1)),
            ),
            (
                "crates/a/src/lib.rs",
                [
                    format!("#![doc = include_str!(\"{}README.md\")]", up(1)),
                    format!("const TOP: &str = include_str!(\"{}README.md\");", up(3)),
                    format!(
                        "fn f() -> String {{ format!(\"{{}}/{}testdata/whois/a.json\", env!(\"CARGO_MANIFEST_DIR\")) }}",
                        up(2)
                    ),
                    format!(
                        "const TRAVERSAL: &str = \"/api/v1/namespaces/default/pods/demo/{}kube-system\";",
                        up(3)
                    ),
                    "fn g(x: &[u8]) -> &[u8] { &x[..3] }".into(),
                    "fn h(s: S) { let S { a, .. } = s; }".into(),
                ]
                .join("\n"),
            ),
            ("crates/a/README.md", "[b](../b)\n".into()),
            ("testdata/whois/a.json", "{}\n".into()),
            (".ci/run", "cd \"$(dirname \"$0\")/..\"\n".into()),
            // Excluded: binary fuzz inputs and the lock file, whatever they hold.
            ("fuzz/corpus/t/seed", format!("{}\n", planted_fixtures())),
            ("Cargo.lock", format!("{}\n", planted_fixtures())),
            ("blob.bin", format!("\0{}", planted_fixtures())),
        ]
    }

    fn machine(root: &Path) -> MachinePaths {
        MachinePaths::new(
            root,
            Some(Path::new("/home/xtask-test-user")),
            &std::env::temp_dir(),
        )
    }

    #[test]
    fn a_clean_tree_passes() {
        let dir = tree(&clean_files());
        assert_eq!(scan_checkout(dir.path(), &machine(dir.path())).unwrap(), []);
        check(dir.path()).unwrap();
    }

    #[test]
    fn a_planted_reference_to_the_sibling_folder_fails_naming_file_and_line() {
        let dir = tree(&clean_files());
        let planted = format!(
            "use std::path::PathBuf;\nfn dir() -> PathBuf {{ PathBuf::from(env!(\"CARGO_MANIFEST_DIR\")).join(\"{}\") }}\n",
            planted_fixtures()
        );
        add(dir.path(), &[("crates/a/tests/support/mod.rs", planted)]);
        let findings = scan_checkout(dir.path(), &machine(dir.path())).unwrap();
        assert_eq!(findings.len(), 1, "{findings:?}");
        let finding = &findings[0];
        assert_eq!(
            (finding.file.as_str(), finding.line),
            ("crates/a/tests/support/mod.rs", 2)
        );
        assert!(
            finding.reasons[0].contains("climbs 1 level above the repository root"),
            "{finding}"
        );
        let error = check(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("crates/a/tests/support/mod.rs:2: "),
            "{error}"
        );
    }

    #[test]
    fn the_sibling_folder_is_refused_in_a_readme_command_and_by_its_fixtures_path() {
        let dir = tree(&clean_files());
        let sibling = format!("{}{}", up(1), OLD_SIBLING[0]);
        add(
            dir.path(),
            &[
                (
                    "crates/a/README.md",
                    format!("```\ncargo run -p a --example policy -- {sibling}/x.json\n```\n"),
                ),
                (
                    "crates/a/src/stack.rs",
                    format!(
                        "fn f(root: &Path) -> PathBuf {{ root.parent().unwrap().join(\"{}/{}\") }}\n",
                        OLD_SIBLING[0], OLD_SIBLING[1]
                    ),
                ),
            ],
        );
        let findings = scan_checkout(dir.path(), &machine(dir.path())).unwrap();
        let lines: Vec<String> = findings
            .iter()
            .map(|f| format!("{}:{}", f.file, f.line))
            .collect();
        assert_eq!(lines, ["crates/a/README.md:2", "crates/a/src/stack.rs:1"]);
    }

    #[test]
    fn climbing_out_is_refused_wherever_it_is_resolved_from() {
        let dir = tree(&clean_files());
        add(
            dir.path(),
            &[
                ("docs/b.md", format!("[elsewhere]({}x.md)\n", up(2))),
                ("crates/a/build.sh", format!("cat {}x\n", up(3))),
                (
                    "crates/a/src/more.rs",
                    format!("const X: &str = include_str!(\"{}x\");\n", up(4)),
                ),
                (
                    "crates/a/src/joined.rs",
                    format!(
                        "const X: &str = concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/{}x\");\n",
                        up(3)
                    ),
                ),
            ],
        );
        let findings = scan_checkout(dir.path(), &machine(dir.path())).unwrap();
        let lines: Vec<String> = findings.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 4, "{lines:#?}");
        for file in [
            "docs/b.md:1: ",
            "crates/a/build.sh:1: ",
            "crates/a/src/more.rs:1: ",
            "crates/a/src/joined.rs:1: ",
        ] {
            assert!(
                lines.iter().any(|l| l.starts_with(file)),
                "{file} in {lines:#?}"
            );
        }
    }

    #[test]
    fn paths_of_this_machine_are_refused_and_common_ones_pass() {
        let dir = tree(&clean_files());
        let root = dir.path().display().to_string();
        add(
            dir.path(),
            &[
                ("notes.txt", format!("built in {root}/target/debug\n")),
                (
                    "crates/a/src/home.rs",
                    "const C: &str = \"/home/xtask-test-user/.cargo/bin\";\n".into(),
                ),
                (
                    "docs/ok.md",
                    "`/home/someone-else/x`, /var/run/x.sock, file:///usr/share/x\n".into(),
                ),
            ],
        );
        let findings = scan_checkout(dir.path(), &machine(dir.path())).unwrap();
        let lines: Vec<String> = findings
            .iter()
            .map(|f| format!("{}:{}", f.file, f.line))
            .collect();
        assert_eq!(lines, ["crates/a/src/home.rs:1", "notes.txt:1"]);
    }

    #[test]
    fn a_symbolic_link_out_of_the_checkout_is_refused() {
        let dir = tree(&clean_files());
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("hostname")).unwrap();
        std::os::unix::fs::symlink(format!("{}x", up(2)), dir.path().join("docs/x")).unwrap();
        std::os::unix::fs::symlink(format!("{}README.md", up(1)), dir.path().join("docs/r"))
            .unwrap();
        for name in ["hostname", "docs/x", "docs/r"] {
            assert!(git(dir.path())
                .args(["add", "--", name])
                .status()
                .unwrap()
                .success());
        }
        let findings = scan_checkout(dir.path(), &machine(dir.path())).unwrap();
        let files: Vec<&str> = findings.iter().map(|f| f.file.as_str()).collect();
        assert_eq!(files, ["docs/x", "hostname"]);
    }

    #[test]
    fn a_marked_line_is_allowed() {
        let machine = machine(Path::new("/nowhere/checkout"));
        let line = format!("{}{} // {ALLOW_MARKER}", up(3), OLD_SIBLING[0]);
        assert_eq!(scan_text("crates/a/src/lib.rs", 2, &line, &machine), []);
        let line = format!("{}{}", up(3), OLD_SIBLING[0]);
        assert_eq!(
            scan_text("crates/a/src/lib.rs", 2, &line, &machine).len(),
            1
        );
    }

    #[test]
    fn machine_paths_are_the_checkout_its_parent_and_home_but_not_common_directories() {
        let temp = Path::new("/var/folders/tmp");
        let paths = |root: &str, home: Option<&str>| {
            MachinePaths::new(Path::new(root), home.map(Path::new), temp).prefixes
        };
        assert_eq!(
            paths("/srv/code/checkout", Some("/home/op")),
            ["/srv/code/checkout", "/srv/code", "/home/op"]
        );
        assert_eq!(paths("/tmp/fc", Some("/")), ["/tmp/fc"]);
        assert_eq!(paths("/var/folders/tmp/x/", None), ["/var/folders/tmp/x"]);
        assert_eq!(paths("/checkout", None), ["/checkout"]);
    }

    #[test]
    fn the_climb_counts_levels_above_the_base() {
        assert_eq!(climb(&format!("{}x", up(1)), 1), None);
        assert_eq!(climb(&format!("{}x", up(2)), 1), Some(1));
        assert_eq!(climb(&format!("a/{}..", up(2)), 1), Some(1));
        assert_eq!(climb(".../x", 0), None);
        assert_eq!(climb(&format!("./{}x", up(2)), 0), Some(2));
    }
}

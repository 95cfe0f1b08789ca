//! Loading the whois fixtures (`testdata/whois/` at the repository root).

use std::path::PathBuf;

use capmodel::WhoIs;

/// The fixture folder, `testdata/whois/` at the repository root.
pub(crate) fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/whois")
}

/// Reads and parses one whois fixture, failing the test with a clear message if it is missing.
pub(crate) fn whois_fixture(name: &str) -> WhoIs {
    let path = fixture_dir().join(name);
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|err| panic!("cannot read whois fixture {}: {err}", path.display()));
    WhoIs::from_json(&bytes)
        .unwrap_or_else(|err| panic!("fixture {} does not parse: {err}", path.display()))
}

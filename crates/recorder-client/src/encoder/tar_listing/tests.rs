//! The tar listing over archives written by GNU tar (ustar, GNU and pax formats) and by hand (the
//! pax headers Go's archive/tar, and so kubectl, writes), in any split, and over garbage.

use std::path::Path;
use std::process::Command;

use proptest::prelude::*;

use super::*;

/// What a listing reports for `bytes` fed in the pieces `cuts` makes, and the bytes it hands back.
fn list_split(bytes: &[u8], cuts: &[usize]) -> (Vec<TarEvent>, Vec<u8>, Option<String>) {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(bytes.len())).collect();
    cuts.sort_unstable();
    let mut listing = TarListing::new();
    let mut events = Vec::new();
    let mut rest = Vec::new();
    let mut from = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        listing.feed(&bytes[from..cut], &mut events, &mut rest);
        from = cut;
    }
    let note = listing.finish();
    (events, rest, note)
}

fn list(bytes: &[u8]) -> (Vec<TarEvent>, Vec<u8>, Option<String>) {
    list_split(bytes, &[])
}

fn entries(events: &[TarEvent]) -> Vec<(String, u64, EntryKind)> {
    events
        .iter()
        .filter_map(|e| match e {
            TarEvent::Entry(entry) => Some((entry.name.clone(), entry.size, entry.kind.clone())),
            _ => None,
        })
        .collect()
}

const LONG_DIR: &str =
    "a-directory-name-that-is-long-enough/to-need-more-than-the-hundred-bytes-of-a-name-field";

/// A directory as `kubectl cp` copies one: a text file, a binary file of a few hundred KB, a
/// name longer than 100 bytes, an empty file and a symlink.
fn sample_tree(root: &Path) {
    let x = root.join("x");
    std::fs::create_dir_all(x.join(LONG_DIR)).expect("mkdir");
    std::fs::write(x.join("hello.txt"), b"hello\n").expect("write");
    let binary: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(x.join("data.bin"), binary).expect("write");
    std::fs::write(x.join(LONG_DIR).join("long-file-name.txt"), b"deep").expect("write");
    std::fs::write(x.join("empty"), b"").expect("write");
    std::os::unix::fs::symlink("hello.txt", x.join("link")).expect("symlink");
}

/// The tree archived by GNU tar in `format`, members sorted by name.
fn gnu_tar(format: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    sample_tree(dir.path());
    let output = Command::new("tar")
        .args(["--sort=name", "--format", format, "-cf", "-", "x"])
        .current_dir(dir.path())
        .output()
        .expect("run tar");
    assert!(
        output.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn expected_files() -> Vec<(String, u64, EntryKind)> {
    vec![
        ("x/".into(), 0, EntryKind::Directory),
        (
            "x/a-directory-name-that-is-long-enough/".into(),
            0,
            EntryKind::Directory,
        ),
        (format!("x/{LONG_DIR}/"), 0, EntryKind::Directory),
        (
            format!("x/{LONG_DIR}/long-file-name.txt"),
            4,
            EntryKind::File,
        ),
        ("x/data.bin".into(), 300_000, EntryKind::File),
        ("x/empty".into(), 0, EntryKind::File),
        ("x/hello.txt".into(), 6, EntryKind::File),
        ("x/link".into(), 0, EntryKind::Symlink("hello.txt".into())),
    ]
}

#[test]
fn lists_gnu_ustar_and_pax_archives() {
    for format in ["gnu", "ustar", "pax"] {
        let archive = gnu_tar(format);
        let (events, rest, note) = list(&archive);
        assert_eq!(entries(&events), expected_files(), "{format}");
        assert_eq!(events.last(), Some(&TarEvent::End), "{format}");
        assert!(rest.is_empty(), "{format}");
        assert_eq!(note, None, "{format}");
    }
}

/// A header block as Go's archive/tar writes one (ustar magic, octal fields, checksum).
fn header_block(name: &str, size: u64, typeflag: u8) -> Vec<u8> {
    let mut block = vec![0u8; BLOCK];
    block[..name.len().min(100)].copy_from_slice(&name.as_bytes()[..name.len().min(100)]);
    block[100..108].copy_from_slice(b"0000644\0");
    block[108..116].copy_from_slice(b"0000000\0");
    block[116..124].copy_from_slice(b"0000000\0");
    block[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    block[136..148].copy_from_slice(b"00000000000\0");
    block[156] = typeflag;
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    seal(&mut block);
    block
}

fn seal(block: &mut [u8]) {
    block[148..156].copy_from_slice(b"        ");
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

fn member(archive: &mut Vec<u8>, header: Vec<u8>, data: &[u8]) {
    archive.extend_from_slice(&header);
    archive.extend_from_slice(data);
    archive.resize(archive.len().div_ceil(BLOCK) * BLOCK, 0);
}

fn pax_record(key: &str, value: &str) -> String {
    // The length counts itself: find the fixed point.
    let body = format!(" {key}={value}\n");
    let mut length = body.len() + 1;
    while length.to_string().len() + body.len() != length {
        length = length.to_string().len() + body.len();
    }
    format!("{length}{body}")
}

#[test]
fn pax_and_gnu_long_names_and_base_256_sizes() {
    let long = "d/".repeat(80) + "file-with-a-long-name.bin";
    let mut archive = Vec::new();
    let pax = pax_record("path", &long) + &pax_record("size", "5") + &pax_record("mtime", "1.5");
    member(
        &mut archive,
        header_block("PaxHeaders/x", pax.len() as u64, b'x'),
        pax.as_bytes(),
    );
    member(&mut archive, header_block("truncated", 3, b'0'), b"12345");
    let gnu_name = format!("{long}-gnu\0");
    member(
        &mut archive,
        header_block("././@LongLink", gnu_name.len() as u64, b'L'),
        gnu_name.as_bytes(),
    );
    member(&mut archive, header_block("short", 2, b'0'), b"ab");
    member(&mut archive, header_block("hard", 0, b'1'), b"");
    let mut big = header_block("big", 0, b'0');
    big[124..136].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
    seal(&mut big);
    archive.extend_from_slice(&big);
    archive.extend_from_slice(&[b'z'; BLOCK]);
    let global = pax_record("comment", "ignored");
    member(
        &mut archive,
        header_block("global", global.len() as u64, b'g'),
        global.as_bytes(),
    );
    member(&mut archive, header_block("last", 0, b'0'), b"");
    archive.extend_from_slice(&[0; 2 * BLOCK]);
    let (events, rest, note) = list(&archive);
    assert_eq!(
        entries(&events),
        vec![
            (long.clone(), 5, EntryKind::File),
            (format!("{long}-gnu"), 2, EntryKind::File),
            ("hard".into(), 0, EntryKind::HardLink(String::new())),
            ("big".into(), 3, EntryKind::File),
            ("last".into(), 0, EntryKind::File),
        ]
    );
    assert!(rest.is_empty());
    assert_eq!(note, None);
}

#[test]
fn garbage_stops_the_listing_and_is_handed_back() {
    let text = b"tar: x: Cannot stat: No such file or directory\n".repeat(20);
    let (events, rest, note) = list(&text);
    assert_eq!(
        events,
        vec![TarEvent::Stopped(
            "not a tar header (no checksum) at byte 0".into()
        )]
    );
    assert_eq!(rest, text);
    assert_eq!(note, None);

    // A good member, then a block whose checksum is wrong.
    let mut archive = Vec::new();
    member(&mut archive, header_block("ok", 1, b'0'), b"1");
    let mut bad = header_block("bad", 0, b'0');
    bad[0] = b'B';
    archive.extend_from_slice(&bad);
    archive.extend_from_slice(b"after");
    let (events, rest, _) = list(&archive);
    assert_eq!(entries(&events).len(), 1);
    assert_eq!(
        events.last(),
        Some(&TarEvent::Stopped(
            "not a tar header (bad checksum) at byte 1024".into()
        ))
    );
    assert_eq!(rest, [&bad[..], b"after"].concat());
}

#[test]
fn data_after_the_end_is_handed_back_and_zero_padding_is_not() {
    let mut archive = gnu_tar("gnu");
    let padded = archive.len();
    assert_eq!(padded % 10240, 0, "GNU tar pads to its record size");
    let (events, rest, _) = list(&archive);
    assert_eq!(events.last(), Some(&TarEvent::End));
    assert!(rest.is_empty());
    archive.extend_from_slice(b"\0\0more");
    let (events, rest, _) = list(&archive);
    assert_eq!(
        events.last(),
        Some(&TarEvent::Stopped(format!(
            "data after the end of the archive at byte {}",
            padded + 2
        )))
    );
    assert_eq!(rest, b"more");
}

#[test]
fn extended_headers_are_bounded() {
    let mut archive = header_block("././@LongLink", 1 << 30, b'L');
    archive.extend_from_slice(&[b'a'; 4096]);
    let (events, rest, _) = list(&archive);
    assert_eq!(
        events,
        vec![TarEvent::Stopped(format!(
            "an extended header of {} bytes (more than {MAX_EXTENDED_HEADER}) at byte 0",
            1 << 30
        ))]
    );
    assert_eq!(rest, vec![b'a'; 4096], "the data after the refused header");

    let bad_pax = "99 path=x\n";
    let mut archive = Vec::new();
    member(
        &mut archive,
        header_block("pax", bad_pax.len() as u64, b'x'),
        bad_pax.as_bytes(),
    );
    let (events, _, _) = list(&archive);
    assert!(
        matches!(events.last(), Some(TarEvent::Stopped(note)) if note.starts_with("a malformed pax header")),
        "{events:?}"
    );
}

#[test]
fn an_archive_cut_short_says_so() {
    let archive = gnu_tar("pax");
    let (_, _, note) = list(&archive[..2000]);
    assert_eq!(
        note.as_deref(),
        Some("the archive is cut short at byte 2000")
    );
    let mut one = Vec::new();
    member(&mut one, header_block("f", 1, b'0'), b"1");
    let (_, _, note) = list(&one);
    assert_eq!(
        note.as_deref(),
        Some("the archive ends at byte 1024 without its end-of-archive blocks")
    );
    assert_eq!(list(b"").2.as_deref(), Some("the archive is empty"));
}

#[test]
fn numeric_fields() {
    assert_eq!(octal(b"0000644\0"), Some(0o644));
    assert_eq!(octal(b"  644 \0"), Some(0o644));
    assert_eq!(octal(b"\0\0\0"), Some(0));
    assert_eq!(octal(b"0009\0"), None);
    assert_eq!(size(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]), Some(65536));
    assert_eq!(size(&[0xff; 12]), None, "negative");
    assert_eq!(size(&[0xbf; 12]), None, "beyond u64");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_split_lists_the_same(
        format in prop::sample::select(vec!["gnu", "ustar", "pax"]),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..24),
    ) {
        let archive = gnu_tar(format);
        let cuts: Vec<usize> = cuts.iter().map(|c| c.index(archive.len() + 1)).collect();
        prop_assert_eq!(list_split(&archive, &cuts), list(&archive));
    }

    #[test]
    fn mangled_archives_never_panic_and_hand_back_a_suffix(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut archive = gnu_tar("pax");
        archive.truncate(40 * BLOCK);
        for (at, byte) in flips {
            let at = at.index(archive.len());
            archive[at] = byte;
        }
        let cuts: Vec<usize> = cuts.iter().map(|c| c.index(archive.len() + 1)).collect();
        let (events, rest, _) = list_split(&archive, &cuts);
        prop_assert_eq!((events.clone(), rest.clone()), {
            let (e, r, _) = list(&archive);
            (e, r)
        });
        prop_assert!(archive.ends_with(&rest));
        prop_assert!(events.iter().filter(|e| matches!(e, TarEvent::Stopped(_))).count() <= 1);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let (_, rest, _) = list(&bytes);
        prop_assert!(bytes.ends_with(&rest));
    }
}

//! kube-recorder's web UI in a real headless Chromium (Debian's chromium and chromium-driver),
//! with recordings made by the real kubectl through the proxy: an unauthorised viewer sees no
//! data, the login form takes the viewer token, the list shows the session, a search finds a word
//! that was only in its output, the player renders its frames, strings from the session stay
//! text, and a live session's output appears while kubectl still runs.
//!
//! Screenshots of the list, the player and the live view go to `KAP_SCREENSHOTS_DIR` when it is
//! set (the docs' copies were made so), else into the stack's temporary directory.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use e2e::stack::{admin_caller, RecordingGrant, Stack, StackOptions, RECORDER_VIEWER_TOKEN};
use e2e::webdriver::Browser;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// A word made by the session (`printf` joins its halves): in its output, not in its command.
const OUTPUT_WORD: &str = "fizz-wombat";
/// A string that would run script if the page ever put a command into the DOM as HTML.
const HOSTILE: &str = "<img src=x onerror=document.body.dataset.pwned=1>";

fn screenshot(browser: &Browser, dir: &std::path::Path, name: &str) -> anyhow::Result<()> {
    let target = std::env::var_os("KAP_SCREENSHOTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("screenshots"));
    std::fs::create_dir_all(&target)?;
    let png = browser.screenshot()?;
    anyhow::ensure!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(target.join(name), png)?;
    Ok(())
}

/// Waits until the player's terminal shows `needle`.
fn terminal_shows(browser: &Browser, what: &str, needle: &str) -> anyhow::Result<()> {
    let script = format!(
        "const t = document.querySelector('.ap-term-text'); \
         return !!t && t.textContent.includes({});",
        json!(needle)
    );
    browser.wait_for(what, &script, WAIT)?;
    Ok(())
}

#[test]
fn the_web_ui_lists_searches_plays_and_follows_recorded_sessions() -> anyhow::Result<()> {
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.recording = Some(RecordingGrant::ENFORCED);
    let stack = Stack::start(options)?;
    let recorder = stack
        .recorder_addr
        .clone()
        .ok_or_else(|| anyhow!("no recorder"))?;
    let ui = format!("http://{recorder}/ui/");

    // A finished session: its output has OUTPUT_WORD, its command the hostile string.
    let script = format!("printf '%s-%s\\n' fizz wombat; : '{HOSTILE}'");
    let output = stack
        .kubectl
        .run(&["exec", "demo", "--", "sh", "-c", &script])?;
    assert!(output.success, "{}\n{}", output.stderr, stack.logs());
    assert_eq!(output.stdout, format!("{OUTPUT_WORD}\n"));
    let finished = stack.finished_recordings(1)?;
    let id = finished[0]["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no id: {finished:?}"))?
        .to_owned();
    assert!(
        !finished[0]["command"]
            .as_str()
            .unwrap_or_default()
            .contains(OUTPUT_WORD),
        "the word must be in the output only"
    );

    let browser = Browser::start(&stack.dir)?;

    // Unauthorised: the login form, and no data on either page.
    browser.goto(&ui)?;
    browser.wait_for(
        "the login form",
        "return !document.getElementById('login').hidden",
        WAIT,
    )?;
    let page = browser.eval("return document.body.innerText", json!([]))?;
    let page = page.as_str().unwrap_or_default();
    assert!(!page.contains(&id) && !page.contains("demo"), "{page}");
    let rows = browser.eval(
        "return document.querySelectorAll('#recordings tbody tr').length",
        json!([]),
    )?;
    assert_eq!(rows, json!(0));
    browser.goto(&format!("{ui}recordings/{id}"))?;
    browser.wait_for(
        "the login form on the recording page",
        "return !document.getElementById('login').hidden",
        WAIT,
    )?;
    let page = browser.eval("return document.body.innerText", json!([]))?;
    let page = page.as_str().unwrap_or_default();
    assert!(!page.contains("alice") && !page.contains("fizz"), "{page}");
    // What the page's own script could fetch without a session: a 401, no data.
    let status = browser.eval(
        "const r = new XMLHttpRequest(); r.open('GET', '/api/recordings', false); r.send(); \
         return [r.status, r.responseText];",
        json!([]),
    )?;
    assert_eq!(status[0], json!(401), "{status}");
    assert!(!status[1].as_str().unwrap_or_default().contains(&id));
    // A wrong token is refused.
    browser.type_into("#token", "not-a-viewer-token-at-all")?;
    browser.click("#login-form button")?;
    browser.wait_for(
        "the refusal",
        "return document.getElementById('login-error').textContent",
        WAIT,
    )?;

    // Signed in with the token: the list shows the session.
    browser.goto(&ui)?;
    browser.wait_for(
        "the login form again",
        "return !document.getElementById('login').hidden",
        WAIT,
    )?;
    browser.type_into("#token", RECORDER_VIEWER_TOKEN)?;
    browser.click("#login-form button")?;
    browser.wait_for(
        "the recorded session in the list",
        &format!("return !!document.querySelector('#recordings tr[data-id=\"{id}\"]')"),
        WAIT,
    )?;
    let token_in_url = browser.eval("return location.href", json!([]))?;
    assert!(!token_in_url
        .as_str()
        .unwrap_or_default()
        .contains(RECORDER_VIEWER_TOKEN));
    // The hostile command is shown as text, not run as HTML.
    let row = browser.eval(
        &format!("return document.querySelector('#recordings tr[data-id=\"{id}\"]').innerText"),
        json!([]),
    )?;
    assert!(row.as_str().unwrap_or_default().contains(HOSTILE), "{row}");
    let injected = browser.eval(
        "return [document.querySelectorAll('#recordings img').length, document.body.dataset.pwned || '']",
        json!([]),
    )?;
    assert_eq!(injected, json!([0, ""]), "the command was put in as HTML");
    screenshot(&browser, &stack.dir, "list.png")?;

    // Search: the output's word finds it; a word in no output finds nothing.
    browser.type_into("#filters input[name=q]", "nothing-printed-this")?;
    browser.click("#filters button[type=submit]")?;
    browser.wait_for(
        "an empty search result",
        "return document.getElementById('status').textContent.startsWith('0 recordings')",
        WAIT,
    )?;
    browser.type_into("#filters input[name=q]", "FIZZ-WOMBAT")?;
    browser.click("#filters button[type=submit]")?;
    browser.wait_for(
        "the search hit",
        &format!(
            "const rows = document.querySelectorAll('#recordings tbody tr'); \
             return rows.length === 1 && rows[0].dataset.id === '{id}' && \
             rows[0].querySelector('mark') !== null && \
             rows[0].querySelector('mark').textContent.includes('{OUTPUT_WORD}')"
        ),
        WAIT,
    )?;
    screenshot(&browser, &stack.dir, "search.png")?;

    // The player renders the session's frames; the seal checks out.
    browser.goto(&format!("{ui}recordings/{id}"))?;
    terminal_shows(&browser, "the recorded output in the player", OUTPUT_WORD)?;
    browser.wait_for(
        "the seal status",
        "return document.getElementById('seal').className.includes('verified')",
        WAIT,
    )?;
    let meta = browser.eval(
        "return document.getElementById('meta').innerText",
        json!([]),
    )?;
    assert!(
        meta.as_str().unwrap_or_default().contains(HOSTILE),
        "{meta}"
    );
    let injected = browser.eval("return document.body.dataset.pwned || ''", json!([]))?;
    assert_eq!(injected, json!(""));
    screenshot(&browser, &stack.dir, "player.png")?;
    // The player and our scripts run under the page's policy without being refused anything.
    let console = browser.console()?;
    let refused: Vec<&String> = console
        .iter()
        .filter(|m| m.contains("Content Security Policy") || m.contains("Refused to"))
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");

    // Live: a session still running appears in the list at once, and its output shows while
    // kubectl still runs.
    browser.goto(&ui)?;
    browser.wait_for(
        "the list",
        &format!("return !!document.querySelector('#recordings tr[data-id=\"{id}\"]')"),
        WAIT,
    )?;
    let (mut session, mut stdin) = stack
        .kubectl
        .spawn_interactive(&["exec", "-i", "demo", "--", "cat"])?;
    stdin.write_all(b"live-alpha\n")?;
    stdin.flush()?;
    session.wait_for("live-alpha", WAIT)?;
    let live_id = browser.wait_for(
        "the live session in the list without a reload",
        "const live = [...document.querySelectorAll('#recordings tbody tr')]\
           .find(row => row.querySelector('.live')); return live ? live.dataset.id : ''",
        WAIT,
    )?;
    let live_id = live_id.as_str().unwrap_or_default().to_owned();
    assert_ne!(live_id, id);
    // The row's link (read, then followed: the list may be redrawn at any moment).
    let link = browser.eval(
        &format!("return document.querySelector('#recordings tr[data-id=\"{live_id}\"] a').href"),
        json!([]),
    )?;
    browser.goto(link.as_str().unwrap_or_default())?;
    browser.wait_for(
        "the live badge",
        "return !document.getElementById('live-badge').hidden",
        WAIT,
    )?;
    terminal_shows(&browser, "output so far in the live view", "live-alpha")?;
    stdin.write_all(b"live-bravo\n")?;
    stdin.flush()?;
    session.wait_for("live-bravo", WAIT)?;
    terminal_shows(&browser, "new output in the live view", "live-bravo")?;
    assert!(!session.has_exited(), "the session must still run");
    let recordings = stack.recordings()?;
    let live: Vec<&Value> = recordings
        .iter()
        .filter(|r| r["id"] == live_id.as_str())
        .collect();
    assert_eq!(
        live.first().map(|r| r["outcome"].clone()),
        Some(json!("recording"))
    );
    screenshot(&browser, &stack.dir, "live.png")?;

    // The session ends: the page says so.
    drop(stdin);
    let (success, stderr) = session.wait_exit(WAIT)?;
    assert!(success, "{stderr}");
    browser.wait_for(
        "the end of the live session",
        "return document.getElementById('player-note').textContent.includes('ended')",
        WAIT,
    )?;

    // The events tab lists the recorder's record of reads, this browser's among them.
    browser.goto(&format!("{ui}#events"))?;
    browser.wait_for(
        "the record of reads in the events tab",
        "return [...document.querySelectorAll('#events tbody tr')]\
           .some(row => row.innerText.includes('kube-recorder-view') && row.innerText.includes('live'))",
        WAIT,
    )?;

    // Logging out leaves no access behind.
    browser.click("#logout")?;
    browser.wait_for(
        "the login form after logout",
        "return !document.getElementById('login').hidden",
        WAIT,
    )?;
    let status = browser.eval(
        "const r = new XMLHttpRequest(); r.open('GET', '/api/recordings', false); r.send(); return r.status;",
        json!([]),
    )?;
    assert_eq!(status, json!(401));
    Ok(())
}

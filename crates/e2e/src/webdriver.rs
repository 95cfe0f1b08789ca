//! A real headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`), for
//! the web UI's tests: chromedriver runs as a child process and is spoken to with the harness's
//! plain HTTP client (W3C WebDriver is JSON over HTTP), so no WebDriver crate is needed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::process::Service;

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver (package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One browser: chromedriver and its session, both ended on drop.
#[derive(Debug)]
pub struct Browser {
    base: String,
    session: String,
    _driver: Service,
}

/// One WebDriver call: status and JSON body. chromedriver says `Connection: close` but keeps
/// the connection open, so the body is read by its `Content-Length` rather than to the end.
fn request(method: &str, url: &str, body: Option<&[u8]>) -> anyhow::Result<(u16, Value)> {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("only http:// URLs: {url}"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream =
        std::net::TcpStream::connect(authority).with_context(|| format!("connect {authority}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let body = body.unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line from chromedriver: {status_line:?}"))?;
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let length = length.ok_or_else(|| anyhow!("chromedriver sent no Content-Length"))?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let value = serde_json::from_slice(&body)
        .with_context(|| format!("not JSON: {}", String::from_utf8_lossy(&body)))?;
    Ok((status, value))
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

impl Browser {
    /// Starts chromedriver (its log in `dir`) and a headless Chromium session. Fails, naming the
    /// command that installs them, when either is missing.
    pub fn start(dir: &Path) -> anyhow::Result<Browser> {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(binary).exists() {
                bail!(
                    "{binary} is missing: the web UI test needs Debian's chromium and \
                     chromium-driver; `cargo xtask ci` (or `cargo xtask e2e`) installs them"
                );
            }
        }
        let port = free_port()?;
        let mut command = Command::new(CHROMEDRIVER);
        command.arg(format!("--port={port}"));
        let (driver, _) =
            Service::start("chromedriver", command, &dir.join("chromedriver.log"), 1)?;
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = request("GET", &format!("{base}/status"), None)
                .is_ok_and(|(_, status)| status["value"]["ready"] == true);
            if ready {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "chromedriver never became ready");
            // Polling an observable condition under a deadline.
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut args = vec![
            "--headless=new",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,1300",
            "--lang=en-US",
        ];
        // Chromium's sandbox needs user namespaces that root in a container does not get.
        if is_root() {
            args.push("--no-sandbox");
        }
        let profile = dir.join("chromium-profile");
        let profile_arg = format!("--user-data-dir={}", profile.display());
        args.push(&profile_arg);
        let capabilities = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
                "goog:loggingPrefs": {"browser": "ALL"},
            }}
        });
        let (_, value) = request(
            "POST",
            &format!("{base}/session"),
            Some(capabilities.to_string().as_bytes()),
        )?;
        let session = value["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no WebDriver session: {value}"))?
            .to_owned();
        Ok(Browser {
            base,
            session,
            _driver: driver,
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let body = body.map(|b| b.to_string());
        let (status, value) = request(method, &url, body.as_deref().map(str::as_bytes))
            .with_context(|| format!("WebDriver {method} {path}"))?;
        if status != 200 {
            bail!("WebDriver {method} {path}: {status} {value}");
        }
        Ok(value["value"].clone())
    }

    /// Loads `url` (returns once the page has loaded).
    pub fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call("POST", "/url", Some(json!({ "url": url })))
            .map(|_| ())
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page and returns its value.
    pub fn eval(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Polls `script` until it returns something truthy (returned), failing after `deadline`
    /// with the last value and `what`.
    pub fn wait_for(&self, what: &str, script: &str, deadline: Duration) -> anyhow::Result<Value> {
        let until = Instant::now() + deadline;
        loop {
            let value = self.eval(script, json!([]))?;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
                _ => true,
            };
            if truthy {
                return Ok(value);
            }
            if Instant::now() >= until {
                let text = self
                    .eval(
                        "return document.body ? document.body.innerText : ''",
                        json!([]),
                    )
                    .unwrap_or_default();
                bail!("{what}: not within {deadline:?}; the page shows:\n{text}");
            }
            // Polling an observable condition in the page under a deadline.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The WebDriver reference of the first element matching `css`.
    pub fn find(&self, css: &str) -> anyhow::Result<String> {
        let found = self.call(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        found
            .as_object()
            .and_then(|object| object.values().next())
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no element {css}: {found}"))
    }

    /// Types `text` into the element matching `css`, as a user would.
    pub fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let element = self.find(css)?;
        self.call(
            "POST",
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )?;
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .map(|_| ())
    }

    /// Clicks the element matching `css`.
    pub fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self.find(css)?;
        self.call(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .map(|_| ())
    }

    /// The console messages the browser logged since the last call (chromedriver's log
    /// endpoint), each as `LEVEL message`: Content-Security-Policy refusals among them.
    pub fn console(&self) -> anyhow::Result<Vec<String>> {
        let entries = self.call("POST", "/se/log", Some(json!({ "type": "browser" })))?;
        Ok(entries
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["level"].as_str().unwrap_or_default(),
                            e["message"].as_str().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        let value = self.call("GET", "/screenshot", None)?;
        let data = value
            .as_str()
            .ok_or_else(|| anyhow!("no screenshot data"))?;
        Ok(base64::engine::general_purpose::STANDARD.decode(data)?)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends Chromium; chromedriver itself is killed with its Service.
        let _ = request(
            "DELETE",
            &format!("{}/session/{}", self.base, self.session),
            None,
        );
    }
}

//! An S3 server for tests that is not ours: moto's server mode (PyPI `moto[server]`), started as
//! a child process on a free port of the loopback and stopped when dropped. `cargo xtask ci`
//! installs it ([`MOTO_REQUIREMENT`]).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context as _};

/// The pip requirement `cargo xtask ci` installs.
pub const MOTO_REQUIREMENT: &str = "moto[server]==5.2.1";

/// How long moto gets to start listening.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A running moto server.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl S3Server {
    /// Starts moto on a free port and waits until it listens. Fails, naming the command that
    /// installs it, when moto is missing.
    pub fn start() -> anyhow::Result<Self> {
        let present = Command::new("python3")
            .args(["-c", "import moto.server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !present {
            bail!(
                "moto's S3 server is not installed: run `cargo xtask ci` (or `python3 -m pip \
                 install '{MOTO_REQUIREMENT}'`)"
            );
        }
        let mut child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting python3 -m moto.server")?;
        // werkzeug prints ` * Running on http://127.0.0.1:PORT` on stdout or stderr, by version.
        let (lines, found) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(at) = line.find("http://127.0.0.1:") {
                        let endpoint = line[at..].trim().to_owned();
                        let _ = lines.send(endpoint);
                    }
                }
            });
        }
        let endpoint = match found.recv_timeout(START_DEADLINE) {
            Ok(endpoint) => endpoint,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("moto did not say where it listens within {START_DEADLINE:?}");
            }
        };
        Ok(Self { child, endpoint })
    }

    /// Creates a bucket (moto takes any credentials).
    pub fn create_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        let status = self.request("PUT", &format!("/{bucket}"))?;
        if status != 200 {
            bail!("creating bucket {bucket} answered {status}");
        }
        Ok(())
    }

    /// The keys of the multipart uploads in progress in `bucket` (ListMultipartUploads), for
    /// checking that nothing was left behind.
    pub fn multipart_uploads(&self, bucket: &str) -> anyhow::Result<Vec<String>> {
        let body = self.get(&format!("/{bucket}?uploads"))?;
        Ok(xml_values(&String::from_utf8_lossy(&body), "Key"))
    }

    /// The keys in `bucket` starting with `prefix`, in key order, read with boto3 (which moto
    /// brings): moto refuses unsigned reads of objects stored with a signature.
    pub fn keys(&self, bucket: &str, prefix: &str) -> anyhow::Result<Vec<String>> {
        let script = "import boto3,sys\n\
            c=boto3.client('s3',endpoint_url=sys.argv[1],aws_access_key_id='test',\
            aws_secret_access_key='test',region_name='us-east-1')\n\
            for page in c.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[2],Prefix=sys.argv[3]):\n\
            \x20 [print(o['Key']) for o in page.get('Contents',[])]\n";
        let output = self.boto3(script, &[bucket, prefix])?;
        Ok(String::from_utf8_lossy(&output)
            .lines()
            .map(str::to_owned)
            .collect())
    }

    /// The object `key` of `bucket` (read with boto3, as [`S3Server::keys`]), `None` when there
    /// is none.
    pub fn object(&self, bucket: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        if !self.keys(bucket, key)?.iter().any(|listed| listed == key) {
            return Ok(None);
        }
        let script = "import boto3,sys\n\
            c=boto3.client('s3',endpoint_url=sys.argv[1],aws_access_key_id='test',\
            aws_secret_access_key='test',region_name='us-east-1')\n\
            sys.stdout.buffer.write(c.get_object(Bucket=sys.argv[2],Key=sys.argv[3])['Body'].read())\n";
        self.boto3(script, &[bucket, key]).map(Some)
    }

    fn boto3(&self, script: &str, args: &[&str]) -> anyhow::Result<Vec<u8>> {
        let output = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&self.endpoint)
            .args(args)
            .output()
            .context("running python3 with boto3")?;
        if !output.status.success() {
            bail!(
                "boto3 {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(output.stdout)
    }

    fn address(&self) -> &str {
        self.endpoint.trim_start_matches("http://")
    }

    fn request(&self, method: &str, target: &str) -> anyhow::Result<u16> {
        let (status, _) = self.exchange(method, target)?;
        Ok(status)
    }

    fn get(&self, target: &str) -> anyhow::Result<Vec<u8>> {
        let (status, body) = self.exchange("GET", target)?;
        if status != 200 {
            bail!(
                "GET {target} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(body)
    }

    /// One HTTP/1.0 request on its own connection, the answer read whole (HTTP/1.0: the body
    /// ends when the connection closes, never chunked).
    fn exchange(&self, method: &str, target: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut stream = TcpStream::connect(self.address())
            .with_context(|| format!("connecting to moto at {}", self.endpoint))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "{method} {target} HTTP/1.0\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
            self.address()
        )?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        let split = answer
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .with_context(|| format!("no HTTP head in moto's answer to {method} {target}"))?;
        let head = String::from_utf8_lossy(&answer[..split]);
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("moto answered {method} {target} with {head:?}"))?;
        Ok((status, answer[split + 4..].to_vec()))
    }
}

/// The texts of the elements `<name>...</name>` in an XML answer, in order.
fn xml_values(xml: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    xml.split(open.as_str())
        .skip(1)
        .filter_map(|rest| rest.split(close.as_str()).next())
        .map(str::to_owned)
        .collect()
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

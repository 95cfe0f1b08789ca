//! Runs a recorder in a temporary directory, stores one recording through the library and reads
//! it back over the read API, as `kube-recorder ls --server` does.
//!
//! ```sh
//! cargo run -p recorder-server --example record_and_list
//! ```

use recorder_server::{Protocol, RecorderApiClient, RecorderServer, RecordingEnd, ServerOptions};

const CAST: &str = concat!(
    r#"{"version":2,"width":80,"height":24,"timestamp":1714564984,"srcNode":"laptop.example.ts.net","srcNodeUser":"alice@example.com","kubernetes":{"PodName":"demo","Namespace":"default","Container":"main","SessionType":"exec"}}"#,
    "\n",
    r#"[0.25,"o","hello\r\n"]"#,
    "\n",
    r#"[0.5,"m","exit 0"]"#,
    "\n",
);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    // Reading needs a viewer: here a token that sees every namespace.
    let token = "example-viewer-token-0123";
    let tokens = dir.path().join("viewer-tokens");
    std::fs::write(&tokens, format!("{token} example *\n"))?;
    let mut options = ServerOptions::new("127.0.0.1:0".parse()?, dir.path());
    options.access.viewer_tokens = Some(tokens);
    let server = RecorderServer::start(options).await?;
    println!(
        "recorder at http://{}, storing in {}",
        server.addr(),
        dir.path().display()
    );

    // What an upload over /v2/record or /record does, without the network.
    let mut recording = server.store().create_recording(Protocol::V2).await?;
    recording.write(CAST.as_bytes()).await?;
    recording.finish(RecordingEnd::Complete).await?;

    let client = RecorderApiClient::new(&format!("http://{}", server.addr()))?.with_token(token);
    for meta in client.recordings().await? {
        println!(
            "{}  {}  {}/{}  exit {:?}  {:?}  {} bytes",
            meta.id,
            meta.who(),
            meta.namespace.unwrap_or_default(),
            meta.pod.unwrap_or_default(),
            meta.exit_code,
            meta.outcome,
            meta.bytes
        );
    }
    server.shutdown().await;
    Ok(())
}

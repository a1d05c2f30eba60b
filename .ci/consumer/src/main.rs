//! A program that depends on the packaged `mde-client` crate (unpacked, by path), as a
//! consumer would after `cargo add mde-client`: the README's collection, against a simulator
//! started as its own process (its base URL is the first line it prints).

use std::io::BufRead;
use std::process::{Command, Stdio};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = std::env::args().nth(1).ok_or("usage: consumer PATH_TO_MDE_SIM")?;
    let mut child = Command::new(sim)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut base = String::new();
    std::io::BufReader::new(stdout).read_line(&mut base)?;
    let base = base.trim();

    let client = mde_client::Client::builder()
        .base_url(base)
        .login_url(base)
        .client_credentials("sim-tenant", "sim-client", "sim-secret")
        .build()?;
    let action = client
        .collect_investigation_package("1e5bc9d7e413ddd7902c2932e418702b84d0cc07", "Collect forensics due to alert 1234")
        .await?;
    let scan = client
        .run_antivirus_scan(
            "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
            "Check machine for viruses due to alert 3212",
            mde_client::types::ScanType::Full,
        )
        .await?;
    child.kill()?;
    println!(
        "packaged mde-client: collection {} {:?}, scan {} {:?}",
        action.id.unwrap_or_default(),
        action.status,
        scan.id.unwrap_or_default(),
        scan.status
    );
    Ok(())
}

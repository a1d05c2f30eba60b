//! `mde library list|upload|delete`, and `mde live --ensure-script`: the live response
//! library.

use std::path::Path;

use mde_client::types::LibraryFile;
use mde_client::{Client, operations};
use sha2::{Digest, Sha256};

use crate::cli::{Cli, LibraryCommand};
use crate::json::{Line, Lines};
use crate::session::connect;
use crate::vocabulary::{self, OK, USAGE, code_of, fail, failed};

/// Runs a `mde library` command.
pub(crate) async fn run(cli: &Cli, command: &LibraryCommand) -> Result<u8, u8> {
    let lines = Lines::of(cli.run.output);
    // The upload is read first: a file that cannot be read sends nothing.
    let upload = match command {
        LibraryCommand::Upload {
            file,
            description,
            parameters_description,
            overwrite,
        } => {
            let mut upload = read(file)?;
            upload.description = description.clone();
            upload.has_parameters = Some(parameters_description.is_some());
            upload.parameters_description = parameters_description.clone();
            upload.override_if_exists = Some(*overwrite);
            Some(upload)
        }
        _ => None,
    };
    let (simulator, client) = connect(cli, &[]).await?;
    let done = match (command, upload) {
        (LibraryCommand::List, _) => {
            let files = client
                .send(operations::ListLibraryFiles {})
                .await
                .map_err(failed("cannot list the library"))?;
            header(lines.as_ref());
            for file in &files.value {
                print(lines.as_ref(), "listed", file);
            }
            OK
        }
        (LibraryCommand::Upload { .. }, Some(upload)) => {
            let file = client.send(upload).await.map_err(|e| {
                // The service's words name its form field; say the flag that sets it.
                let text = vocabulary::error_text(&e);
                let hint = match text.contains("OverrideIfExists") {
                    true => "; give --overwrite to replace it",
                    false => "",
                };
                fail(code_of(&e), format!("cannot upload the file: {text}{hint}"))
            })?;
            header(lines.as_ref());
            print(lines.as_ref(), "uploaded", &file);
            OK
        }
        (LibraryCommand::Upload { .. }, None) => unreachable!("read above"),
        (LibraryCommand::Delete { name }, _) => {
            client
                .send(operations::DeleteLibraryFile {
                    file_name: name.clone(),
                })
                .await
                .map_err(failed(&format!("cannot delete {name}")))?;
            match &lines {
                Some(lines) => lines.write(&Line::new("deleted").with("file_name", name)),
                None => println!("deleted {}", vocabulary::escape(name)),
            }
            OK
        }
    };
    if let Some(sim) = simulator {
        sim.stop().await;
    }
    Ok(done)
}

/// The table's header, when the output is a table.
fn header(lines: Option<&Lines>) {
    if lines.is_none() {
        println!(
            "{:<32}  {:<64}  {:<28}  {:<20}  PARAMETERS  DESCRIPTION",
            "NAME", "SHA256", "UPDATED", "BY"
        );
    }
}

fn print(lines: Option<&Lines>, outcome: &str, file: &LibraryFile) {
    match lines {
        Some(lines) => lines.write(
            &Line::new(outcome)
                .with("file_name", &file.file_name)
                .with("sha256", &file.sha256)
                .with("description", &file.description)
                .with("created_by", &file.created_by)
                .with("creation_time", &file.creation_time)
                .with("last_updated_time", &file.last_updated_time)
                .with("has_parameters", file.has_parameters)
                .with("parameters_description", &file.parameters_description),
        ),
        None => println!(
            "{:<32}  {:<64}  {:<28}  {:<20}  {:<10}  {}",
            vocabulary::escape(file.file_name.as_deref().unwrap_or("-")),
            file.sha256.as_deref().unwrap_or("-"),
            file.last_updated_time
                .as_ref()
                .map_or("-".into(), ToString::to_string),
            vocabulary::escape(file.created_by.as_deref().unwrap_or("-")),
            if file.has_parameters == Some(true) {
                "yes"
            } else {
                "no"
            },
            vocabulary::escape(file.description.as_deref().unwrap_or(""))
        ),
    }
}

/// The upload of a local file under its file name, or the usage error that says why not
/// (read before anything is sent).
pub(crate) fn read(path: &Path) -> Result<operations::UploadLibraryFile, u8> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| mde_client::is_library_name(n))
        .ok_or_else(|| {
            fail(
                USAGE,
                format!(
                    "{}: a library file's name has letters, digits, -, _ and . only; rename the file",
                    path.display()
                ),
            )
        })?
        .to_string();
    let content = std::fs::read(path)
        .map_err(|e| fail(USAGE, format!("cannot read {}: {e}", path.display())))?;
    if content.len() > mde_client::LIBRARY_FILE_LIMIT {
        return Err(fail(
            USAGE,
            format!(
                "{} is {} bytes; the library takes {} at most",
                path.display(),
                content.len(),
                mde_client::LIBRARY_FILE_LIMIT
            ),
        ));
    }
    Ok(operations::UploadLibraryFile::new(name, content))
}

/// What `--ensure-script` does in one tenant's library.
#[derive(Debug)]
pub(crate) enum Ensure {
    /// The library holds the same content under the name: nothing to send.
    Same(String),
    /// The library lacks the name: the script is uploaded.
    Upload(operations::UploadLibraryFile),
    /// The library holds other content under the name: replaced (with `--overwrite`), keeping
    /// the held file's description and parameters; the held and the new SHA-256.
    Replace(operations::UploadLibraryFile, String, String),
}

impl Ensure {
    /// What it does (`would`: in a dry run), with `tenant: ` before it in a run of profiles.
    pub fn say(&self, tenant: &str, would: bool) -> String {
        let will = if would { "would " } else { "" };
        match self {
            Ensure::Same(name) => {
                format!("mde: {tenant}the library holds {name} with the same SHA-256; not uploaded")
            }
            Ensure::Upload(script) => format!(
                "mde: {tenant}the library lacks {}; {will}upload it",
                script.file_name
            ),
            Ensure::Replace(script, held, ours) => format!(
                "mde: {tenant}the library holds another {} (SHA-256 {held}); {will}replace it with this file's (SHA-256 {ours}), keeping its description and parameters",
                script.file_name
            ),
        }
    }
}

/// Reads the library and decides what `--ensure-script` does; a file of the same name and
/// other content is replaced only when the script says so (`OverrideIfExists`, set by
/// `--overwrite`), otherwise a usage error before anything is sent.
pub(crate) async fn plan_ensure(
    client: &Client,
    mut script: operations::UploadLibraryFile,
    tenant: &str,
    dry_run: bool,
) -> Result<Ensure, u8> {
    let sha256 = format!("{:x}", Sha256::digest(&script.content));
    let files = client
        .send(operations::ListLibraryFiles {})
        .await
        .map_err(failed("cannot list the library"))?;
    let held = files.value.into_iter().find(|f| {
        f.file_name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(&script.file_name))
    });
    let overwrite = script.override_if_exists == Some(true);
    let name = script.file_name.clone();
    let ensure = match held {
        None => {
            script.override_if_exists = Some(false);
            Ensure::Upload(script)
        }
        Some(held) => {
            let held_sha = held.sha256.clone().unwrap_or_default();
            if held_sha.eq_ignore_ascii_case(&sha256) {
                Ensure::Same(name.clone())
            } else {
                script.override_if_exists = Some(true);
                script.description = script.description.or(held.description);
                script.has_parameters = script.has_parameters.or(held.has_parameters);
                script.parameters_description = script
                    .parameters_description
                    .or(held.parameters_description);
                Ensure::Replace(script, held_sha, sha256)
            }
        }
    };
    if let (Ensure::Replace(_, held, ours), false, false) = (&ensure, overwrite, dry_run) {
        return Err(fail(
            USAGE,
            format!(
                "{tenant}the library holds another {name} (SHA-256 {held}; this file's is {ours}), perhaps a colleague's: give --overwrite to replace it (its description and parameters are kept), or rename your script; nothing was sent"
            ),
        ));
    }
    Ok(ensure)
}

/// Uploads what [`plan_ensure`] decided, saying what it does.
pub(crate) async fn ensure(client: &Client, ensure: Ensure, tenant: &str) -> Result<(), u8> {
    eprintln!("{}", ensure.say(tenant, false));
    if let Ensure::Upload(script) | Ensure::Replace(script, ..) = ensure {
        let name = script.file_name.clone();
        client
            .send(script)
            .await
            .map_err(failed(&format!("cannot upload {name}")))?;
    }
    Ok(())
}

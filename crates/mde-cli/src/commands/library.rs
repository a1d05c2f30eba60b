//! `mde library list|upload|delete`, and `mde live --ensure-script`: the live response
//! library.

use std::path::Path;

use mde_client::types::LibraryFile;
use mde_client::{Client, operations};
use sha2::{Digest, Sha256};

use crate::cli::{Cli, LibraryCommand};
use crate::json::{Line, Lines};
use crate::output;
use crate::session::{OK, USAGE, connect, fail, failed};

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
            if lines.is_none() {
                println!(
                    "{:<32}  {:<64}  {:<28}  {:<20}  PARAMETERS  DESCRIPTION",
                    "NAME", "SHA256", "UPDATED", "BY"
                );
            }
            for file in &files.value {
                print(lines.as_ref(), "listed", file);
            }
            OK
        }
        (LibraryCommand::Upload { .. }, Some(upload)) => {
            let file = client
                .send(upload)
                .await
                .map_err(failed("cannot upload the file"))?;
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
                None => println!("deleted {}", output::escape(name)),
            }
            OK
        }
    };
    if let Some(sim) = simulator {
        sim.stop().await;
    }
    Ok(done)
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
            output::escape(file.file_name.as_deref().unwrap_or("-")),
            file.sha256.as_deref().unwrap_or("-"),
            file.last_updated_time
                .as_ref()
                .map_or("-".into(), ToString::to_string),
            output::escape(file.created_by.as_deref().unwrap_or("-")),
            if file.has_parameters == Some(true) {
                "yes"
            } else {
                "no"
            },
            output::escape(file.description.as_deref().unwrap_or(""))
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

/// Uploads the script when the library lacks it or holds another SHA-256; says which.
pub(crate) async fn ensure(
    client: &Client,
    mut script: operations::UploadLibraryFile,
) -> Result<(), u8> {
    let sha256 = format!("{:x}", Sha256::digest(&script.content));
    let files = client
        .send(operations::ListLibraryFiles {})
        .await
        .map_err(failed("cannot list the library"))?;
    let held = files.value.iter().find(|f| {
        f.file_name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(&script.file_name))
    });
    let name = script.file_name.clone();
    match held.and_then(|f| f.sha256.as_deref()) {
        Some(held) if held.eq_ignore_ascii_case(&sha256) => {
            eprintln!("mde: the library holds {name} with the same SHA-256; not uploaded");
            return Ok(());
        }
        Some(_) => eprintln!("mde: the library holds another {name}; replacing it"),
        None => eprintln!("mde: the library lacks {name}; uploading it"),
    }
    script.override_if_exists = Some(held.is_some());
    client
        .send(script)
        .await
        .map_err(failed(&format!("cannot upload {name}")))?;
    Ok(())
}

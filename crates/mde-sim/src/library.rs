//! The live response library: the files a session's PutFile and RunScript name
//! (list-library-files.md, upload-library.md, delete-library.md).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use mde_client::{LIBRARY_FILE_LIMIT, Timestamp, is_library_name, types};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The upload's form, as it came.
#[derive(Debug, Default)]
pub struct Upload {
    /// The `file` part's file name and content.
    pub file: Option<(String, Vec<u8>)>,
    /// The text parts by name.
    pub fields: BTreeMap<String, String>,
}

impl Upload {
    /// Reads a `multipart/form-data` body; `Err` says what is wrong with it.
    pub async fn read(
        content_type: Option<&str>,
        body: axum::body::Bytes,
    ) -> Result<Upload, String> {
        let boundary = content_type
            .and_then(|t| multer::parse_boundary(t).ok())
            .ok_or("the body is not multipart/form-data")?;
        let stream =
            futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
        let mut form = multer::Multipart::new(stream, boundary);
        let mut upload = Upload::default();
        while let Some(field) = form.next_field().await.map_err(|e| e.to_string())? {
            let name = field.name().unwrap_or_default().to_string();
            match field.file_name().map(str::to_string) {
                Some(file_name) if name == "file" => {
                    let content = field.bytes().await.map_err(|e| e.to_string())?;
                    upload.file = Some((file_name, content.to_vec()));
                }
                _ => {
                    let text = field.text().await.map_err(|e| e.to_string())?;
                    upload.fields.insert(name, text);
                }
            }
        }
        Ok(upload)
    }
}

#[derive(Clone, Debug)]
struct Entry {
    file: types::LibraryFile,
    created: DateTime<Utc>,
}

/// The library of the tenant, by name (names compare without regard to case, as Windows
/// file names do).
#[derive(Debug, Default)]
pub struct Library {
    files: BTreeMap<String, Entry>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "InvalidInput", message)
}

/// A form field read as the boolean it stands for; absent or empty is false (the page:
/// "Default value is an empty string").
fn flag(upload: &Upload, name: &str) -> Result<bool, ApiError> {
    match upload
        .fields
        .get(name)
        .map(|v| v.trim().to_ascii_lowercase())
    {
        None => Ok(false),
        Some(v) if v.is_empty() || v == "false" => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) => Err(bad(format!(
            "{name} must be true or false, not {}",
            mde_client::workspace::shorten(&v, 40)
        ))),
    }
}

impl Library {
    /// Every file, by name.
    pub fn list(&self) -> Vec<types::LibraryFile> {
        self.files.values().map(|e| e.file.clone()).collect()
    }

    /// Whether a file of this name is in the library.
    pub fn has(&self, name: &str) -> bool {
        self.files.contains_key(&name.to_ascii_lowercase())
    }

    /// Adds or replaces (`OverrideIfExists`) a file; the 400 for a form the page would call
    /// an incorrect body: no file, a bad name, over 20 MiB, a name taken.
    pub fn upload(
        &mut self,
        upload: &Upload,
        requestor: &str,
        now: DateTime<Utc>,
    ) -> Result<types::LibraryFile, ApiError> {
        let (name, content) = upload.file.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "MissingRequiredParameter",
                "The form has no file part named `file`",
            )
        })?;
        if !is_library_name(name) {
            return Err(bad(format!(
                "{} is not a valid file name: use alphanumeric characters, `-`, `_` or `.`",
                mde_client::workspace::shorten(name, 100)
            )));
        }
        if content.len() > LIBRARY_FILE_LIMIT {
            return Err(bad("File max size limitation is 20MB"));
        }
        let overwrite = flag(upload, "OverrideIfExists")?;
        let has_parameters = flag(upload, "HasParameters")?;
        let key = name.to_ascii_lowercase();
        let created = match self.files.get(&key) {
            Some(_) if !overwrite => {
                return Err(bad(format!(
                    "A file named {name} is already in the library; send OverrideIfExists=true to replace it"
                )));
            }
            Some(old) => old.created,
            None => now,
        };
        let text = |field: &str| upload.fields.get(field).filter(|v| !v.is_empty()).cloned();
        let file = types::LibraryFile {
            file_name: Some(name.clone()),
            sha256: Some(format!("{:x}", Sha256::digest(content))),
            description: text("Description"),
            creation_time: Some(Timestamp::from(created)),
            last_updated_time: Some(Timestamp::from(now)),
            created_by: Some(requestor.to_string()),
            has_parameters: Some(has_parameters),
            parameters_description: text("ParametersDescription"),
            extra: Default::default(),
        };
        self.files.insert(
            key,
            Entry {
                file: file.clone(),
                created,
            },
        );
        Ok(file)
    }

    /// Removes a file; the 404 when there is none of that name.
    pub fn delete(&mut self, name: &str) -> Result<(), ApiError> {
        self.files
            .remove(&name.to_ascii_lowercase())
            .map(drop)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "File {} was not found in the library",
                    mde_client::workspace::shorten(name, 100)
                ))
            })
    }
}

//! The calls progenitor cannot generate, written by hand: progenitor 0.15 takes no
//! `multipart/form-data` body (`../shared/reference/progenitor-notes.md`). Each goes through
//! the generated client's hooks exactly as a generated call does (rate limits, token, body
//! cap, typed errors); the xtask generates everything else of the operation (its
//! `OperationId`, facts, `Answer` and `AnyRequest` variants) and names the type here.

use std::fmt;

use progenitor_client::{ClientHooks, ClientInfo, Error, OperationInfo, ResponseValue};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};

use crate::generated::{self, operations, types};
use crate::operations::{Answer, OperationId, Request, Sent};

/// The most the upload takes: "File max size limitation is 20MB" (upload-library.md), read
/// as 20 MiB; the spec's `LibraryFileUpload.file.maxLength`.
pub const LIBRARY_FILE_LIMIT: usize = 20 << 20;

/// Whether `name` follows the library's rule: "alphanumeric characters and some symbols
/// (specifically, `-`, `_`, or `.`)" (live-response.md; the spec's `fileName` pattern).
pub fn is_library_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name != "."
        && name != ".."
}

/// Why `name` cannot be a library file's name, for an error.
pub(crate) fn check_library_name(name: &str) -> Result<(), String> {
    if is_library_name(name) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a library file name: use letters, digits, `-`, `_` and `.`",
            crate::error::shorten(name, 100)
        ))
    }
}

/// The request of `uploadLibraryFile`: `POST /api/libraryfiles`, a `multipart/form-data`
/// form (spec schema `LibraryFileUpload`). Send it with [`Client::send`](crate::Client::send).
/// The name and size are checked before anything is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadLibraryFile {
    /// The name in the library (the `file` part's file name), e.g. `collect.ps1`.
    pub file_name: String,
    /// The content, at most [`LIBRARY_FILE_LIMIT`] bytes.
    pub content: Vec<u8>,
    /// `Description`.
    pub description: Option<String>,
    /// `ParametersDescription`: what the script's arguments are.
    pub parameters_description: Option<String>,
    /// `HasParameters`: whether the script takes arguments.
    pub has_parameters: Option<bool>,
    /// `OverrideIfExists`: replace a library file of the same name.
    pub override_if_exists: Option<bool>,
}

impl UploadLibraryFile {
    /// The form's members, as the spec's `LibraryFileUpload` names them (a test holds the
    /// two together).
    pub const FORM: [&'static str; 5] = [
        "file",
        "Description",
        "ParametersDescription",
        "HasParameters",
        "OverrideIfExists",
    ];

    /// A file to upload as `file_name`, with nothing else said of it.
    pub fn new(file_name: impl Into<String>, content: impl Into<Vec<u8>>) -> Self {
        Self {
            file_name: file_name.into(),
            content: content.into(),
            description: None,
            parameters_description: None,
            has_parameters: None,
            override_if_exists: None,
        }
    }

    /// The form as a `multipart/form-data` body and its content type, or why the service
    /// would refuse it.
    fn form(self) -> Result<(String, Vec<u8>), String> {
        check_library_name(&self.file_name)?;
        if self.content.len() > LIBRARY_FILE_LIMIT {
            return Err(format!(
                "{} is {} bytes; the library takes files of {LIBRARY_FILE_LIMIT} bytes at most",
                self.file_name,
                self.content.len()
            ));
        }
        let [file, description, parameters, has_parameters, overwrite] = Self::FORM;
        let mut parts = vec![(file, Some(self.file_name.as_str()), self.content.clone())];
        for (name, value) in [
            (description, self.description),
            (parameters, self.parameters_description),
            (has_parameters, self.has_parameters.map(|b| b.to_string())),
            (overwrite, self.override_if_exists.map(|b| b.to_string())),
        ] {
            if let Some(value) = value {
                parts.push((name, None, value.into_bytes()));
            }
        }
        Ok(encode(&parts))
    }
}

/// Parts as a `multipart/form-data` body (RFC 7578), and its content type. Written here
/// rather than with reqwest's `multipart` feature, which adds `mime_guess` and three more
/// crates to every consumer's build for a form of five members (`cargo xtask build-cost`:
/// 38.4 s and 134 crates with it, the bar 0.5x of progenitor's macro route reached). The
/// boundary is the SHA-256 of the parts: no part can hold it, and the same form is the same
/// body.
fn encode(parts: &[(&str, Option<&str>, Vec<u8>)]) -> (String, Vec<u8>) {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for (name, file, content) in parts {
        hash.update(name.as_bytes());
        hash.update(file.unwrap_or_default().as_bytes());
        hash.update(content);
    }
    let boundary: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let boundary = format!("mde-{boundary}");
    let mut body = Vec::new();
    for (name, file, content) in parts {
        // Names and file names are the form's own and library names: nothing to escape.
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(file) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The content is a length: a script's text stays out of logs.
impl fmt::Debug for UploadLibraryFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadLibraryFile")
            .field("file_name", &self.file_name)
            .field("content", &format_args!("<{} bytes>", self.content.len()))
            .field("description", &self.description)
            .field("parameters_description", &self.parameters_description)
            .field("has_parameters", &self.has_parameters)
            .field("override_if_exists", &self.override_if_exists)
            .finish()
    }
}

impl Request for UploadLibraryFile {
    const ID: OperationId = OperationId::UploadLibraryFile;
    type Response = types::LibraryFile;

    fn path_parameters(&self) -> Vec<(&'static str, &str)> {
        Vec::new()
    }

    async fn send(self, client: &generated::Client) -> Sent<Self::Response> {
        let (content_type, form) = self.form().map_err(Error::InvalidRequest)?;
        let url = format!(
            "{}{}",
            client.baseurl(),
            operations::UPLOAD_LIBRARY_FILE.path
        );
        let mut request = client
            .client()
            .post(url)
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header(CONTENT_TYPE, content_type)
            .body(form)
            .build()?;
        let info = OperationInfo {
            operation_id: "upload_library_file",
        };
        client.pre(&mut request, &info).await?;
        let result = client.exec(request, &info).await;
        client.post(&result, &info).await?;
        let response = result?;
        // The statuses the spec documents, as progenitor would match them.
        match response.status().as_u16() {
            200 => ResponseValue::from_response(response).await,
            400 | 401 | 403 | 429 | 500 => Err(Error::ErrorResponse(
                ResponseValue::from_response(response).await?,
            )),
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }

    fn answer(response: Self::Response) -> Answer {
        Answer::UploadLibraryFile(response)
    }

    fn created_action(_: &Self::Response) -> Option<&types::MachineAction> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_names_are_letters_digits_dash_underscore_and_dot() {
        for good in ["script1.ps1", "memdump.exe", "a-b_c.sh", "X"] {
            assert!(is_library_name(good), "{good}");
        }
        for bad in [
            "", ".", "..", "a b.ps1", "a/b", "a\\b", "é.ps1", "x;y", "a%2F",
        ] {
            assert!(!is_library_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_content_stays_out_of_debug() {
        let upload = UploadLibraryFile::new("s.ps1", b"$secret = 'hunter2'".to_vec());
        let shown = format!("{upload:?}");
        assert!(shown.contains("<19 bytes>"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn an_oversized_file_or_a_bad_name_is_refused_before_sending() {
        let big = UploadLibraryFile::new("big.bin", vec![0; LIBRARY_FILE_LIMIT + 1]);
        assert!(big.form().unwrap_err().contains("at most"));
        let named = UploadLibraryFile::new("../x.ps1", b"x".to_vec());
        assert!(
            named
                .form()
                .unwrap_err()
                .contains("not a library file name")
        );
        let fine = UploadLibraryFile::new("x.ps1", vec![0; LIBRARY_FILE_LIMIT]);
        assert!(fine.form().is_ok());
    }
}

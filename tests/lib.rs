//! Helpers shared by the workspace tests.

use mde_client::operations::{self, OperationId, Request};
use mde_client::types;
use serde_json::Value;

/// The workspace's spec; the tests derive their cases from it.
pub fn spec() -> mde_spec::Spec {
    mde_spec::Spec::load_workspace().expect("spec/openapi.yaml loads")
}

/// `value` without the object members that are `null`.
///
/// An explicit `null` and an absent member are the same `None` to a client, and the
/// generated types write neither; every other member must come back as it was.
pub fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// A client for `base` that sends `Authorization: Bearer {token}`. It does not hold calls back
/// for the documented rate limits, so that tests can meet the service's own.
pub fn client(base: &str, token: &str) -> mde_client::Client {
    mde_client::Client::builder()
        .base_url(base)
        .bearer_token(token)
        .enforce_rate_limits(false)
        .retries_on_429(0)
        .build()
        .expect("a loopback client builds")
}

/// What an operation called through the generated client answered: `Ok` is the decoded
/// success body, `Err` the status and decoded body of an error. An undocumented answer has
/// its status and its body as a string; a request the client refused to send has status 0.
pub type Answer = Result<Value, (u16, Value)>;

/// Sends `request` through the generated client, as it is: no check, no retry.
async fn send<R: Request>(client: &mde_client::Client, request: R) -> Answer
where
    R::Response: serde::Serialize,
{
    use mde_client::generated::Error;
    let raw = client.raw(R::ID).expect("the operation has a host");
    match request.send(raw).await {
        Ok(r) => Ok(serde_json::to_value(r.into_inner()).unwrap()),
        Err(Error::ErrorResponse(r)) => Err((
            r.status().as_u16(),
            serde_json::to_value(r.into_inner()).unwrap(),
        )),
        Err(Error::UnexpectedResponse(r)) => {
            Err((r.status().as_u16(), Value::String(format!("{r:?}"))))
        }
        Err(other) => Err((
            other.status().map_or(0, |s| s.as_u16()),
            Value::String(other.to_string()),
        )),
    }
}

/// Calls an operation of the spec through the generated client with the path's `id` and, where
/// the operation takes one, the `comment`. The one place that builds each operation's request
/// from a test's input.
#[allow(deprecated)] // the retired and deprecated operations are still part of the client
pub async fn call(client: &mde_client::Client, op: OperationId, id: &str, comment: &str) -> Answer {
    let id = id.to_string();
    let body = || types::CommentRequest::builder().comment(comment);
    // A comment the type refuses is sent as the builder has it: the generated client refuses
    // it before sending, as status 0.
    let body = || match types::CommentRequest::try_from(body()) {
        Ok(body) => Ok(body),
        Err(e) => Err((0, Value::String(e.to_string()))),
    };
    match op {
        OperationId::StartInvestigation => {
            send(client, operations::StartInvestigation { id, body: body()? }).await
        }
        OperationId::InitiateInvestigation => {
            send(
                client,
                operations::InitiateInvestigation { id, body: body()? },
            )
            .await
        }
        OperationId::CollectInvestigationPackage => {
            send(
                client,
                operations::CollectInvestigationPackage { id, body: body()? },
            )
            .await
        }
        OperationId::CollectInvestigationPackageGraph => {
            send(
                client,
                operations::CollectInvestigationPackageGraph { id, body: body()? },
            )
            .await
        }
        OperationId::RunAntiVirusScan => {
            // The documented scan type; the comment as the other operations take it.
            let body = types::RunAntiVirusScanRequest::builder()
                .comment(comment)
                .scan_type(types::ScanType::Full);
            let body = types::RunAntiVirusScanRequest::try_from(body)
                .map_err(|e| (0, Value::String(e.to_string())))?;
            send(client, operations::RunAntiVirusScan { id, body }).await
        }
        OperationId::GetMachineAction => send(client, operations::GetMachineAction { id }).await,
        OperationId::ListMachines => {
            let filter = Some(format!("id eq '{id}'"));
            let list = operations::ListMachines {
                filter,
                top: None,
                skip: None,
            };
            send(client, list).await
        }
        OperationId::ListMachineActions => {
            let filter = Some(format!("machineId eq '{id}'"));
            let list = operations::ListMachineActions {
                filter,
                top: None,
                skip: None,
            };
            send(client, list).await
        }
        OperationId::GetPackageUri => send(client, operations::GetPackageUri { id }).await,
        // The page's `{command-index}`: the first command.
        OperationId::GetLiveResponseResultDownloadLink => {
            let request = operations::GetLiveResponseResultDownloadLink { id, index: 0 };
            send(client, request).await
        }
        // The documented values of each page's example; the comment as the others take it.
        OperationId::IsolateMachine => {
            let body = types::IsolateRequest::builder()
                .comment(comment)
                .isolation_type(Some(types::IsolationType::Full));
            let body = types::IsolateRequest::try_from(body)
                .map_err(|e| (0, Value::String(e.to_string())))?;
            send(client, operations::IsolateMachine { id, body }).await
        }
        OperationId::UnisolateMachine => {
            send(client, operations::UnisolateMachine { id, body: body()? }).await
        }
        OperationId::RestrictCodeExecution => {
            send(
                client,
                operations::RestrictCodeExecution { id, body: body()? },
            )
            .await
        }
        OperationId::UnrestrictCodeExecution => {
            send(
                client,
                operations::UnrestrictCodeExecution { id, body: body()? },
            )
            .await
        }
        OperationId::StopAndQuarantineFile => {
            let body = types::StopAndQuarantineFileRequest::builder()
                .comment(comment)
                .sha1("87662bc3d60e4200ceaf7aae249d1c343f4b83c9");
            let body = types::StopAndQuarantineFileRequest::try_from(body)
                .map_err(|e| (0, Value::String(e.to_string())))?;
            send(client, operations::StopAndQuarantineFile { id, body }).await
        }
        OperationId::OffboardMachine => {
            send(client, operations::OffboardMachine { id, body: body()? }).await
        }
        OperationId::GetMachine => send(client, operations::GetMachine { id }).await,
        OperationId::FindMachinesByTag => {
            let find = operations::FindMachinesByTag {
                tag: "testTag"
                    .try_into()
                    .map_err(|e: types::error::ConversionError| {
                        (0, Value::String(e.to_string()))
                    })?,
                use_starts_with_filter: Some(true),
            };
            send(client, find).await
        }
        OperationId::SetMachineTag => {
            let body = types::MachineTagRequest::builder()
                .value("test Tag 2")
                .action(types::MachineTagAction::Add);
            let body = types::MachineTagRequest::try_from(body)
                .map_err(|e| (0, Value::String(e.to_string())))?;
            send(client, operations::SetMachineTag { id, body }).await
        }
        OperationId::RunLiveResponse => {
            // The page's example: a script, then the file it wrote.
            let command = |kind, params: &[(&str, &str)]| types::LiveResponseCommand {
                type_: kind,
                params: params
                    .iter()
                    .map(|(key, value)| types::LiveResponseParam {
                        key: key.to_string(),
                        value: value.to_string(),
                    })
                    .collect(),
            };
            let body = types::LiveResponseRequest::builder()
                .comment(comment)
                .commands(vec![
                    command(
                        types::LiveResponseCommandType::RunScript,
                        &[("ScriptName", "minidump.ps1"), ("Args", "OfficeClickToRun")],
                    ),
                    command(
                        types::LiveResponseCommandType::GetFile,
                        &[("Path", r"C:\windows\TEMP\OfficeClickToRun.dmp.zip")],
                    ),
                ]);
            let body = types::LiveResponseRequest::try_from(body)
                .map_err(|e| (0, Value::String(e.to_string())))?;
            send(client, operations::RunLiveResponse { id, body }).await
        }
        OperationId::CancelMachineAction => {
            send(
                client,
                operations::CancelMachineAction { id, body: body()? },
            )
            .await
        }
        OperationId::ListLibraryFiles => send(client, operations::ListLibraryFiles {}).await,
        // The form of upload-library.md's curl example (`id` names no library file).
        OperationId::UploadLibraryFile => {
            let upload = operations::UploadLibraryFile {
                description: Some("test description".into()),
                parameters_description: Some("test".into()),
                has_parameters: Some(true),
                override_if_exists: Some(true),
                ..operations::UploadLibraryFile::new("mdatp1.png", "(the content of mdatp1.png)")
            };
            send(client, upload).await
        }
        OperationId::DeleteLibraryFile => {
            send(client, operations::DeleteLibraryFile { file_name: id }).await
        }
    }
}

/// Every log line written to it, as text: the secret tests read it.
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// A subscriber writing every event, TRACE and up, here.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

//! A live response request built so that the service takes it: the commands in the
//! documented order (every PutFile, then every RunScript, then every GetFile), at least one,
//! library names it accepts, a comment (run-live-response.md, live-response.md).

use std::time::Duration;

use crate::Client;
use crate::error::Error;
use crate::hooks::WaitReason;
use crate::multipart::check_library_name;
use crate::operations::OperationId;
use crate::types::{
    LiveResponseCommand, LiveResponseCommandType as Type, LiveResponseParam, LiveResponseRequest,
};

/// Builds a [`LiveResponseRequest`] for
/// [`operations::RunLiveResponse`](crate::operations::RunLiveResponse);
/// [`build`](LiveResponse::build) refuses, before anything is sent, what the service would.
///
/// ```
/// let request = mde_client::LiveResponse::new()
///     .put_file("collect.ps1")
///     .run_script("collect.ps1", Some("-Fast"))
///     .get_file(r"C:\windows\TEMP\triage.zip")
///     .build("Triage for incident 42")?;
/// assert_eq!(request.commands.len(), 3);
/// // Out of the documented order: refused.
/// let wrong = mde_client::LiveResponse::new().get_file(r"C:\a").put_file("x.ps1").build("c");
/// assert!(wrong.is_err());
/// # Ok::<(), mde_client::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct LiveResponse {
    commands: Vec<LiveResponseCommand>,
}

fn command(kind: Type, params: &[(&str, &str)]) -> LiveResponseCommand {
    LiveResponseCommand {
        type_: kind,
        params: params
            .iter()
            .map(|(key, value)| LiveResponseParam {
                key: key.to_string(),
                value: value.to_string(),
            })
            .collect(),
    }
}

impl LiveResponse {
    /// No command yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts a library file on the device (no result).
    pub fn put_file(mut self, library_name: &str) -> Self {
        self.commands
            .push(command(Type::PutFile, &[("FileName", library_name)]));
        self
    }

    /// Runs a library script with its arguments (a transcript; cut after 10 minutes).
    pub fn run_script(mut self, library_name: &str, args: Option<&str>) -> Self {
        let mut params = vec![("ScriptName", library_name)];
        params.extend(args.map(|args| ("Args", args)));
        self.commands.push(command(Type::RunScript, &params));
        self
    }

    /// Collects a file from the device (its path as the device writes it, e.g.
    /// `C:\windows\TEMP\x.zip`; JSON escapes the backslashes).
    pub fn get_file(mut self, path: &str) -> Self {
        self.commands
            .push(command(Type::GetFile, &[("Path", path)]));
        self
    }

    /// The request, or [`Error::InvalidInput`] saying what the service would refuse.
    pub fn build(self, comment: &str) -> Result<LiveResponseRequest, Error> {
        check_commands(&self.commands).map_err(Error::InvalidInput)?;
        let comment = comment
            .try_into()
            .map_err(|_| Error::InvalidInput("the comment is empty".into()))?;
        Ok(LiveResponseRequest {
            commands: self.commands,
            comment,
        })
    }
}

impl LiveResponseCommand {
    /// The value of its parameter `key` (`FileName`, `ScriptName`, `Args`, `Path`).
    pub fn param(&self, key: &str) -> Option<&str> {
        let found = self.params.iter().find(|p| p.key == key);
        found.map(|p| p.value.as_str())
    }
}

/// Where a command type must come: PutFile, RunScript, GetFile; `None` for a type this
/// client does not know (the service may add one; it is not reordered).
fn rank(kind: &Type) -> Option<u8> {
    match kind {
        Type::PutFile => Some(0),
        Type::RunScript => Some(1),
        Type::GetFile => Some(2),
        Type::Other(_) => None,
    }
}

/// Why the service would refuse these commands, if it would: none, out of the documented
/// order, a library name outside its rule, a missing parameter.
pub fn check_commands(commands: &[LiveResponseCommand]) -> Result<(), String> {
    if commands.is_empty() {
        return Err("a live response session needs at least one command".into());
    }
    let mut last = 0;
    for (i, c) in commands.iter().enumerate() {
        if let Some(rank) = rank(&c.type_) {
            if rank < last {
                return Err(format!(
                    "command {i} ({}) comes after a later kind: the service takes every PutFile, then every RunScript, then every GetFile",
                    c.type_
                ));
            }
            last = rank;
        }
        let (key, library) = match c.type_ {
            Type::PutFile => ("FileName", true),
            Type::RunScript => ("ScriptName", true),
            Type::GetFile => ("Path", false),
            Type::Other(_) => continue,
        };
        let value = c
            .param(key)
            .ok_or_else(|| format!("command {i} ({}) has no {key}", c.type_))?;
        if library {
            check_library_name(value)?;
        } else if value.trim().is_empty() {
            return Err(format!("command {i} (GetFile) has an empty Path"));
        }
    }
    Ok(())
}

/// Live response sessions running at once in a tenant, at most (run-live-response.md, LEARN
/// 2025-12-31; 25 in older pages).
pub const SESSIONS: usize = 50;

/// How often a call refused for the session limit looks whether a session ended.
const SESSION_LOOK: Duration = Duration::from_secs(15);

impl Client {
    /// The live response sessions of the tenant not yet final (`Pending`, `InProgress`),
    /// with one listMachineActions call (a page per 10,000).
    pub async fn running_sessions(&self) -> Result<usize, Error> {
        let filter = "type eq 'LiveResponse' and (status eq 'Pending' or status eq 'InProgress')";
        Ok(self.list_actions(Some(filter.to_string())).await?.len())
    }

    /// After a 429 of runLiveResponse: `true` once a session ended, when the tenant holds
    /// [`SESSIONS`] running (the 429 was the session limit), looking every 15 s, for at most
    /// `longest`. `false` when it holds fewer (the 429 was another limit), when the sessions
    /// cannot be listed (an app without Machine.Read.All) or after `longest`: the 429's
    /// `Retry-After` applies then.
    pub(crate) async fn wait_for_a_session(&self, longest: Duration) -> bool {
        let runtime = &self.runtime;
        let started = runtime.clock.now();
        let full = async || self.running_sessions().await.is_ok_and(|n| n >= SESSIONS);
        if !full().await {
            return false;
        }
        while runtime.clock.now().saturating_sub(started) < longest {
            runtime.waiting(
                OperationId::RunLiveResponse,
                WaitReason::SessionLimit,
                SESSION_LOOK,
            );
            runtime.clock.sleep(SESSION_LOOK).await;
            if !full().await {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_service_refuses_is_refused_before_sending() {
        let refused = |builder: LiveResponse| builder.build("c").unwrap_err().to_string();
        assert!(refused(LiveResponse::new()).contains("at least one"));
        assert!(
            refused(LiveResponse::new().run_script("a.ps1", None).put_file("b")).contains("order")
                || refused(LiveResponse::new().run_script("a.ps1", None).put_file("b"))
                    .contains("after")
        );
        assert!(
            refused(
                LiveResponse::new()
                    .get_file("C:\\x")
                    .run_script("a.ps1", None)
            )
            .contains("after")
        );
        assert!(
            refused(LiveResponse::new().put_file("../evil.ps1"))
                .contains("not a library file name")
        );
        assert!(
            refused(LiveResponse::new().run_script("a b.ps1", None))
                .contains("not a library file name")
        );
        assert!(refused(LiveResponse::new().get_file(" ")).contains("empty Path"));
        assert!(LiveResponse::new().get_file("C:\\x").build("").is_err());
        let ok = LiveResponse::new()
            .put_file("a.ps1")
            .put_file("b.exe")
            .run_script("a.ps1", Some("-x"))
            .get_file("C:\\x")
            .get_file("C:\\y")
            .build("c")
            .unwrap();
        let json = serde_json::to_value(&ok).unwrap();
        assert_eq!(
            json["Commands"][2]["params"][1],
            serde_json::json!({"key": "Args", "value": "-x"})
        );
        assert_eq!(json["Comment"], "c");
    }
}

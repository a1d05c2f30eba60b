//! The readers of an operation's own extensions: its limits, permissions, deprecation,
//! the action it creates, its command, what undoes it, what it saves, its servers.

use crate::{Operation, Spec};
use serde_json::Value;

use super::*;

impl Operation {
    /// The operation's `x-rate-limit` windows (an empty list: none documented).
    pub fn rate_limits(&self) -> Read<Vec<RateWindow>> {
        let at = self.pointer();
        let Some(value) = self.value.get("x-rate-limit") else {
            return error(
                at,
                "no x-rate-limit (write `x-rate-limit: []` where none is documented)",
            );
        };
        let Some(windows) = value.as_array() else {
            return error(
                format!("{at}/x-rate-limit"),
                "x-rate-limit must be a list of {calls, seconds}",
            );
        };
        windows
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let field = |name: &str| {
                    w.get(name)
                        .and_then(Value::as_u64)
                        .filter(|n| *n > 0)
                        .map_or_else(
                            || {
                                error(
                                    format!("{at}/x-rate-limit/{i}"),
                                    format!("x-rate-limit: `{name}` must be a positive integer"),
                                )
                            },
                            Ok,
                        )
                };
                Ok(RateWindow {
                    calls: field("calls")?,
                    seconds: field("seconds")?,
                })
            })
            .collect()
    }

    /// The operation's `x-permissions`: a map naming at least one permission or role.
    pub fn permissions(&self) -> Read<Permissions> {
        let at = format!("{}/x-permissions", self.pointer());
        let Some(value) = self.value.get("x-permissions") else {
            return error(
                self.pointer(),
                "no x-permissions (the documented permissions or directory roles)",
            );
        };
        if !value.is_object() {
            return error(at, "x-permissions must be a map");
        }
        let list = |field: &str| match value.get(field) {
            None => Ok(Vec::new()),
            Some(v) => names(
                v,
                &format!("{at}/{field}"),
                &format!("x-permissions.{field}"),
            ),
        };
        let permissions = Permissions {
            application: list("application")?,
            delegated: list("delegated")?,
            directory_roles: list("directoryRoles")?,
            user_role: text(value, "userRole", &at)?,
            user_note: text(value, "userNote", &at)?,
            source: text(value, "source", &at)?,
        };
        if let Some(unknown) = value
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
            .find(|k| {
                !matches!(
                    k.as_str(),
                    "application"
                        | "delegated"
                        | "directoryRoles"
                        | "userRole"
                        | "userNote"
                        | "source"
                )
            })
        {
            return error(
                at,
                format!("x-permissions has an unknown field `{unknown}`"),
            );
        }
        if permissions.application.is_empty()
            && permissions.delegated.is_empty()
            && permissions.directory_roles.is_empty()
        {
            return error(
                at,
                "x-permissions names no application, delegated permission or directory role",
            );
        }
        Ok(permissions)
    }

    /// The operation's `x-deprecation`: required (with a `note`) exactly when it is
    /// `deprecated: true`.
    pub fn deprecation(&self) -> Read<Option<Deprecation>> {
        let at = format!("{}/x-deprecation", self.pointer());
        match (self.deprecated(), self.value.get("x-deprecation")) {
            (false, None) => Ok(None),
            (false, Some(_)) => error(at, "x-deprecation on an operation not marked deprecated"),
            (true, None) => error(
                self.pointer(),
                "deprecated without x-deprecation (a `note`, and `retired`/`source` when known)",
            ),
            (true, Some(d)) => Ok(Some(Deprecation {
                note: required_text(d, "note", &at, "x-deprecation")?,
                retired: date(d, "retired", &at)?,
                retiring: date(d, "retiring", &at)?,
                source: text(d, "source", &at)?,
            })),
        }
    }

    /// The operation's `x-tenant-quota`: its limits are the tenant's, shared by every app of
    /// it, and its queries spend a CPU allocation. `None` without one.
    pub fn tenant_quota(&self) -> Read<Option<TenantQuota>> {
        let at = format!("{}/x-tenant-quota", self.pointer());
        let Some(q) = self.value.get("x-tenant-quota") else {
            return Ok(None);
        };
        let seconds = |field: &str| match q.get(field) {
            None => Ok(None),
            Some(v) => v.as_u64().filter(|n| *n > 0).map_or_else(
                || {
                    error(
                        format!("{at}/{field}"),
                        format!("x-tenant-quota.{field} must be a positive integer"),
                    )
                },
                |n| Ok(Some(n)),
            ),
        };
        if let Some((unknown, _)) = q.as_object().into_iter().flatten().find(|(k, _)| {
            !matches!(
                k.as_str(),
                "cpuSecondsPerHour" | "cpuSecondsPerDay" | "cycleSeconds" | "note" | "source"
            )
        }) {
            return error(
                at,
                format!("x-tenant-quota has an unknown field `{unknown}`"),
            );
        }
        Ok(Some(TenantQuota {
            cpu_per_hour: seconds("cpuSecondsPerHour")?,
            cpu_per_day: seconds("cpuSecondsPerDay")?,
            cycle: seconds("cycleSeconds")?
                .map_or_else(|| error(&at, "x-tenant-quota without cycleSeconds"), Ok)?,
            note: required_text(q, "note", &at, "x-tenant-quota")?,
            source: text(q, "source", &at)?,
        }))
    }

    /// The operation's `x-machine-action-type`: `Some(type)` for a POST that creates a
    /// machine action of that `MachineActionType`, `None` for one that answers an existing
    /// action (`false`) and for every operation that does not answer a MachineAction with a
    /// POST (where the extension is refused).
    pub fn machine_action_type(&self, spec: &Spec) -> Read<Option<String>> {
        let at = format!("{}/x-machine-action-type", self.pointer());
        let answers_action =
            self.method == "POST" && spec.success_schema(self).as_deref() == Some(MACHINE_ACTION);
        match (answers_action, self.value.get("x-machine-action-type")) {
            (false, None) => Ok(None),
            (false, Some(_)) => error(
                at,
                "x-machine-action-type on an operation that is not a POST answering a MachineAction",
            ),
            (true, None) => error(
                self.pointer(),
                "a POST answering a MachineAction needs x-machine-action-type: the type of the action it creates, or false",
            ),
            (true, Some(Value::Bool(false))) => Ok(None),
            (true, Some(Value::String(kind))) => {
                let known = spec
                    .pointer("#/components/schemas/MachineActionType")
                    .and_then(|t| t.get("enum"))
                    .and_then(Value::as_array)
                    .is_some_and(|values| values.iter().any(|v| v.as_str() == Some(kind)));
                if known {
                    Ok(Some(kind.clone()))
                } else {
                    error(
                        at,
                        format!(
                            "x-machine-action-type {kind:?} is not a value of MachineActionType"
                        ),
                    )
                }
            }
            (true, Some(_)) => error(
                at,
                "x-machine-action-type must be a MachineActionType value, or false",
            ),
        }
    }

    /// The operation's `x-cli-command`: the words of the `mde` command that sends it, its
    /// request made from its body's flags (`package collect`); `None` for an operation no
    /// command sends that way. A path no command has fails `cargo xtask check` (the command
    /// line's reference is rendered from it).
    pub fn cli_command(&self) -> Read<Option<Vec<String>>> {
        let at = format!("{}/x-cli-command", self.pointer());
        let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '-');
        match self.value.get("x-cli-command") {
            None => Ok(None),
            Some(Value::String(text)) if text.split(' ').all(word) => {
                Ok(Some(text.split(' ').map(String::from).collect()))
            }
            Some(_) => error(
                at,
                "x-cli-command must be the words of an mde command: lower-case letters and '-', one space between",
            ),
        }
    }

    /// The operation's `x-undone-by`: `Some(Some(id))` names the operation that undoes it (a
    /// release undoes an isolation; it names the isolation back), `Some(None)` (`false`) says
    /// no operation of the API undoes it (an offboarding), `None` that the question does not
    /// arise.
    pub fn undone_by(&self, spec: &Spec) -> Read<Option<Option<String>>> {
        let at = format!("{}/x-undone-by", self.pointer());
        match self.value.get("x-undone-by") {
            None => Ok(None),
            Some(Value::Bool(false)) => Ok(Some(None)),
            Some(Value::String(other)) => {
                let back = spec.operation(other).and_then(|o| {
                    o.value
                        .get("x-undone-by")
                        .and_then(Value::as_str)
                        .map(String::from)
                });
                if back.as_deref() == self.operation_id.as_deref() {
                    Ok(Some(Some(other.clone())))
                } else {
                    error(
                        at,
                        format!(
                            "x-undone-by {other:?} must be an operation whose x-undone-by names this one"
                        ),
                    )
                }
            }
            Some(_) => error(
                at,
                "x-undone-by must be the operationId that undoes this one, or false",
            ),
        }
    }

    /// The operation's `x-evidence`: what a run of it saves, `package` (an investigation
    /// package) or `live-response-results` (a live response session's results).
    pub fn evidence(&self) -> Read<Option<String>> {
        let at = format!("{}/x-evidence", self.pointer());
        match self.value.get("x-evidence").map(Value::as_str) {
            None => Ok(None),
            Some(Some(kind @ ("package" | "live-response-results"))) => Ok(Some(kind.to_string())),
            Some(_) => error(at, "x-evidence must be package or live-response-results"),
        }
    }

    /// The hosts the operation is documented on: its own `servers`, or the spec's.
    pub fn servers(&self, spec: &Spec) -> Read<Vec<Server>> {
        match self.value.get("servers") {
            Some(own) => read_servers(own, &format!("{}/servers", self.pointer())),
            None => spec.servers(),
        }
    }

    /// Whether the operation names its own `servers` (instead of the spec's).
    pub fn has_own_servers(&self) -> bool {
        self.value.get("servers").is_some()
    }
}

/// A `YYYY-MM-DD` date, when given.
fn date(object: &Value, field: &str, at: &str) -> Read<Option<String>> {
    let date = text(object, field, at)?;
    if let Some(date) = &date {
        let b = date.as_bytes();
        let shape = b.len() == 10
            && b.iter().enumerate().all(|(i, c)| {
                if i == 4 || i == 7 {
                    *c == b'-'
                } else {
                    c.is_ascii_digit()
                }
            });
        if !shape {
            return error(
                format!("{at}/{field}"),
                format!("x-deprecation.{field} must be a date, YYYY-MM-DD"),
            );
        }
    }
    Ok(date)
}

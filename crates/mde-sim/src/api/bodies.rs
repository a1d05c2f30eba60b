//! The checks of each request body, in the order the service answers them: its type, JSON,
//! its members and their values.

use mde_client::operations::AnyRequest;

use super::*;

/// The request's `Comment`, or the 400 naming what is wrong with the body.
/// The body of runAntiVirusScan: its comment and scan type.
pub(super) fn scan_request(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, types::ScanType), ApiError> {
    let value = object(headers, body, &["Comment", "ScanType"])?;
    let comment = comment_of(&value)?;
    let scan_type = match value.get("ScanType") {
        None => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "MissingRequiredParameter",
            "ScanType is required",
        )),
        Some(Value::String(t)) => t.parse::<types::ScanType>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidInput",
                format!("ScanType must be Quick or Full, not {}", echo(t)),
            )
        }),
        Some(_) => Err(ApiError::invalid_body("ScanType must be a string")),
    }?;
    Ok((comment, scan_type))
}

/// The body of a response action: its comment, the action's `scope` (an isolation's type,
/// `Full` when not given) and a stop-and-quarantine's SHA-1 (40 hex characters, else the
/// documented `InvalidHashValue`).
pub(super) fn response_request(
    op: OperationId,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, Option<String>, Option<String>), ApiError> {
    match op {
        OperationId::IsolateMachine => {
            let value = object(headers, body, &["Comment", "IsolationType"])?;
            let kind = match value.get("IsolationType") {
                None => "Full".to_string(),
                Some(Value::String(t))
                    if ["Full", "Selective", "UnManagedDevice"].contains(&t.as_str()) =>
                {
                    t.clone()
                }
                Some(other) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "InvalidInput",
                        format!(
                            "IsolationType must be Full, Selective or UnManagedDevice, not {}",
                            echo(&other.to_string())
                        ),
                    ));
                }
            };
            Ok((comment_of(&value)?, Some(kind), None))
        }
        OperationId::StopAndQuarantineFile => {
            let value = object(headers, body, &["Comment", "Sha1"])?;
            let comment = comment_of(&value)?;
            match value.get("Sha1") {
                None => Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "MissingRequiredParameter",
                    "Sha1 is required",
                )),
                Some(Value::String(h))
                    if h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    Ok((comment, None, Some(h.to_ascii_lowercase())))
                }
                Some(other) => Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidHashValue",
                    format!(
                        "{} is not a SHA-1 (40 hex characters)",
                        echo(&other.to_string())
                    ),
                )),
            }
        }
        _ => Ok((checked(op, headers, body)?.0, None, None)),
    }
}

/// runLiveResponse's body: its comment and its commands, each with the parameters its type
/// documents, in the documented order (every PutFile, then every RunScript, then every
/// GetFile); anything else is a 400.
pub(super) fn live_response_request(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, Vec<types::LiveResponseCommand>), ApiError> {
    use types::LiveResponseCommandType as Type;
    let value = object(headers, body, &["Commands", "Comment"])?;
    let comment = comment_of(&value)?;
    let commands = value.get("Commands").ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MissingRequiredParameter",
            "Commands is required",
        )
    })?;
    let commands: Vec<types::LiveResponseCommand> = serde_json::from_value(commands.clone())
        .map_err(|e| ApiError::invalid_body(format!("Commands: {e}")))?;
    if commands.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "Commands must hold at least one command",
        ));
    }
    let mut last = 0;
    for command in &commands {
        let (rank, needed) = match &command.type_ {
            Type::PutFile => (0, "FileName"),
            Type::RunScript => (1, "ScriptName"),
            Type::GetFile => (2, "Path"),
            Type::Other(other) => {
                return Err(ApiError::invalid_body(format!(
                    "Unknown command type {}: PutFile, RunScript or GetFile",
                    echo(other)
                )));
            }
        };
        if rank < last {
            return Err(ApiError::invalid_body(
                "Commands must be in the order PutFile, RunScript, GetFile",
            ));
        }
        last = rank;
        if !command
            .params
            .iter()
            .any(|p| p.key == needed && !p.value.is_empty())
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "MissingRequiredParameter",
                format!("{} needs the parameter {needed}", command.type_),
            ));
        }
    }
    Ok((comment, commands))
}

/// findbytag's query: the tag (required) and `useStartsWithFilter` (false by default).
pub(super) fn tag_query(query: Option<&str>) -> Result<(String, bool), ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidInput",
                format!("The query is not valid: {e}"),
            )
        })?;
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let tag = get("tag").filter(|t| !t.is_empty()).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MissingRequiredParameter",
            "tag is required",
        )
    })?;
    let starts_with = match get("useStartsWithFilter") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidInput",
                format!("useStartsWithFilter must be true or false, not {}", echo(v)),
            ));
        }
    };
    Ok((tag.to_string(), starts_with))
}

/// setMachineTag's body: the tag, and whether to add it (`Action`: `Add` or `Remove`).
pub(super) fn tag_request(headers: &HeaderMap, body: &[u8]) -> Result<(String, bool), ApiError> {
    let value = object(headers, body, &["Value", "Action"])?;
    let tag = match value.get("Value") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "MissingRequiredParameter",
                "Value is required: the tag name",
            ));
        }
    };
    let add = match value.get("Action").and_then(Value::as_str) {
        Some("Add") => true,
        Some("Remove") => false,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidInput",
                "Action must be Add or Remove",
            ));
        }
    };
    Ok((tag, add))
}

/// `op`'s JSON body checked against its schema, in the service's order: a JSON object of
/// the schema's members only, its `Comment` not empty, each required member there, then
/// every value as the generated type reads it. Its comment, and the body. An operation whose
/// body has nothing more to check costs this file nothing.
pub(super) fn checked(
    op: OperationId,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, Value), ApiError> {
    let fields = op.facts().body;
    let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
    let value = object(headers, body, &names)?;
    let comment = match names.contains(&"Comment") {
        true => comment_of(&value)?,
        false => String::new(),
    };
    if let Some(missing) = fields
        .iter()
        .find(|f| f.required && value.get(f.name).is_none())
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "MissingRequiredParameter",
            format!("{} is required", missing.name),
        ));
    }
    match AnyRequest::from_body(op, value.clone()) {
        Some(Err(e)) => Err(ApiError::invalid_body(e.to_string())),
        _ => Ok((comment, value)),
    }
}

/// `body` with its members named as `op`'s schema names them, whatever their case: Microsoft
/// Graph binds JSON without regard to case (the beta page and its callers send `query`), the
/// Defender API does not (common-errors.md). Anything but a JSON object is left as it is.
pub(super) fn graph_names(op: OperationId, body: Bytes) -> Bytes {
    let Ok(Value::Object(members)) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    let fields = op.facts().body;
    let named = members.into_iter().map(|(name, value)| {
        let field = fields.iter().find(|f| f.name.eq_ignore_ascii_case(&name));
        (field.map_or(name, |f| f.name.to_string()), value)
    });
    let named: serde_json::Map<String, Value> = named.collect();
    serde_json::to_vec(&named).map_or(body, Bytes::from)
}

/// A JSON object body with no member but `names`.
pub(super) fn object(headers: &HeaderMap, body: &[u8], names: &[&str]) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("<not text>"));
    let essence = content_type
        .and_then(|c| c.split(';').next())
        .map(str::trim);
    if !essence.is_some_and(|e| e.eq_ignore_ascii_case("application/json")) {
        return Err(ApiError::invalid_body(format!(
            "Content-Type must be application/json, not {}",
            content_type.map_or("absent".to_string(), echo)
        )));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_body(format!("The request body is not valid JSON: {e}")))?;
    let object = value.as_object().ok_or_else(|| {
        ApiError::invalid_body("The request body must be a JSON object with a Comment")
    })?;
    if let Some(unknown) = object.keys().find(|k| !names.contains(&k.as_str())) {
        let hint = match names.iter().find(|n| unknown.eq_ignore_ascii_case(n)) {
            Some(name) => format!(" (names are case-sensitive: {name})"),
            None => String::new(),
        };
        return Err(ApiError::invalid_body(format!(
            "Unknown parameter '{}'{hint}",
            echo(unknown)
        )));
    }
    Ok(value)
}

/// The `Comment` of a body [`object`] read.
pub(super) fn comment_of(value: &Value) -> Result<String, ApiError> {
    match value.get("Comment") {
        None => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "MissingRequiredParameter",
            "Comment is required",
        )),
        Some(Value::String(c)) if c.is_empty() => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "Comment must not be empty",
        )),
        Some(Value::String(_)) => {
            // The generated type has the last word on what the spec accepts.
            let mut only = serde_json::Map::new();
            only.insert("Comment".into(), value["Comment"].clone());
            let request: types::CommentRequest = serde_json::from_value(Value::Object(only))
                .map_err(|e| ApiError::invalid_body(e.to_string()))?;
            Ok(String::from(request.comment))
        }
        Some(_) => Err(ApiError::invalid_body("Comment must be a string")),
    }
}

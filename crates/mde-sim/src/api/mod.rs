//! The HTTP face: the spec's operations (routes from `mde_client::operations`), the token
//! endpoint, and the order in which a request is checked.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on, post};
use mde_client::operations::OperationId;
use mde_client::workspace::shorten;
use mde_client::{LIBRARY_FILE_LIMIT, types};
use serde_json::Value;

use crate::Shared;
use crate::auth::authorize;
use crate::error::{ApiError, json};
use crate::library::Upload;
use crate::odata::Query;
use crate::state::{ActionAt, Asked};

mod bodies;

use bodies::*;

/// Longest piece of caller input echoed in a message.
const ECHO: usize = 100;

fn echo(text: &str) -> String {
    shorten(text, ECHO)
}

/// The path parameters of a request.
type PathParams = Result<Path<Vec<(String, String)>>, PathRejection>;

/// A path segment that is an OData function call with one parameter, e.g.
/// `GetLiveResponseResultDownloadLink(index={index})`: the router (matchit) takes one
/// parameter per segment with nothing around it, so the segment is routed as `{call}` and its
/// parameter read from it here.
#[derive(Clone, Copy)]
struct Call {
    /// The text before the parameter, e.g. `GetLiveResponseResultDownloadLink(index=`.
    prefix: &'static str,
    /// The parameter's name, e.g. `index`.
    name: &'static str,
    /// The text after it, e.g. `)`.
    suffix: &'static str,
}

/// The route of an operation's path, and the function call segment it holds, if any.
fn route_of(path: &'static str) -> (String, Option<Call>) {
    let mut call = None;
    let segments: Vec<&str> = path
        .split('/')
        .map(|segment| {
            let open = segment.find('{');
            match (segment.find('('), open, segment.rfind('}')) {
                (Some(paren), Some(open), Some(close)) if paren < open => {
                    call = Some(Call {
                        prefix: &segment[..open],
                        name: &segment[open + 1..close],
                        suffix: &segment[close + 1..],
                    });
                    "{call}"
                }
                _ => segment,
            }
        })
        .collect();
    (segments.join("/"), call)
}

/// A request of an operation, as it came.
struct Incoming {
    call: Option<Call>,
    params: PathParams,
    query: Option<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    /// A `multipart/form-data` body, read (uploadLibraryFile).
    form: Option<Result<Upload, String>>,
}

/// The router: every operation of the spec on its method and path.
pub(crate) fn router(shared: Arc<Shared>) -> Result<Router, String> {
    // The download host: no bearer token, the link's own token in the query.
    let download = |State(s): State<Arc<Shared>>, RawQuery(query): RawQuery, headers: HeaderMap| async move {
        s.packages
            .serve(query.as_deref(), &headers, s.clock.elapsed())
            .await
    };
    let limit = shared.config.body_limit;
    Ok(sign_in_routes(operation_routes()?)
        .route(crate::package::PATH, axum::routing::get(download))
        .fallback(|uri: Uri| async move {
            ApiError::not_found(format!("No resource at {}", echo(uri.path())))
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "This resource does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::map_response_with_state(
            shared.clone(),
            dated,
        ))
        .with_state(shared))
}

/// A route for each operation of the spec, checked and answered as [`perform`] says.
fn operation_routes() -> Result<Router<Arc<Shared>>, String> {
    let mut router = Router::new();
    for op in OperationId::ALL {
        let facts = op.facts();
        let method = Method::from_bytes(facts.method.as_bytes())
            .ok()
            .and_then(|m| MethodFilter::try_from(m).ok())
            .ok_or_else(|| format!("{op}: no HTTP method {}", facts.method))?;
        let (route, call) = route_of(facts.path);
        let handler = move |State(s): State<Arc<Shared>>,
                            params: PathParams,
                            RawQuery(query): RawQuery,
                            headers: HeaderMap,
                            body: Result<Bytes, BytesRejection>| async move {
            let form = match (&body, op) {
                (Ok(bytes), OperationId::UploadLibraryFile) => {
                    let content_type = headers.get(header::CONTENT_TYPE);
                    let content_type = content_type.and_then(|v| v.to_str().ok());
                    Some(Upload::read(content_type, bytes.clone()).await)
                }
                _ => None,
            };
            let request = Incoming {
                call,
                params,
                query,
                headers,
                body,
                form,
            };
            perform(&s, op, request)
                .unwrap_or_else(|e| e.in_graph(graph_family(op)).into_response())
        };
        let mut route_of_op = on(method, handler);
        if op == OperationId::UploadLibraryFile {
            // The library takes 20 MiB files; a larger one is the documented 400, and only
            // far beyond it the transport's 413.
            route_of_op = route_of_op.layer(DefaultBodyLimit::max(LIBRARY_FILE_LIMIT + (1 << 20)));
        }
        router = router.route(&route, route_of_op);
    }
    Ok(router)
}

/// An operation of Microsoft Graph (its token is for Graph's audience): its errors come in
/// Graph's envelope.
fn graph_family(op: OperationId) -> bool {
    crate::auth::scope_of(op.facts()) != mde_client::operations::TOKEN_SCOPES[0]
}

/// The sign-in routes beside the API: the token endpoint, OpenID Connect discovery and
/// keys, App Service's managed identity endpoint, and the simulator's own issuer.
fn sign_in_routes(router: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    // The token URL's path, e.g. `/{tenant}/oauth2/v2.0/token`.
    let token_path = mde_client::workspace::token_path();
    let token = |State(s): State<Arc<Shared>>,
                 tenant: Result<Path<String>, PathRejection>,
                 headers: HeaderMap,
                 body: Result<Bytes, BytesRejection>| async move {
        let (Ok(Path(tenant)), Ok(body)) = (tenant, body) else {
            return ApiError::invalid_body("unreadable token request").into_response();
        };
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        s.tokens
            .token_endpoint((&s.base_url, &tenant), content_type, &body, &s.clock)
    };
    // What MSAL and azure-identity read before a client-credentials grant (OpenID Connect
    // discovery), and the signing keys it points at: none, since tokens are opaque here.
    let discovery = |State(s): State<Arc<Shared>>, tenant: Result<Path<String>, PathRejection>| async move {
        let Ok(Path(tenant)) = tenant else {
            return ApiError::invalid_body("unreadable tenant").into_response();
        };
        crate::auth::openid_configuration(&s.base_url, &tenant).into_response()
    };
    let keys = || async {
        (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            r#"{"keys":[]}"#,
        )
    };
    // App Service's managed identity endpoint.
    let identity = |State(s): State<Arc<Shared>>, RawQuery(query): RawQuery, headers: HeaderMap| async move {
        s.identity.serve(&s, query.as_deref(), &headers).await
    };
    // The simulator's own issuer (workload identity federation).
    let issuer_discovery =
        |State(s): State<Arc<Shared>>| async move { axum::Json(s.tokens.issuer().discovery()) };
    let issuer_keys =
        |State(s): State<Arc<Shared>>| async move { axum::Json(s.tokens.issuer().keys()) };
    router
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            axum::routing::get(discovery),
        )
        .route("/{tenant}/discovery/v2.0/keys", axum::routing::get(keys))
        .route(token_path, post(token))
        .route(crate::identity::PATH, axum::routing::get(identity))
        .route(
            &format!(
                "{}/.well-known/openid-configuration",
                crate::federation::PATH
            ),
            axum::routing::get(issuer_discovery),
        )
        .route(
            &format!("{}/keys", crate::federation::PATH),
            axum::routing::get(issuer_keys),
        )
}

/// Every answer's `Date` is the simulator's clock, as the service's is its own: a client that
/// compares it with an action's creation time sees the same time line.
async fn dated(State(s): State<Arc<Shared>>, mut response: Response) -> Response {
    let date = s
        .clock
        .now_utc()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    if let Ok(value) = header::HeaderValue::from_str(&date) {
        response.headers_mut().insert(header::DATE, value);
    }
    response
}

/// Checks in the order the service would: a readable body, then who calls (401), what they
/// may do (403), how often (429), then what the operation itself checks: what was sent (400),
/// the machine or action (404), its state (400).
fn perform(s: &Shared, op: OperationId, request: Incoming) -> Result<Response, ApiError> {
    let Incoming {
        call,
        params,
        query,
        headers,
        body,
        form,
    } = request;
    // A function call segment that is not this operation's is no resource, as any unknown path.
    let params = match (call, params) {
        (Some(call), Ok(Path(mut params))) => {
            let Some(i) = params.iter().position(|(name, _)| name == "call") else {
                return Err(ApiError::not_found("No resource at this path"));
            };
            let (_, text) = params.remove(i);
            let inner = text
                .strip_prefix(call.prefix)
                .and_then(|t| t.strip_suffix(call.suffix))
                .ok_or_else(|| ApiError::not_found(format!("No resource at {}", echo(&text))))?;
            params.push((call.name.to_string(), inner.to_string()));
            Ok(Path(params))
        }
        (_, params) => params,
    };
    let headers = &headers;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!(
                    "The request body is larger than {} bytes",
                    s.config.body_limit
                ),
            )
        } else {
            ApiError::invalid_body(format!("The request body could not be read: {rejection}"))
        }
    })?;
    let grant = s.tokens.check(headers, &s.clock)?;
    authorize(&grant, op.facts())?;
    let caller = (grant.tenant.clone(), grant.client_id.clone());
    s.limiter
        .admit(&caller, op, s.clock.elapsed())
        .map_err(|refusal| ApiError::refused(refusal, op.facts().tenant_quota.is_some()))?;
    *s.calls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(op)
        .or_default() += 1;
    let Path(params) = params.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            format!("The id in the path is not valid: {}", echo(&e.body_text())),
        )
    })?;
    let param = |wanted: &str| {
        params
            .iter()
            .find_map(|(name, value)| (name == wanted).then(|| value.clone()))
            .unwrap_or_default()
    };
    let id = param("id");

    let (now, now_utc) = (s.clock.elapsed(), s.clock.now_utc());
    // A token is issued only to an app of a tenant the simulator has.
    let mut records = s
        .records_of(&grant.tenant)
        .ok_or_else(|| ApiError::unauthorized("The token's tenant is unknown"))?;
    records.settle(now);
    let asked = |comment| Asked {
        requestor: &grant.client_id,
        comment,
        now,
        now_utc,
    };
    // The one place that decides what the simulator does for each operation of the spec.
    Ok(match op {
        OperationId::StartInvestigation | OperationId::InitiateInvestigation => {
            checked(op, headers, &body)?;
            let record =
                records.start_investigation(&id, now, now_utc, s.config.investigation_time)?;
            if op == OperationId::StartInvestigation {
                json(StatusCode::CREATED, &record.entity(now))
            } else {
                let answer = types::ODataInt64 {
                    odata_context: Some(format!("{}/api/$metadata#Edm.Int64", s.base_url)),
                    value: record.id as i64,
                    extra: Default::default(),
                };
                // The documents answer 200 here, not 201 (seed 002).
                json(StatusCode::OK, &answer)
            }
        }
        OperationId::CollectInvestigationPackage
        | OperationId::CollectInvestigationPackageGraph => {
            let (comment, _) = checked(op, headers, &body)?;
            let graph = op == OperationId::CollectInvestigationPackageGraph;
            let record = records.collect(&id, asked(&comment), graph, &s.config)?;
            json(StatusCode::CREATED, &record.entity(now, &s.base_url))
        }
        OperationId::RunAntiVirusScan => {
            let (comment, scan_type) = scan_request(headers, &body)?;
            let (record, _repeated) = records.scan(&id, asked(&comment), scan_type, &s.config)?;
            // A repeated scan answers the pending action as a new one would: the action's
            // id and creation time tell them apart.
            json(StatusCode::CREATED, &record.entity(now, &s.base_url))
        }
        OperationId::IsolateMachine
        | OperationId::UnisolateMachine
        | OperationId::RestrictCodeExecution
        | OperationId::UnrestrictCodeExecution
        | OperationId::StopAndQuarantineFile
        | OperationId::OffboardMachine => {
            let (comment, scope, sha1) = response_request(op, headers, &body)?;
            let kind = op
                .creates_action()
                .ok_or_else(|| ApiError::invalid_body("not a response action"))?;
            let (record, _repeated) =
                records.respond(&id, asked(&comment), (kind, scope, sha1), &s.config)?;
            // offboard-machine-api.md says "200 - Created"; the other pages 201.
            let status = if op == OperationId::OffboardMachine {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            json(status, &record.entity(now, &s.base_url))
        }
        OperationId::RunLiveResponse => {
            let (comment, commands) = live_response_request(headers, &body)?;
            let record = records.live_response(&id, asked(&comment), commands, &s.config)?;
            json(StatusCode::CREATED, &record.entity(now, &s.base_url))
        }
        OperationId::GetLiveResponseResultDownloadLink => {
            let index: usize = param("index").parse().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidInput",
                    format!(
                        "index must be a command's number, not {}",
                        echo(&param("index"))
                    ),
                )
            })?;
            let action = records.action(&id)?;
            let (content, content_type) = action.result(index, now, &s.config)?;
            let name = format!("{}-{index}", action.id);
            let link = s
                .packages
                .result_link(
                    &s.base_url,
                    (&name, &action.machine_id),
                    (&content, content_type),
                    now,
                )
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "InternalServerError",
                        e.to_string(),
                    )
                })?;
            let answer = types::ODataString {
                odata_context: Some(format!("{}/api/$metadata#Edm.String", s.base_url)),
                // The link as the page shows it: no quotes around it, unlike getPackageUri's.
                value: link.into(),
                extra: Default::default(),
            };
            json(StatusCode::OK, &answer)
        }
        OperationId::ListLibraryFiles => {
            let answer = types::LibraryFileCollection {
                odata_context: Some(format!("{}/api/$metadata#LibraryFiles", s.base_url)),
                value: records.library.list(),
                extra: Default::default(),
            };
            json(StatusCode::OK, &answer)
        }
        OperationId::UploadLibraryFile => {
            let upload = form
                .unwrap_or_else(|| Err("the body is not multipart/form-data".into()))
                .map_err(|e| ApiError::invalid_body(format!("The form could not be read: {e}")))?;
            let file = records.library.upload(&upload, &grant.client_id, now_utc)?;
            json(StatusCode::OK, &file)
        }
        OperationId::DeleteLibraryFile => {
            records.library.delete(&param("fileName"))?;
            StatusCode::NO_CONTENT.into_response()
        }
        OperationId::GetMachine => json(StatusCode::OK, &records.machine(&id)?),
        OperationId::FindMachinesByTag => {
            let (tag, starts_with) = tag_query(query.as_deref())?;
            let value = records
                .inventory()
                .all()
                .iter()
                .filter(|m| {
                    m.tags.iter().any(|t| {
                        // Tags compare without regard to case, as the portal shows them.
                        let t = t.to_lowercase();
                        let tag = tag.to_lowercase();
                        if starts_with {
                            t.starts_with(&tag)
                        } else {
                            t == tag
                        }
                    })
                })
                .map(|m| m.entity())
                .collect();
            let answer = types::MachineCollection {
                odata_context: Some(format!("{}/api/$metadata#Machines", s.base_url)),
                value,
                extra: Default::default(),
            };
            json(StatusCode::OK, &answer)
        }
        OperationId::SetMachineTag => {
            let (tag, add) = tag_request(headers, &body)?;
            json(StatusCode::OK, &records.tag(&id, &tag, add)?)
        }
        OperationId::GetMachineAction => json(
            StatusCode::OK,
            &records.action(&id)?.entity(now, &s.base_url),
        ),
        OperationId::ListMachines => {
            let query = Query::parse(query.as_deref())?;
            let all = records.inventory().all();
            if all.is_empty() {
                // get-machines.md: "If there are no recent machines, you see 404 Not Found".
                return Err(ApiError::not_found("No recent machines were found"));
            }
            let page = query.page(all.iter())?;
            let answer = types::MachineCollection {
                odata_context: Some(format!("{}/api/$metadata#Machines", s.base_url)),
                value: page.iter().map(|m| m.entity()).collect(),
                extra: Default::default(),
            };
            json(StatusCode::OK, &answer)
        }
        OperationId::ListMachineActions => {
            let query = Query::parse(query.as_deref())?;
            // Newest first, as the list page's examples show them.
            let all = records.actions().iter().rev();
            let page = query.page(all.map(|action| ActionAt { action, now }))?;
            let answer = types::MachineActionCollection {
                odata_context: Some(format!("{}/api/$metadata#MachineActions", s.base_url)),
                value: page
                    .iter()
                    .map(|a| a.action.entity(now, &s.base_url))
                    .collect(),
                extra: Default::default(),
            };
            json(StatusCode::OK, &answer)
        }
        OperationId::GetPackageUri => {
            let action = records.action(&id)?;
            if !action.package_ready(now, s.config.package_delay) {
                // The documented 404 while the collection is not complete (issue 5901), and
                // for `--package-delay` after it is.
                return Err(ApiError::not_found(format!(
                    "The investigation package of machine action {} is not available",
                    echo(&id)
                )));
            }
            // Shaped like the documented link; its own token in the query.
            let link = s
                .packages
                .link(&s.base_url, &action.id, &action.machine_id, now);
            let answer = types::ODataString {
                odata_context: Some(format!("{}/api/$metadata#Edm.String", s.base_url)),
                // The URL wrapped in literal quotes, as get-package-sas-uri.md shows it.
                value: format!("\"{link}\"").into(),
                extra: Default::default(),
            };
            json(StatusCode::OK, &answer)
        }
        OperationId::RunHuntingQuery | OperationId::RunAdvancedQuery => {
            let body = if op == OperationId::RunHuntingQuery {
                graph_names(op, body)
            } else {
                body
            };
            let (_, body) = checked(op, headers, &body)?;
            let (answer, cpu) = hunt(s, op, &body, records.inventory().all(), now_utc);
            s.limiter.spend(&grant.tenant, op, cpu, s.clock.elapsed());
            answer?
        }
        OperationId::CancelMachineAction => {
            let (comment, _) = checked(op, headers, &body)?;
            let action = records.cancel(&id, asked(&comment))?;
            json(StatusCode::OK, &action.entity(now, &s.base_url))
        }
    })
}

/// Runs a hunting query of `body` over the tenant's machines: the answer, or the 400 of a
/// query it cannot run or the fault asked for; and the CPU it spent (a query preempted or
/// answered 504 spent it too).
fn hunt(
    s: &Shared,
    op: OperationId,
    body: &serde_json::Value,
    machines: &[crate::inventory::MachineRecord],
    now_utc: chrono::DateTime<chrono::Utc>,
) -> (Result<Response, ApiError>, Duration) {
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message);
    let window = match crate::hunting::window(body["Timespan"].as_str(), now_utc) {
        Ok(window) => window,
        Err(e) => return (Err(bad(e)), Duration::ZERO),
    };
    let source = crate::hunting::Source {
        machines,
        seed: s.config.seed,
        events_a_day: s.config.hunting_rows,
    };
    let query = body["Query"].as_str().unwrap_or_default();
    let answer = match crate::hunting::hunt(query, &source, window, now_utc) {
        Ok(answer) => answer,
        Err(e) => return (Err(bad(e.0)), Duration::ZERO),
    };
    let cpu = s.config.hunting_cpu_per_row * u32::try_from(answer.scanned).unwrap_or(u32::MAX);
    let number = s.hunts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Some(fault) = s
        .config
        .hunt_faults
        .roll(s.config.seed, number, answer.scanned)
    {
        return (Err(fault.error()), cpu);
    }
    let context = format!(
        "{}/v1.0/$metadata#microsoft.graph.security.huntingQueryResults",
        s.base_url
    );
    let graph = op == OperationId::RunHuntingQuery;
    (Ok(json(StatusCode::OK, &answer.json(graph, &context))), cpu)
}

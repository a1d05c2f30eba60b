//! `mod operations` of the generated file: what the spec says of each operation beyond its
//! types (hosts, permissions, rate limits, deprecation), as constants, so that the client,
//! the simulator and the CLI read these facts from the spec instead of retyping them.

use heck::{ToShoutySnakeCase, ToSnakeCase};
use mde_spec::Spec;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use serde_json::Value;

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn servers(list: Option<&Value>) -> Vec<TokenStream> {
    let list = list.and_then(Value::as_array).cloned().unwrap_or_default();
    list.iter()
        .map(|server| {
            let field = |name: &str| server.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
            let (url, region, authority) = (field("url"), field("x-region"), field("x-authority"));
            let clouds = strings(server.get("x-cloud"));
            let token_scope = match server.get("x-token-scope").and_then(Value::as_str) {
                Some(scope) => quote!(Some(#scope)),
                None => quote!(None),
            };
            quote! {
                Server { url: #url, clouds: &[#(#clouds),*], region: #region, authority: #authority, token_scope: #token_scope }
            }
        })
        .collect()
}

/// The module's tokens.
pub fn operations_module(spec: &Spec) -> Result<TokenStream, String> {
    let doc = spec.document();
    let global_servers = servers(doc.get("servers"));
    let mut consts = Vec::new();
    let mut names = Vec::new();
    for op in spec.operations() {
        let id = op
            .operation_id
            .clone()
            .ok_or("an operation without operationId")?;
        let name = format_ident!("{}", id.to_shouty_snake_case());
        let (method, path) = (&op.method, &op.path);
        let summary = op
            .value
            .get("summary")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let deprecated = op.deprecated();
        let retired = match op
            .value
            .pointer("/x-deprecation/retired")
            .and_then(Value::as_str)
        {
            Some(date) => quote!(Some(#date)),
            None => quote!(None),
        };
        let windows = op.rate_limits()?.into_iter().map(|w| {
            let (calls, seconds) = (w.calls as u32, w.seconds);
            quote! { RateWindow { calls: #calls, seconds: #seconds } }
        });
        let permissions = op.value.get("x-permissions");
        let application = strings(permissions.and_then(|p| p.get("application")));
        let delegated = strings(permissions.and_then(|p| p.get("delegated")));
        let roles = strings(permissions.and_then(|p| p.get("directoryRoles")));
        let own_servers = servers(op.value.get("servers"));
        let servers = if own_servers.is_empty() {
            quote!(SERVERS)
        } else {
            quote!(&[#(#own_servers),*])
        };
        let doc = format!("`{method} {path}`: {summary}");
        let rust_method = id.to_snake_case();
        consts.push(quote! {
            #[doc = #doc]
            pub const #name: Operation = Operation {
                operation_id: #id,
                rust_method: #rust_method,
                method: #method,
                path: #path,
                deprecated: #deprecated,
                retired: #retired,
                rate_limits: &[#(#windows),*],
                application_permissions: &[#(#application),*],
                delegated_permissions: &[#(#delegated),*],
                directory_roles: &[#(#roles),*],
                servers: #servers,
            };
        });
        names.push(name);
    }
    let machine_ids = documented_machine_ids(spec);
    let flow = doc
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object)
        .and_then(|schemes| {
            schemes
                .values()
                .find_map(|s| s.pointer("/flows/clientCredentials"))
        })
        .ok_or("no OAuth2 client-credentials flow in components/securitySchemes")?;
    let token_url = flow
        .get("tokenUrl")
        .and_then(Value::as_str)
        .ok_or("clientCredentials without tokenUrl")?;
    let token_scopes: Vec<&String> = flow
        .get("scopes")
        .and_then(Value::as_object)
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    Ok(quote! {
        /// What the spec says of each operation beyond its types: hosts, permissions
        /// (`x-permissions`), rate limits (`x-rate-limit`) and deprecation (`x-deprecation`).
        pub mod operations {
            /// One window of a rate limit: at most `calls` per `seconds`. All windows of an
            /// operation apply at once; the service counts them per application and tenant.
            #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
            pub struct RateWindow {
                /// Calls allowed in the window.
                pub calls: u32,
                /// Length of the window in seconds.
                pub seconds: u64,
            }

            /// A host that serves an operation.
            #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
            pub struct Server {
                /// Base URL, e.g. `https://api.security.microsoft.com`.
                pub url: &'static str,
                /// The clouds it serves: `commercial`, `gcc`, `gcc-high`, `dod`.
                pub clouds: &'static [&'static str],
                /// `global`, or a geography such as `us`, `eu`, `uk`, `au`.
                pub region: &'static str,
                /// Where its callers sign in (Azure AD authority).
                pub authority: &'static str,
                /// The token scope its callers ask for, when not [`TOKEN_SCOPES`]' first.
                pub token_scope: ::std::option::Option<&'static str>,
            }

            /// An operation of the spec.
            #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
            pub struct Operation {
                /// The spec's `operationId`.
                pub operation_id: &'static str,
                /// The generated client's method (and progenitor's `OperationInfo::operation_id`).
                pub rust_method: &'static str,
                /// HTTP method, upper case.
                pub method: &'static str,
                /// Path template, e.g. `/api/machines/{id}/startInvestigation`.
                pub path: &'static str,
                /// Marked `deprecated: true`.
                pub deprecated: bool,
                /// The date the service stopped serving it, when it did.
                pub retired: ::std::option::Option<&'static str>,
                /// Every window applies; empty when none is documented.
                pub rate_limits: &'static [RateWindow],
                /// Application permissions, any one of which allows the call.
                pub application_permissions: &'static [&'static str],
                /// Delegated permissions, any one of which allows the call.
                pub delegated_permissions: &'static [&'static str],
                /// Directory roles, any one of which allows the call.
                pub directory_roles: &'static [&'static str],
                /// The hosts it is documented on.
                pub servers: &'static [Server],
            }

            #(#consts)*

            /// Every operation, in the spec's order.
            pub const ALL: &[Operation] = &[#(#names),*];

            /// The hosts of the `/api/...` operations (the spec's top-level `servers`).
            pub const SERVERS: &[Server] = &[#(#global_servers),*];

            /// Azure AD's client-credentials token URL; `{tenant}` stands for the tenant id.
            pub const TOKEN_URL: &str = #token_url;

            /// The scopes a client-credentials token is asked for.
            pub const TOKEN_SCOPES: &[&str] = &[#(#token_scopes),*];

            /// The machine ids the documents show, in the spec's order.
            pub const DOCUMENTED_MACHINE_IDS: &[&str] = &[#(#machine_ids),*];
        }
    })
}

/// The machine-id parameter's examples, then every `machineId` in the examples.
fn documented_machine_ids(spec: &Spec) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for example in spec.examples() {
        let id = if example.uses.iter().any(|u| u.place == "parameter id") {
            example.value.as_str()
        } else {
            example.value.get("machineId").and_then(Value::as_str)
        };
        if let Some(id) = id.filter(|id| !ids.iter().any(|known| known == id)) {
            ids.push(id.to_string());
        }
    }
    ids
}

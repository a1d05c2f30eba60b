//! `mod operations` of the generated file: the operation model every layer uses.
//!
//! - `OperationId`: one variant per `operationId`, so that every place that handles "each
//!   operation" can `match` on it exhaustively and a spec change becomes the compiler's list.
//! - `Operation` constants: what the spec says of each operation beyond its types (hosts,
//!   permissions, rate limits, deprecation), reachable from `OperationId::facts`.
//! - One request type per operation (its path and query parameters and its body, read from
//!   progenitor's builder for it) implementing `Request`: its success type, and how it is
//!   sent through the generated client.
//! - `Answer`: any operation's success, tagged with its operation, for journals and output.

use heck::{ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};
use mde_spec::{FieldKind, Operation, Server, Spec};
use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote};
use serde_json::Value;

fn server_tokens(servers: &[Server]) -> Vec<TokenStream> {
    servers
        .iter()
        .map(|s| {
            let (url, region, authority, clouds) = (&s.url, &s.region, &s.authority, &s.clouds);
            let token_scope = match &s.token_scope {
                Some(scope) => quote!(Some(#scope)),
                None => quote!(None),
            };
            quote! {
                Server { url: #url, clouds: &[#(#clouds),*], region: #region, authority: #authority, token_scope: #token_scope }
            }
        })
        .collect()
}

/// A field of an operation's request, as progenitor's builder for it holds it.
struct Field {
    name: syn::Ident,
    /// The type the request holds (`types::X` for a body, whose builder holds `types::builder::X`).
    ty: syn::Type,
    /// `Option<T>` in the builder: the setter takes `T`, and is called only for `Some`.
    optional: bool,
    /// A path parameter: its name in the spec.
    path_name: Option<String>,
    /// Its name in the spec (`body` for the body): its key in `AnyRequest::from_parameters`.
    spec_name: String,
    doc: String,
}

/// `T` of `Result<T, String>`.
fn result_ok(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match (last.ident == "Result", args.args.first()) {
        (true, Some(syn::GenericArgument::Type(t))) => Some(t),
        _ => None,
    }
}

fn is_option(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Option"))
}

/// The fields of progenitor's builder `name` (all but `client`), matched to the spec.
fn request_fields(
    spec: &Spec,
    op: &Operation,
    builders: &[syn::Item],
    name: &str,
) -> Result<Vec<Field>, String> {
    let id = op.operation_id.as_deref().unwrap_or_default();
    let builder = builders
        .iter()
        .find_map(|item| match item {
            syn::Item::Struct(b) if b.ident == name => Some(b),
            _ => None,
        })
        .ok_or_else(|| format!("no `builder::{name}` in progenitor's output for {id}"))?;
    let params: Vec<&Value> = op
        .value
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| spec.resolve(p))
        .collect();
    let mut fields = Vec::new();
    for field in &builder.fields {
        let ident = field.ident.clone().ok_or("a tuple builder")?;
        if ident == "client" {
            continue;
        }
        let held = result_ok(&field.ty)
            .ok_or_else(|| format!("builder::{name}.{ident} is not a Result"))?;
        let text = held.to_token_stream().to_string().replace(' ', "");
        let (ty, doc, path_name, spec_name) = if ident == "body" {
            let body = text
                .strip_prefix("types::builder::")
                .ok_or_else(|| format!("{id}: a body that is not a schema of the spec ({text})"))?;
            let ty: syn::Type =
                syn::parse_str(&format!("types::{body}")).map_err(|e| e.to_string())?;
            let doc = op
                .value
                .pointer("/requestBody/description")
                .and_then(Value::as_str)
                .unwrap_or("The request body.")
                .to_string();
            (ty, doc, None, "body".to_string())
        } else {
            let param = params
                .iter()
                .find(|p| {
                    p.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| ident == n.trim_start_matches('$').to_snake_case())
                })
                .ok_or_else(|| {
                    format!("{id}: builder field `{ident}` matches no parameter of the spec")
                })?;
            let spec_name = param
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let place = param.get("in").and_then(Value::as_str).unwrap_or_default();
            let description = param
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let doc = format!("`{spec_name}` ({place}): {description}");
            let path_name = (place == "path").then(|| spec_name.to_string());
            (held.clone(), doc, path_name, spec_name.to_string())
        };
        fields.push(Field {
            name: ident,
            optional: is_option(&ty),
            ty,
            path_name,
            spec_name,
            doc,
        });
    }
    Ok(fields)
}

/// Whether progenitor cannot generate the operation: 0.15 takes no `multipart/form-data`
/// body (progenitor-notes.md). Its request type is written by hand in the client's
/// `multipart` module and sent through the same hooks; the rest of the model is generated.
pub fn written_by_hand(op: &Operation) -> bool {
    op.value
        .pointer("/requestBody/content/multipart~1form-data")
        .is_some()
}

/// `types::X` of the schema `$ref` of the operation's first 2XX answer, for an operation
/// progenitor did not generate.
fn documented_success(op: &Operation) -> Result<syn::Type, String> {
    let responses = op.value.get("responses").and_then(Value::as_object);
    let schema = responses
        .into_iter()
        .flatten()
        .find(|(status, _)| status.starts_with('2'))
        .and_then(|(_, r)| r.pointer("/content/application~1json/schema/$ref"))
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .ok_or_else(|| format!("{}: no 2XX JSON answer of a named schema", op.path))?;
    syn::parse_str(&format!("types::{schema}")).map_err(|e| e.to_string())
}

/// The schema of a multipart request's form, e.g. `types::LibraryFileUpload`.
fn documented_form(op: &Operation) -> Result<syn::Type, String> {
    let schema = op
        .value
        .pointer("/requestBody/content/multipart~1form-data/schema/$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .ok_or_else(|| format!("{}: no multipart form of a named schema", op.path))?;
    syn::parse_str(&format!("types::{schema}")).map_err(|e| e.to_string())
}

/// The module's tokens; `file` is progenitor's output (its builders name each request's fields).
pub fn operations_module(spec: &Spec, file: &syn::File) -> Result<TokenStream, String> {
    // progenitor's `mod builder`: one builder per operation, named after it.
    let builders: &[syn::Item] = &file
        .items
        .iter()
        .find_map(|item| match item {
            syn::Item::Mod(m) if m.ident == "builder" => m.content.as_ref(),
            _ => None,
        })
        .ok_or("progenitor's output has no `mod builder`")?
        .1;
    let located =
        |e: mde_spec::ExtensionError| format!("{}: {}", spec.locate(&e.pointer), e.message);
    let global_servers = server_tokens(&spec.servers().map_err(located)?);
    let (mut consts, mut variants, mut ids, mut methods, mut requests) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut variant_docs, mut answers, mut action_answers) = (Vec::new(), Vec::new(), Vec::new());
    let (mut with_ids, mut bodies, mut from_bodies) = (Vec::new(), Vec::new(), Vec::new());
    let (mut from_parameters, mut body_types, mut success_types) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut answer_bodies: Vec<(syn::Ident, syn::Type)> = Vec::new();
    // The crate docs' table of every operation: a row each.
    let mut table = vec![
        String::new(),
        " | operation | request for [`Client::send`](crate::Client::send) | success |".to_string(),
        " |---|---|---|".to_string(),
    ];
    for op in spec.operations() {
        let id = op
            .operation_id
            .clone()
            .ok_or("an operation without operationId")?;
        let name = format_ident!("{}", id.to_shouty_snake_case());
        let variant = format_ident!("{}", id.to_upper_camel_case());
        let method_name = id.to_snake_case();
        let method = format_ident!("{method_name}");
        let (http_method, path) = (&op.method, &op.path);
        let summary = op
            .value
            .get("summary")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let deprecation = op.deprecation().map_err(located)?;
        let deprecated = deprecation.is_some();
        let retired = match deprecation.as_ref().and_then(|d| d.retired.as_deref()) {
            Some(date) => quote!(Some(#date)),
            None => quote!(None),
        };
        let retiring = match deprecation.as_ref().and_then(|d| d.retiring.as_deref()) {
            Some(date) => quote!(Some(#date)),
            None => quote!(None),
        };
        let tenant_quota = match op.tenant_quota().map_err(located)? {
            Some(q) => {
                let hour = option_u64(q.cpu_per_hour);
                let day = option_u64(q.cpu_per_day);
                let cycle = q.cycle;
                quote!(Some(TenantQuota { cpu_per_hour: #hour, cpu_per_day: #day, cycle: #cycle }))
            }
            None => quote!(None),
        };
        let note = match &deprecation {
            Some(d) => {
                let d = d.to_string();
                quote!(Some(#d))
            }
            None => quote!(None),
        };
        let windows = op.rate_limits().map_err(located)?.into_iter().map(|w| {
            let (calls, seconds) = (w.calls as u32, w.seconds);
            quote! { RateWindow { calls: #calls, seconds: #seconds } }
        });
        let permissions = op.permissions().map_err(located)?;
        let (application, delegated, roles) = (
            &permissions.application,
            &permissions.delegated,
            &permissions.directory_roles,
        );
        let servers = if op.has_own_servers() {
            let own = server_tokens(&op.servers(spec).map_err(located)?);
            quote!(&[#(#own),*])
        } else {
            quote!(SERVERS)
        };
        // What the spec says of the operation's shape, so that no hand-written match restates it.
        let target = if path.contains("/machines/{") {
            quote!(Target::Machine)
        } else if path.contains("/machineactions/{") {
            quote!(Target::MachineAction)
        } else {
            quote!(Target::None)
        };
        let page = spec.answers_page(&op);
        let comment = spec.needs_comment(&op);
        let command = match op.cli_command().map_err(located)? {
            Some(words) => quote!(Some(&[#(#words),*])),
            None => quote!(None),
        };
        let (undone_by, irreversible) = match op.undone_by(spec).map_err(located)? {
            Some(Some(other)) => {
                let other = format_ident!("{}", other.to_upper_camel_case());
                (quote!(Some(OperationId::#other)), false)
            }
            Some(None) => (quote!(None), true),
            None => (quote!(None), false),
        };
        let evidence = match op.evidence().map_err(located)?.as_deref() {
            Some("package") => quote!(Some(Evidence::Package)),
            Some(_) => quote!(Some(Evidence::LiveResponseResults)),
            None => quote!(None),
        };
        let creates = match op.machine_action_type(spec).map_err(located)? {
            Some(kind) => quote!(Some(#kind)),
            None => quote!(None),
        };
        let body_fields = spec.body_fields(&op).into_iter().map(|f| {
            let (name, flag, help, required) = (&f.name, &f.flag, &f.help, f.required);
            let kind = match &f.kind {
                FieldKind::Text { min, max } => {
                    let bound = |b: &Option<u64>| match b {
                        Some(n) => quote!(Some(#n)),
                        None => quote!(None),
                    };
                    let (min, max) = (bound(min), bound(max));
                    quote!(FieldKind::Text { min: #min, max: #max })
                }
                FieldKind::Choice(choices) => {
                    let choices = choices
                        .iter()
                        .map(|(value, typed)| quote!(Choice { value: #value, typed: #typed }));
                    quote!(FieldKind::Choice(&[#(#choices),*]))
                }
                FieldKind::Switch => quote!(FieldKind::Switch),
                FieldKind::Integer => quote!(FieldKind::Integer),
                FieldKind::List => quote!(FieldKind::List),
                FieldKind::Json => quote!(FieldKind::Json),
            };
            quote! { BodyField { name: #name, flag: #flag, help: #help, required: #required, kind: #kind } }
        });
        let doc = format!("`{http_method} {path}`: {summary}");
        consts.push(quote! {
            #[doc = #doc]
            pub const #name: Operation = Operation {
                id: OperationId::#variant,
                method: #http_method,
                path: #path,
                summary: #summary,
                deprecated: #deprecated,
                deprecation: #note,
                retired: #retired,
                retiring: #retiring,
                rate_limits: &[#(#windows),*],
                tenant_quota: #tenant_quota,
                application_permissions: &[#(#application),*],
                delegated_permissions: &[#(#delegated),*],
                directory_roles: &[#(#roles),*],
                servers: #servers,
                target: #target,
                answers_page: #page,
                creates_action: #creates,
                needs_comment: #comment,
                cli_command: #command,
                undone_by: #undone_by,
                irreversible: #irreversible,
                evidence: #evidence,
                body: &[#(#body_fields),*],
            };
        });

        // The request type and how it is sent.
        let by_hand = written_by_hand(&op);
        let (fields, response) = if by_hand {
            (Vec::new(), documented_success(&op)?)
        } else {
            (
                request_fields(spec, &op, builders, &variant.to_string())?,
                success_type(builders, &variant.to_string())?,
            )
        };
        let answers_action =
            response.to_token_stream().to_string().replace(' ', "") == "types::MachineAction";
        let created_action =
            if answers_action && op.machine_action_type(spec).map_err(located)?.is_some() {
                quote!(Some(response))
            } else {
                quote!({
                    let _ = response;
                    None
                })
            };
        let field_names: Vec<&syn::Ident> = fields.iter().map(|f| &f.name).collect();
        let field_types = fields.iter().map(|f| &f.ty);
        let field_docs = fields.iter().map(|f| &f.doc);
        let setters = fields.iter().map(|f| {
            let n = &f.name;
            if f.optional {
                quote! { if let Some(value) = self.#n { builder = builder.#n(value); } }
            } else {
                quote! { builder = builder.#n(self.#n); }
            }
        });
        // Text parameters only: a number cannot be a path step or hold control characters.
        let path_parameters = fields.iter().filter_map(|f| {
            let text =
                f.ty.to_token_stream()
                    .to_string()
                    .replace(' ', "")
                    .ends_with("String");
            let (n, spec_name) = (&f.name, f.path_name.as_ref().filter(|_| text)?);
            Some(quote! { (#spec_name, self.#n.as_str()) })
        });
        let deprecated_attr = deprecation.as_ref().map(|d| {
            let d = d.to_string();
            quote!(#[deprecated(note = #d)])
        });
        let request_doc = format!(
            "The request of `{id}`: {doc}\n\nSend it with `Client::send` of `mde_client`, or through the generated [`super::Client::{method_name}`]."
        );
        let mut_builder = if fields.is_empty() {
            quote!()
        } else {
            quote!(mut)
        };
        if by_hand {
            let doc = format!(
                "The request of `{id}`: {doc}\n\nprogenitor cannot generate it: written by hand, sent through the same hooks."
            );
            requests.push(quote! {
                #[doc = #doc]
                pub use crate::multipart::#variant;
            });
        } else {
            requests.push(quote! {
            #[doc = #request_doc]
            #deprecated_attr
            #[derive(Clone, Debug, PartialEq)]
            pub struct #variant {
                #( #[doc = #field_docs] pub #field_names: #field_types, )*
            }

            #[allow(deprecated)]
            impl Request for #variant {
                const ID: OperationId = OperationId::#variant;
                type Response = #response;

                fn path_parameters(&self) -> ::std::vec::Vec<(&'static str, &str)> {
                    vec![#(#path_parameters),*]
                }

                fn send(self, client: &super::Client) -> impl ::std::future::Future<Output = Sent<Self::Response>> + Send + '_ {
                    let #mut_builder builder = client.#method();
                    #(#setters)*
                    builder.send()
                }

                fn answer(response: Self::Response) -> Answer {
                    Answer::#variant(response)
                }

                fn created_action(response: &Self::Response) -> ::std::option::Option<&types::MachineAction> {
                    #created_action
                }
            }
            });
        }
        // A run's template: the same request for another id, and its body as JSON.
        let has_id = fields
            .iter()
            .any(|f| f.name == "id" && f.path_name.is_some());
        with_ids.push(if has_id {
            quote! { AnyRequest::#variant(r) => { let mut r = r.clone(); r.id = id.to_string(); AnyRequest::#variant(r) } }
        } else {
            quote! { AnyRequest::#variant(r) => AnyRequest::#variant(r.clone()) }
        });
        // Only a request of an id and a JSON body is made from a body alone.
        let body_only = fields
            .iter()
            .all(|f| f.name == "body" || (f.name == "id" && f.path_name.is_some()));
        from_bodies.push(match (fields.iter().any(|f| f.name == "body"), has_id) {
            (true, true) if body_only => quote! {
                OperationId::#variant => Some(::serde_json::from_value(body).map(|body| AnyRequest::#variant(#variant { id: ::std::string::String::new(), body })))
            },
            (true, false) if body_only => quote! {
                OperationId::#variant => Some(::serde_json::from_value(body).map(|body| AnyRequest::#variant(#variant { body })))
            },
            _ => quote! { OperationId::#variant => None },
        });
        // The types of its body and success, for code generic over them (the examples' test).
        let body_type = match by_hand {
            true => Some(documented_form(&op)?),
            false => fields
                .iter()
                .find(|f| f.name == "body")
                .map(|f| f.ty.clone()),
        };
        body_types.push(match body_type {
            Some(ty) => quote! { OperationId::#variant => Some(visitor.visit::<#ty>()) },
            None => quote! { OperationId::#variant => None },
        });
        success_types.push(quote! { OperationId::#variant => visitor.visit::<#response>() });
        let keys = fields.iter().map(|f| &f.spec_name);
        from_parameters.push(if by_hand {
            quote! { OperationId::#variant => None }
        } else {
            quote! {
                OperationId::#variant => Some((|| -> ::std::result::Result<AnyRequest, ::serde_json::Error> {
                    Ok(AnyRequest::#variant(#variant { #( #field_names: parameter(parameters, #keys)?, )* }))
                })())
            }
        });
        bodies.push(if fields.iter().any(|f| f.name == "body") {
            quote! { AnyRequest::#variant(r) => ::serde_json::to_value(&r.body).ok() }
        } else {
            quote! { AnyRequest::#variant(_) => None }
        });
        if answers_action {
            action_answers.push(variant.clone());
        }
        let variant_doc = format!("`{id}`: {summary}");
        answers.push(quote! {
            #[doc = #variant_doc]
            #[serde(rename = #id)]
            #variant(#response)
        });
        variant_docs.push(variant_doc);
        answer_bodies.push((variant.clone(), response.clone()));
        let success = response.to_token_stream().to_string().replace(' ', "");
        let success = match success.as_str() {
            "()" => "`()`".to_string(),
            ty => format!("[`{ty}`]"),
        };
        // Outer docs of a module resolve their links in the module's parent.
        let request = format!("[`{variant}`](operations::{variant})");
        table.push(format!(
            " | `{http_method} {path}` | {request} | {success} |"
        ));
        variants.push(variant);
        ids.push(id);
        methods.push(method_name);
    }
    let answer_body = answer_body(&answer_bodies);
    let credentials = spec.client_credentials().map_err(located)?;
    let (token_url, token_scopes) = (&credentials.token_url, &credentials.scopes);
    let machine_ids = documented_machine_ids(spec);
    let consts_names: Vec<syn::Ident> = ids
        .iter()
        .map(|id| format_ident!("{}", id.to_shouty_snake_case()))
        .collect();
    let count = variants.len();
    Ok(quote! {
        /// The operation model: one [`OperationId`](operations::OperationId) per operation of
        /// the spec, what the spec says of each beyond its types
        /// ([`Operation`](operations::Operation): hosts, permissions from `x-permissions`, rate
        /// limits from `x-rate-limit`, deprecation from `x-deprecation`), and one
        /// [`Request`](operations::Request) type per operation.
        #(#[doc = #table])*
        pub mod operations {
            use super::{types, Error, ResponseValue};

            /// One window of a rate limit: at most `calls` per `seconds`. All windows of an
            /// operation apply at once; the service counts them per application and tenant, or
            /// per tenant where the operation has a [`TenantQuota`].
            #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
            pub struct RateWindow {
                /// Calls allowed in the window.
                pub calls: u32,
                /// Length of the window in seconds.
                pub seconds: u64,
            }

            /// An operation whose limits are the tenant's (`x-tenant-quota`): its
            /// [`RateWindow`]s count every app of the tenant together, and its queries spend a
            /// CPU allocation that, once spent, blocks them until the next cycle.
            #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
            pub struct TenantQuota {
                /// CPU seconds a tenant may spend an hour, when documented.
                pub cpu_per_hour: ::std::option::Option<u64>,
                /// CPU seconds a tenant may spend a day, when documented.
                pub cpu_per_day: ::std::option::Option<u64>,
                /// Seconds between the service's checks of the allocation.
                pub cycle: u64,
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

            /// What the spec says of an operation beyond its types.
            #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
            pub struct Operation {
                /// Which operation.
                pub id: OperationId,
                /// HTTP method, upper case.
                pub method: &'static str,
                /// Path template, e.g. `/api/machines/{id}/startInvestigation`.
                pub path: &'static str,
                /// The spec's `summary`: what it does, in a line.
                pub summary: &'static str,
                /// Marked `deprecated: true`.
                pub deprecated: bool,
                /// Why it is deprecated, with the date and the source (`x-deprecation`).
                pub deprecation: ::std::option::Option<&'static str>,
                /// The date the service stopped serving it, when it did.
                pub retired: ::std::option::Option<&'static str>,
                /// The date after which the service stops serving it, when announced
                /// (`x-deprecation.retiring`): a client refuses a call after it.
                pub retiring: ::std::option::Option<&'static str>,
                /// Every window applies; empty when none is documented.
                pub rate_limits: &'static [RateWindow],
                /// Its limits are the tenant's, and its queries spend the tenant's CPU
                /// (`x-tenant-quota`); `None`: counted per application and tenant.
                pub tenant_quota: ::std::option::Option<TenantQuota>,
                /// Application permissions, any one of which allows the call.
                pub application_permissions: &'static [&'static str],
                /// Delegated permissions, any one of which allows the call.
                pub delegated_permissions: &'static [&'static str],
                /// Directory roles, any one of which allows the call.
                pub directory_roles: &'static [&'static str],
                /// The hosts it is documented on.
                pub servers: &'static [Server],
                /// What its path's id names: a machine, a machine action, or nothing.
                pub target: Target,
                /// Whether it answers a page: an OData collection with `value`, or a hunting
                /// answer's rows.
                pub answers_page: bool,
                /// The `type` of the machine action it creates (`x-machine-action-type`), as
                /// the spec's `MachineActionType` writes it; `None` when it creates none.
                pub creates_action: ::std::option::Option<&'static str>,
                /// Whether its body requires a `Comment`.
                pub needs_comment: bool,
                /// The words of the `mde` command that sends it, its request made from its
                /// body's flags (`x-cli-command`); `None` when no command sends it that way.
                pub cli_command: ::std::option::Option<&'static [&'static str]>,
                /// The operation that undoes it (`x-undone-by`): a release undoes an isolation.
                pub undone_by: ::std::option::Option<OperationId>,
                /// No operation of the API undoes it (`x-undone-by: false`): an offboarding.
                pub irreversible: bool,
                /// What a run of it saves (`x-evidence`), when it saves anything.
                pub evidence: ::std::option::Option<Evidence>,
                /// The members of its JSON body, as a command line takes them (empty without
                /// one).
                pub body: &'static [BodyField],
            }

            /// A member of an operation's JSON body, as a command line takes it (progenitor's
            /// CLI rules: a scalar is a `--kebab-case` flag, an enum its possible values, an
            /// array a repeated flag, anything else JSON; `x-cli-name` and `x-cli-values` name
            /// them otherwise).
            #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
            pub struct BodyField {
                /// Its name in the body, e.g. `IsolationType`.
                pub name: &'static str,
                /// The flag that takes it, without `--`, e.g. `type`.
                pub flag: &'static str,
                /// What it is, one sentence.
                pub help: &'static str,
                /// Whether the body requires it.
                pub required: bool,
                /// What the flag takes.
                pub kind: FieldKind,
            }

            /// What a body member's flag takes.
            #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
            pub enum FieldKind {
                /// Text, of `minLength` and `maxLength` characters when the spec says.
                Text {
                    /// `minLength`.
                    min: ::std::option::Option<u64>,
                    /// `maxLength`.
                    max: ::std::option::Option<u64>,
                },
                /// One of an enum's values.
                Choice(&'static [Choice]),
                /// A boolean: the flag alone.
                Switch,
                /// An integer.
                Integer,
                /// An array: the flag repeated, an item each.
                List,
                /// Anything else: JSON text.
                Json,
            }

            /// A value of an enum member, and the name a command line types for it.
            #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
            pub struct Choice {
                /// The value on the wire, e.g. `UnManagedDevice`.
                pub value: &'static str,
                /// The name typed for it, e.g. `unmanaged` (`x-cli-values`, or the value in
                /// lower case).
                pub typed: &'static str,
            }

            /// What a run of an operation saves (`x-evidence`).
            #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
            pub enum Evidence {
                /// The investigation package of a collection (`package`).
                Package,
                /// The results of a live response session's commands (`live-response-results`).
                LiveResponseResults,
            }

            /// What the id in an operation's path names.
            #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
            pub enum Target {
                /// A machine (`/machines/{id}/...`).
                Machine,
                /// A machine action (`/machineactions/{id}/...`).
                MachineAction,
                /// No id in the path (a list).
                None,
            }

            /// Every operation of the spec. Match on it with no `_ =>` arm: an operation
            /// added to the spec is then a compile error wherever a decision is needed.
            #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
            pub enum OperationId {
                #( #[doc = #variant_docs] #variants, )*
            }

            impl OperationId {
                /// Every operation, in the spec's order.
                pub const ALL: [OperationId; #count] = [#(OperationId::#variants),*];

                /// The spec's facts of the operation.
                pub const fn facts(self) -> &'static Operation {
                    match self {
                        #( OperationId::#variants => &#consts_names, )*
                    }
                }

                /// The spec's `operationId`.
                pub const fn as_str(self) -> &'static str {
                    match self {
                        #( OperationId::#variants => #ids, )*
                    }
                }

                /// The operation whose generated method (progenitor's
                /// `OperationInfo::operation_id`) is `name`.
                pub fn from_method(name: &str) -> ::std::option::Option<OperationId> {
                    match name {
                        #( #methods => Some(OperationId::#variants), )*
                        _ => None,
                    }
                }

                /// Its position in [`OperationId::ALL`], for tables indexed by operation.
                pub const fn index(self) -> usize {
                    self as usize
                }
            }

            impl ::std::fmt::Display for OperationId {
                fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                    f.write_str(self.as_str())
                }
            }

            /// A text that is no `operationId` of the spec.
            #[derive(Clone, Debug, PartialEq, Eq)]
            pub struct UnknownOperation(pub ::std::string::String);

            impl ::std::fmt::Display for UnknownOperation {
                fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                    write!(f, "no operation {:?} in the spec", self.0)
                }
            }

            impl ::std::error::Error for UnknownOperation {}

            impl ::std::str::FromStr for OperationId {
                type Err = UnknownOperation;
                fn from_str(value: &str) -> ::std::result::Result<Self, Self::Err> {
                    match value {
                        #( #ids => Ok(OperationId::#variants), )*
                        other => Err(UnknownOperation(other.to_string())),
                    }
                }
            }

            impl ::serde::Serialize for OperationId {
                fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> ::std::result::Result<S::Ok, S::Error> {
                    serializer.serialize_str(self.as_str())
                }
            }

            impl<'de> ::serde::Deserialize<'de> for OperationId {
                fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::std::result::Result<Self, D::Error> {
                    let text = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(deserializer)?;
                    text.parse().map_err(::serde::de::Error::custom)
                }
            }

            /// What the generated client answers for a request: the success, or the error.
            pub type Sent<T> = ::std::result::Result<ResponseValue<T>, Error<types::Error>>;

            /// The request of one operation: its parameters and body, its success type, and
            /// how it goes through the generated client.
            pub trait Request: Clone + ::std::fmt::Debug + Send + Sync + 'static {
                /// Which operation.
                const ID: OperationId;
                /// The documented success body.
                type Response: ::serde::Serialize + ::serde::de::DeserializeOwned + Clone + ::std::fmt::Debug + Send + Sync + 'static;
                /// The path parameters: the spec's name and the value, to check before sending.
                fn path_parameters(&self) -> ::std::vec::Vec<(&'static str, &str)>;
                /// Sends it through the generated client (and so through its hooks).
                fn send(self, client: &super::Client) -> impl ::std::future::Future<Output = Sent<Self::Response>> + Send + '_;
                /// Its success as an [`Answer`].
                fn answer(response: Self::Response) -> Answer;
                /// The machine action its success is, for an operation that creates one
                /// (`x-machine-action-type`); `None` for the others, a cancel among them.
                fn created_action(response: &Self::Response) -> ::std::option::Option<&types::MachineAction>;
            }

            #(#requests)*

            /// The success of any operation, tagged with its `operationId`: what a journal keeps
            /// and an output shows, read back by its tag, never guessed from its fields.
            #[derive(Clone, Debug, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
            #[serde(tag = "operation", content = "answer")]
            #[allow(clippy::large_enum_variant)]
            pub enum Answer {
                #(#answers,)*
            }

            impl Answer {
                /// The operation that answered.
                pub fn operation(&self) -> OperationId {
                    match self {
                        #( Answer::#variants(_) => OperationId::#variants, )*
                    }
                }

                /// The machine action the answer is, for the operations that answer one.
                pub fn machine_action(&self) -> ::std::option::Option<&types::MachineAction> {
                    match self {
                        #( Answer::#action_answers(action) => Some(action), )*
                        #[allow(unreachable_patterns)]
                        _ => None,
                    }
                }

                /// `action` as `op`'s answer, for the operations that answer a machine action.
                pub fn of_action(op: OperationId, action: types::MachineAction) -> ::std::option::Option<Answer> {
                    match op {
                        #( OperationId::#action_answers => Some(Answer::#action_answers(action)), )*
                        #[allow(unreachable_patterns)]
                        _ => None,
                    }
                }
            }

            #answer_body

            /// Any operation's request, for a program that holds one without naming its type:
            /// a fleet run's template, sent to each machine with its id set.
            #[derive(Clone, Debug, PartialEq)]
            #[allow(deprecated, clippy::large_enum_variant)]
            pub enum AnyRequest {
                #( #[doc = #variant_docs] #variants(#variants), )*
            }

            /// Something done with a request of any operation, its type known inside:
            /// [`AnyRequest::visit`] calls [`RequestVisitor::visit`] with the typed request.
            pub trait RequestVisitor {
                /// What the visit gives.
                type Output;
                /// The visit, with the request as its own type.
                fn visit<R: Request>(self, request: R) -> Self::Output;
            }

            #[allow(deprecated)]
            impl AnyRequest {
                /// The operation.
                pub fn operation(&self) -> OperationId {
                    match self {
                        #( AnyRequest::#variants(_) => OperationId::#variants, )*
                    }
                }

                /// The same request with `id` as its path's id (a request without one, as it is).
                pub fn with_id(&self, id: &str) -> AnyRequest {
                    match self {
                        #(#with_ids,)*
                    }
                }

                /// Its body as the wire has it, when it has one.
                pub fn body(&self) -> ::std::option::Option<::serde_json::Value> {
                    match self {
                        #(#bodies,)*
                    }
                }

                /// `op`'s request, its path's id left empty (a template: see
                /// [`AnyRequest::with_id`]), with `body` read as the operation's typed body;
                /// `None` for an operation whose request is not an id and a JSON body.
                pub fn from_body(op: OperationId, body: ::serde_json::Value) -> ::std::option::Option<::std::result::Result<AnyRequest, ::serde_json::Error>> {
                    match op {
                        #(#from_bodies,)*
                    }
                }

                /// `op`'s request from its parameters by their names in the spec (`id`,
                /// `$filter`, …) and its body as `body`, each as JSON (an absent optional one
                /// is `None`); `None` for an operation whose request is written by hand.
                #[allow(clippy::redundant_closure_call)] // a closure per operation, for `?`
                pub fn from_parameters(op: OperationId, parameters: &::serde_json::Map<::std::string::String, ::serde_json::Value>) -> ::std::option::Option<::std::result::Result<AnyRequest, ::serde_json::Error>> {
                    fn parameter<T: ::serde::de::DeserializeOwned>(parameters: &::serde_json::Map<::std::string::String, ::serde_json::Value>, name: &str) -> ::std::result::Result<T, ::serde_json::Error> {
                        ::serde_json::from_value(parameters.get(name).cloned().unwrap_or(::serde_json::Value::Null))
                    }
                    match op {
                        #(#from_parameters,)*
                    }
                }

                /// Hands the typed request to `visitor`.
                pub fn visit<V: RequestVisitor>(self, visitor: V) -> V::Output {
                    match self {
                        #( AnyRequest::#variants(r) => visitor.visit(r), )*
                    }
                }
            }

            impl OperationId {
                /// The machine action type it creates (`x-machine-action-type`), if any.
                pub fn creates_action(self) -> ::std::option::Option<types::MachineActionType> {
                    self.facts().creates_action.map(types::MachineActionType::from)
                }
            }

            /// Something done with a type of the spec, known inside: [`OperationId::visit_body`]
            /// and [`OperationId::visit_success`] call it with an operation's body or success
            /// type, so that code generic over them (the examples' test) names no type.
            #[cfg(feature = "schemars")]
            pub trait TypeVisitor {
                /// What the visit gives.
                type Output;
                /// The visit, with the type.
                fn visit<T: ::serde::Serialize + ::serde::de::DeserializeOwned + ::std::fmt::Debug + ::schemars::JsonSchema>(self) -> Self::Output;
            }

            #[cfg(feature = "schemars")]
            #[allow(deprecated)]
            impl OperationId {
                /// Visits the type of its request body (the form's, for a multipart one);
                /// `None` when it takes none.
                pub fn visit_body<V: TypeVisitor>(self, visitor: V) -> ::std::option::Option<V::Output> {
                    match self {
                        #(#body_types,)*
                    }
                }

                /// Visits the type of its success body (`()` for none).
                pub fn visit_success<V: TypeVisitor>(self, visitor: V) -> V::Output {
                    match self {
                        #(#success_types,)*
                    }
                }
            }

            #(#consts)*

            /// Every operation's facts, in the spec's order.
            pub const ALL: &[Operation] = &[#(#consts_names),*];

            /// The hosts of the `/api/...` operations (the spec's top-level `servers`).
            pub const SERVERS: &[Server] = &[#(#global_servers),*];

            /// Azure AD's client-credentials token URL; `{tenant}` stands for the tenant id.
            pub const TOKEN_URL: &str = #token_url;

            /// The scopes of the client-credentials grant, the API's first (then Microsoft Graph's): a
            /// token is asked for one of them, the one its operation needs (`scope_for`).
            pub const TOKEN_SCOPES: &[&str] = &[#(#token_scopes),*];

            /// The machine ids the documents show, in the spec's order.
            pub const DOCUMENTED_MACHINE_IDS: &[&str] = &[#(#machine_ids),*];
        }
    })
}

/// `AnswerBody`: an answer by the type of its body, one variant a type (`Empty` for none), and
/// `Answer::body`, so that code which treats the operations answering one type alike (an
/// output, a MachineAction's line) matches on the types and a new operation costs it nothing.
fn answer_body(answers: &[(syn::Ident, syn::Type)]) -> proc_macro2::TokenStream {
    let mut kinds: Vec<(String, proc_macro2::TokenStream)> = Vec::new();
    let arms = answers.iter().map(|(variant, ty)| {
        let key = ty.to_token_stream().to_string().replace(' ', "");
        let name = key.rsplit("::").next().unwrap_or_default().to_string();
        let (name, unit) = if key == "()" {
            ("Empty".to_string(), true)
        } else {
            (name, false)
        };
        let kind = format_ident!("{name}");
        if !kinds.iter().any(|(k, _)| *k == name) {
            let doc = format!("The answer of every operation whose body is `{key}`.");
            let item = match unit {
                true => quote! { #[doc = #doc] #kind },
                false => quote! { #[doc = #doc] #kind(&'a #ty) },
            };
            kinds.push((name, item));
        }
        match unit {
            true => quote! { Answer::#variant(()) => AnswerBody::#kind },
            false => quote! { Answer::#variant(body) => AnswerBody::#kind(body) },
        }
    });
    let arms: Vec<_> = arms.collect();
    let items = kinds.iter().map(|(_, item)| item);
    quote! {
        /// An answer by the type of its body: what code that treats every operation answering
        /// one type alike matches on, so that a new operation answering a known type costs it
        /// nothing.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub enum AnswerBody<'a> {
            #(#items,)*
        }

        impl Answer {
            /// The answer by the type of its body.
            pub fn body(&self) -> AnswerBody<'_> {
                match self {
                    #(#arms,)*
                }
            }
        }
    }
}

/// The success type `T` of the builder `builder_name`'s `send`, from progenitor's output:
/// `Result<ResponseValue<T>, Error<E>>`.
fn success_type(builders: &[syn::Item], builder_name: &str) -> Result<syn::Type, String> {
    let send = builders
        .iter()
        .filter_map(|item| match item {
            syn::Item::Impl(imp) => Some(imp),
            _ => None,
        })
        .filter(|imp| matches!(&*imp.self_ty, syn::Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == builder_name)))
        .flat_map(|imp| imp.items.iter())
        .find_map(|item| match item {
            syn::ImplItem::Fn(f) if f.sig.ident == "send" => Some(f),
            _ => None,
        })
        .ok_or_else(|| format!("no `builder::{builder_name}::send` in progenitor's output"))?;
    let syn::ReturnType::Type(_, ty) = &send.sig.output else {
        return Err(format!("builder::{builder_name}::send returns nothing"));
    };
    let ok = result_ok(ty)
        .ok_or_else(|| format!("builder::{builder_name}::send does not return a Result"))?;
    let syn::Type::Path(p) = ok else {
        return Err(format!(
            "builder::{builder_name}::send: unexpected success type"
        ));
    };
    let last = p.path.segments.last().ok_or("empty type")?;
    match (&last.arguments, last.ident == "ResponseValue") {
        (syn::PathArguments::AngleBracketed(args), true) => match args.args.first() {
            Some(syn::GenericArgument::Type(t)) => Ok(t.clone()),
            _ => Err("ResponseValue without a type".into()),
        },
        _ => Err(format!(
            "builder::{builder_name}::send answers {}, not a typed body",
            ok.to_token_stream()
        )),
    }
}

/// The machine-id parameter's examples, then every `machineId` in the examples.
fn documented_machine_ids(spec: &Spec) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for example in spec.examples() {
        let id = if example
            .pointer
            .starts_with("/components/parameters/MachineId/")
        {
            example.value.as_str()
        } else {
            example.value.get("machineId").and_then(Value::as_str)
        };
        // A page's placeholder (`{machine_id}`) is no machine.
        let placeholder = |id: &&str| id.starts_with('{');
        if let Some(id) = id
            .filter(|id| !placeholder(id))
            .filter(|id| !ids.iter().any(|known| known == id))
        {
            ids.push(id.to_string());
        }
    }
    ids
}

/// `Some(n)` or `None` as code.
fn option_u64(n: Option<u64>) -> proc_macro2::TokenStream {
    match n {
        Some(n) => quote!(Some(#n)),
        None => quote!(None),
    }
}

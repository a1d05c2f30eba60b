//! A short summary of the generated crate's public API, read from `generated.rs` with `syn`:
//! a spec change shows its effect on callers in a few lines of this snapshot's diff.

use std::fmt::Write;

use quote::ToTokens;
use syn::visit::Visit;
use syn::{Attribute, Fields, ImplItem, Item, ItemMod, Type};

fn generated() -> syn::File {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/mde-client/src/generated.rs"
    );
    syn::parse_file(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A type as a reader writes it: `Option<String>`, not `::std::option::Option<::std::string::String>`.
fn ty(t: &Type) -> String {
    let mut s = t.to_token_stream().to_string().replace(' ', "");
    for prefix in [
        "::std::option::",
        "::std::string::",
        "::std::vec::",
        "::serde_json::",
        "crate::types::",
        "crate::",
        "types::builder::",
        "super::",
    ] {
        s = s.replace(prefix, "");
    }
    s.replace(",>", ">").replace(',', ", ")
}

fn serde_rename(attrs: &[Attribute]) -> Option<String> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("serde"))
        .find_map(|a| {
            let text = a.to_token_stream().to_string();
            let start = text.find("rename = \"")? + "rename = \"".len();
            Some(text[start..].split('"').next()?.to_string())
        })
}

fn is_deprecated(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| a.path().is_ident("deprecated"))
}

fn module<'a>(items: &'a [Item], name: &str) -> &'a [Item] {
    items
        .iter()
        .find_map(|item| match item {
            Item::Mod(ItemMod {
                ident,
                content: Some((_, items)),
                ..
            }) if ident == name => Some(items.as_slice()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("generated.rs has no `mod {name}`"))
}

/// The status codes an operation's `send` matches on.
#[derive(Default)]
struct Statuses(Vec<String>);

impl<'ast> Visit<'ast> for Statuses {
    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        if let syn::Pat::Lit(lit) = &arm.pat {
            self.0.push(
                lit.to_token_stream()
                    .to_string()
                    .trim_end_matches("u16")
                    .to_string(),
            );
        }
        syn::visit::visit_arm(self, arm);
    }
}

fn summary(file: &syn::File) -> String {
    let mut out = String::new();
    let builders = module(&file.items, "builder");
    writeln!(
        out,
        "# Client: one method per operation; the builder's fields, then send()"
    )
    .unwrap();
    for item in &file.items {
        let Item::Impl(imp) = item else { continue };
        if imp.trait_.is_some() || ty(&imp.self_ty) != "Client" {
            continue;
        }
        for f in imp.items.iter().filter_map(|i| match i {
            ImplItem::Fn(f) => Some(f),
            _ => None,
        }) {
            let syn::ReturnType::Type(_, ret) = &f.sig.output else {
                continue;
            };
            let ret = ty(ret);
            let Some(builder) = ret.strip_prefix("builder::") else {
                continue;
            };
            let builder = builder.trim_end_matches("<'_>");
            let flag = if is_deprecated(&f.attrs) {
                "  #[deprecated]"
            } else {
                ""
            };
            writeln!(out, "\nClient::{}(){flag}", f.sig.ident).unwrap();
            for item in builders {
                match item {
                    Item::Struct(s) if s.ident == builder => {
                        for field in s
                            .fields
                            .iter()
                            .filter(|f| f.ident.as_ref().is_some_and(|i| i != "client"))
                        {
                            let t = ty(&field.ty);
                            let t = t
                                .strip_prefix("Result<")
                                .and_then(|t| t.strip_suffix(", String>"))
                                .unwrap_or(&t);
                            writeln!(out, "  .{}({t})", field.ident.as_ref().unwrap()).unwrap();
                        }
                    }
                    Item::Impl(i) if ty(&i.self_ty) == format!("{builder}<'a>") => {
                        for send in i.items.iter().filter_map(|i| match i {
                            ImplItem::Fn(f) if f.sig.ident == "send" => Some(f),
                            _ => None,
                        }) {
                            let syn::ReturnType::Type(_, r) = &send.sig.output else {
                                continue;
                            };
                            let mut statuses = Statuses::default();
                            statuses.visit_block(&send.block);
                            writeln!(out, "  .send() -> {}", ty(r)).unwrap();
                            writeln!(out, "    statuses: {}", statuses.0.join(" ")).unwrap();
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out.push_str(&types_summary(file));
    out
}

/// The `types` module: each struct's fields (and their JSON names), each enum's variants.
fn types_summary(file: &syn::File) -> String {
    let mut out = String::new();
    writeln!(out, "\n# Types").unwrap();
    for item in module(&file.items, "types") {
        match item {
            Item::Struct(s) => match &s.fields {
                Fields::Named(fields) => {
                    writeln!(out, "\nstruct {}", s.ident).unwrap();
                    for field in &fields.named {
                        let json = serde_rename(&field.attrs)
                            .map(|r| format!("  \"{r}\""))
                            .unwrap_or_default();
                        writeln!(
                            out,
                            "  {}: {}{json}",
                            field.ident.as_ref().unwrap(),
                            ty(&field.ty)
                        )
                        .unwrap();
                    }
                }
                Fields::Unnamed(fields) => {
                    let inner: Vec<String> = fields.unnamed.iter().map(|f| ty(&f.ty)).collect();
                    writeln!(out, "\nnewtype {}({})", s.ident, inner.join(", ")).unwrap();
                }
                Fields::Unit => writeln!(out, "\nunit {}", s.ident).unwrap(),
            },
            Item::Enum(e) => {
                let variants: Vec<String> = e
                    .variants
                    .iter()
                    .map(|v| match &v.fields {
                        Fields::Unit => v.ident.to_string(),
                        Fields::Unnamed(f) => {
                            format!(
                                "{}({})",
                                v.ident,
                                f.unnamed
                                    .iter()
                                    .map(|f| ty(&f.ty))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        }
                        Fields::Named(_) => format!("{} {{ … }}", v.ident),
                    })
                    .collect();
                writeln!(out, "\nenum {}\n  {}", e.ident, variants.join(" | ")).unwrap();
            }
            _ => {}
        }
    }
    out
}

/// The operation model of `mod operations`: each operation's request type, its fields and
/// its success type, as `Client::send` takes them.
fn model_summary(file: &syn::File) -> String {
    let items = module(&file.items, "operations");
    let mut out =
        String::from("\n# Operation model: OperationId, and the request Client::send takes\n");
    for item in items {
        let Item::Impl(imp) = item else { continue };
        let is_request = imp
            .trait_
            .as_ref()
            .is_some_and(|(path, _)| path.is_ident("Request"));
        if !is_request {
            continue;
        }
        let name = ty(&imp.self_ty);
        let (mut id, mut response) = (String::new(), String::new());
        for i in &imp.items {
            match i {
                ImplItem::Const(c) => id = c.expr.to_token_stream().to_string().replace(' ', ""),
                ImplItem::Type(t) => response = ty(&t.ty),
                _ => {}
            }
        }
        let strukt = items.iter().find_map(|i| match i {
            Item::Struct(s) if s.ident == name => Some(s),
            _ => None,
        });
        let (fields, flag) = strukt.map_or((Vec::new(), ""), |s| {
            let fields = s
                .fields
                .iter()
                .map(|f| format!("{}: {}", f.ident.as_ref().unwrap(), ty(&f.ty)))
                .collect();
            let flag = if is_deprecated(&s.attrs) {
                "  #[deprecated]"
            } else {
                ""
            };
            (fields, flag)
        });
        writeln!(
            out,
            "\n{id}{flag}\n  operations::{name} {{ {} }} -> {response}",
            fields.join(", ")
        )
        .unwrap();
    }
    out
}

/// The spec's facts beyond types, as `mde_client::operations` carries them.
fn operations_summary() -> String {
    let mut out = String::from("\n# Operations: limits, permissions, hosts, shape\n");
    for op in mde_client::operations::ALL {
        let limits: Vec<String> = op
            .rate_limits
            .iter()
            .map(|w| format!("{}/{}s", w.calls, w.seconds))
            .collect();
        let hosts: Vec<&str> = op.servers.iter().map(|s| s.url).collect();
        writeln!(out, "\n{} {} {}", op.id, op.method, op.path).unwrap();
        writeln!(
            out,
            "  deprecated: {}, retired: {:?}",
            op.deprecated, op.retired
        )
        .unwrap();
        writeln!(
            out,
            "  rate limits: {}",
            if limits.is_empty() {
                "none documented".into()
            } else {
                limits.join(" and ")
            }
        )
        .unwrap();
        writeln!(
            out,
            "  application: {:?}, delegated: {:?}, roles: {:?}",
            op.application_permissions, op.delegated_permissions, op.directory_roles
        )
        .unwrap();
        writeln!(out, "  hosts: {}", hosts.join(" ")).unwrap();
        writeln!(
            out,
            "  target: {:?}, answers a page: {}, creates: {:?}, needs a comment: {}",
            op.target, op.answers_page, op.creates_action, op.needs_comment
        )
        .unwrap();
    }
    writeln!(
        out,
        "\ndocumented machine ids: {:?}",
        mde_client::operations::DOCUMENTED_MACHINE_IDS
    )
    .unwrap();
    out
}

#[test]
fn public_api_summary() {
    insta::with_settings!({
        description => "the public API of crates/mde-client/src/generated.rs, summarised",
        omit_expression => true,
    }, {
        let file = generated();
        insta::assert_snapshot!(summary(&file) + &model_summary(&file) + &operations_summary());
    });
}

/// Exactly the operations the spec marks `deprecated: true` have a `#[deprecated]` method, so
/// a caller hears it from the compiler.
#[test]
fn deprecated_operations_have_deprecated_methods() {
    let spec = mde_tests::spec();
    let file = generated();
    let methods: Vec<(String, bool)> = file
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Impl(imp) if imp.trait_.is_none() && ty(&imp.self_ty) == "Client" => Some(imp),
            _ => None,
        })
        .flat_map(|imp| imp.items.iter())
        .filter_map(|i| match i {
            ImplItem::Fn(f) => Some((f.sig.ident.to_string(), is_deprecated(&f.attrs))),
            _ => None,
        })
        .collect();
    let mut deprecated = 0;
    for op in spec.operations() {
        let id = op.operation_id.clone().unwrap();
        let snake: String = id
            .chars()
            .flat_map(|c| {
                if c.is_ascii_uppercase() {
                    vec!['_', c.to_ascii_lowercase()]
                } else {
                    vec![c]
                }
            })
            .collect();
        // progenitor generates no method for a multipart body; the client's is by hand.
        if op
            .value
            .pointer("/requestBody/content/multipart~1form-data")
            .is_some()
        {
            assert!(!methods.iter().any(|(name, _)| *name == snake), "{id}");
            continue;
        }
        let (_, marked) = methods
            .iter()
            .find(|(name, _)| *name == snake)
            .unwrap_or_else(|| panic!("no Client::{snake} for {id}"));
        assert_eq!(
            *marked,
            op.deprecated(),
            "Client::{snake}: #[deprecated] should follow the spec"
        );
        deprecated += usize::from(op.deprecated());
    }
    assert!(deprecated >= 1, "the spec deprecates the Graph variant");
}

/// A signature as a reader writes it, from its tokens.
fn signature(sig: &syn::Signature) -> String {
    let mut s = sig.to_token_stream().to_string();
    for (from, to) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" ::", "::"),
        ("& ", "&"),
        (" (", "("),
        ("( ", "("),
        (" )", ")"),
        (" ,", ","),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        ("- >", "->"),
        (" :", ":"),
        ("' ", "'"),
        ("# ", "#"),
    ] {
        s = s.replace(from, to);
    }
    s.replace("->", " -> ")
        .replace("  ", " ")
        .replace(",)", ")")
        .trim_end_matches(',')
        .to_string()
}

/// The `.rs` files under `dir`, their paths from it (after `prefix`), its folders' too.
fn rust_files(dir: &std::path::Path, prefix: &str) -> Vec<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            files.extend(rust_files(&entry.path(), &format!("{name}/")));
        } else if name.ends_with(".rs") {
            files.push(name);
        }
    }
    files
}

/// The hand-written crate around the generated one: what the crate root names, and the
/// methods of `Client` and `Call`.
fn hand_written_summary() -> String {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/mde-client/src");
    let parse = |name: &str| {
        syn::parse_file(&std::fs::read_to_string(format!("{src}/{name}")).unwrap()).unwrap()
    };
    let hidden = |attrs: &[Attribute]| {
        attrs.iter().any(|a| {
            a.to_token_stream()
                .to_string()
                .replace(' ', "")
                .contains("doc(hidden)")
        })
    };
    let public = |v: &syn::Visibility| matches!(v, syn::Visibility::Public(_));
    let mut out = String::from("\n# The crate root (lib.rs): what a program names\n\n");
    for item in parse("lib.rs").items {
        match item {
            Item::Use(u) if public(&u.vis) => {
                let tree = u.tree.to_token_stream().to_string().replace(' ', "");
                writeln!(out, "pub use {}", tree.replace(',', ", ")).unwrap();
            }
            Item::Mod(m) if public(&m.vis) => {
                let note = if hidden(&m.attrs) {
                    "  #[doc(hidden)], not API"
                } else {
                    ""
                };
                writeln!(out, "pub mod {}{note}", m.ident).unwrap();
            }
            _ => {}
        }
    }
    out.push_str("\n# Hand-written methods of Client and Call\n\n");
    let mut methods = Vec::new();
    // Every hand-written file: a method moved to another file stays in the summary.
    let mut files = rust_files(std::path::Path::new(src), "");
    files.retain(|n| n != "generated.rs");
    files.sort();
    for name in &files {
        for item in parse(name).items {
            let Item::Impl(imp) = item else { continue };
            let owner = ty(&imp.self_ty);
            if imp.trait_.is_some() || !(owner == "Client" || owner.starts_with("Call<")) {
                continue;
            }
            for item in imp.items {
                if let ImplItem::Fn(f) = item
                    && public(&f.vis)
                {
                    let deprecated = if is_deprecated(&f.attrs) {
                        "  #[deprecated]"
                    } else {
                        ""
                    };
                    let sig = signature(&f.sig);
                    let (asynchronous, sig) = match sig.strip_prefix("async fn ") {
                        Some(rest) => ("async ", rest.to_string()),
                        None => ("", sig.trim_start_matches("fn ").to_string()),
                    };
                    methods.push(format!(
                        "{asynchronous}{}::{sig}{deprecated}",
                        owner.split('<').next().unwrap(),
                    ));
                }
            }
        }
    }
    out.push_str(&methods.join("\n"));
    out.push('\n');
    out
}

/// The hand-written API: a change of what the crate root names or of a method's signature
/// shows in this snapshot's diff.
#[test]
fn hand_written_api_summary() {
    insta::with_settings!({
        description => "the crate root and the hand-written methods of crates/mde-client, summarised",
        omit_expression => true,
    }, {
        insta::assert_snapshot!(hand_written_summary());
    });
}

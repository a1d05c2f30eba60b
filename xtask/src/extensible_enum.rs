//! String enums that keep values the service adds later.
//!
//! typify makes closed enums, so one unknown status would fail a whole MachineAction. For each
//! schema marked `x-extensible-enum: true` the xtask writes instead an enum with one variant per
//! documented value and `Other(String)` for the rest; the type's JSON Schema is a plain string,
//! which is what it really accepts.

use heck::ToUpperCamelCase;
use mde_spec::Spec;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

/// An enum schema of the spec marked `x-extensible-enum: true` (read by `mde_spec`).
pub struct ExtensibleEnum {
    pub name: String,
    description: String,
    values: Vec<String>,
}

/// The catch-all variant; no documented value may take its name.
const OTHER: &str = "Other";

impl ExtensibleEnum {
    /// Every extensible enum of `components/schemas`, in the spec's order.
    pub fn all(spec: &Spec) -> Result<Vec<ExtensibleEnum>, String> {
        let enums = spec
            .extensible_enums()
            .map_err(|e| format!("{}: {}", spec.locate(&e.pointer), e.message))?;
        enums
            .into_iter()
            .map(|e| {
                let e = ExtensibleEnum {
                    name: e.name,
                    description: e.description,
                    values: e.values,
                };
                let at = spec.locate(&format!("/components/schemas/{}", e.name));
                e.variants().map_err(|problem| format!("{at}: {problem}"))?;
                Ok(e)
            })
            .collect()
    }

    /// One Rust variant name per value; distinct, and none named like the catch-all.
    fn variants(&self) -> Result<Vec<syn::Ident>, String> {
        let mut names: Vec<String> = Vec::new();
        for value in &self.values {
            let name = value.to_upper_camel_case();
            if name == OTHER
                || names.contains(&name)
                || syn::parse_str::<syn::Ident>(&name).is_err()
            {
                return Err(format!(
                    "enum value {value:?} gives the variant name `{name}`, which is taken or invalid"
                ));
            }
            names.push(name);
        }
        Ok(names.iter().map(|n| format_ident!("{n}")).collect())
    }

    pub fn tokens(&self) -> Result<TokenStream, String> {
        let name = format_ident!("{}", self.name);
        let name_str = &self.name;
        let variants = self.variants()?;
        let values = &self.values;
        let variant_docs = values.iter().map(|v| format!("`{v}`"));
        let doc = format!(
            "{}\n\nA value this client does not know is kept, as sent, in [`{}::{OTHER}`].",
            self.description, self.name
        );
        let schema_description = format!(
            "{} Documented values: {}.",
            self.description,
            values.join(", ")
        );
        let other = format_ident!("{OTHER}");
        Ok(quote! {
            #[doc = #doc]
            #[derive(Clone, Debug, PartialEq, Eq, Hash)]
            pub enum #name {
                #( #[doc = #variant_docs] #variants, )*
                /// A value the spec does not document (yet), exactly as the service sent it.
                #other(::std::string::String),
            }

            impl #name {
                /// The values the spec documents, in its order.
                pub const DOCUMENTED: &'static [&'static str] = &[#(#values),*];

                /// The value as the service writes it.
                pub fn as_str(&self) -> &str {
                    match self {
                        #( Self::#variants => #values, )*
                        Self::#other(value) => value.as_str(),
                    }
                }
            }

            impl ::std::convert::From<&str> for #name {
                fn from(value: &str) -> Self {
                    match value {
                        #( #values => Self::#variants, )*
                        other => Self::#other(other.to_string()),
                    }
                }
            }

            impl ::std::convert::From<::std::string::String> for #name {
                fn from(value: ::std::string::String) -> Self {
                    match Self::from(value.as_str()) {
                        Self::#other(_) => Self::#other(value),
                        known => known,
                    }
                }
            }

            impl ::std::str::FromStr for #name {
                type Err = ::std::convert::Infallible;
                fn from_str(value: &str) -> ::std::result::Result<Self, Self::Err> {
                    Ok(Self::from(value))
                }
            }

            impl ::std::fmt::Display for #name {
                fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                    f.write_str(self.as_str())
                }
            }

            impl ::serde::Serialize for #name {
                fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> ::std::result::Result<S::Ok, S::Error> {
                    serializer.serialize_str(self.as_str())
                }
            }

            impl<'de> ::serde::Deserialize<'de> for #name {
                fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::std::result::Result<Self, D::Error> {
                    <::std::string::String as ::serde::Deserialize>::deserialize(deserializer).map(Self::from)
                }
            }

            #[cfg(feature = "schemars")]
            impl ::schemars::JsonSchema for #name {
                fn schema_name() -> ::std::borrow::Cow<'static, str> {
                    #name_str.into()
                }
                fn json_schema(_: &mut ::schemars::SchemaGenerator) -> ::schemars::Schema {
                    ::schemars::json_schema!({
                        "type": "string",
                        "description": #schema_description,
                        "examples": [#(#values),*],
                    })
                }
            }
        })
    }
}

//! Clouds and regions: which API host, Azure AD authority and token scope a client uses.
//! The hosts are the spec's `servers` (through the generated [`operations`]), never retyped.

use std::fmt;
use std::str::FromStr;

use crate::operations::{self, Operation, Server};

/// A Microsoft cloud.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Cloud {
    /// The commercial cloud.
    #[default]
    Commercial,
    /// US Government Community Cloud.
    Gcc,
    /// US Government Community Cloud High.
    GccHigh,
    /// US Department of Defense.
    Dod,
}

/// A geography of the commercial cloud, for better performance (`improve-request-performance`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Region {
    /// The global host.
    #[default]
    Global,
    /// United States.
    Us,
    /// Europe.
    Eu,
    /// United Kingdom.
    Uk,
    /// Australia.
    Au,
    /// Switzerland.
    Swa,
    /// India.
    Ina,
    /// United Arab Emirates.
    Aea,
}

impl Cloud {
    /// Every cloud.
    pub const ALL: [Cloud; 4] = [Cloud::Commercial, Cloud::Gcc, Cloud::GccHigh, Cloud::Dod];

    /// The spec's name for it (`x-cloud`).
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Commercial => "commercial",
            Cloud::Gcc => "gcc",
            Cloud::GccHigh => "gcc-high",
            Cloud::Dod => "dod",
        }
    }
}

impl Region {
    /// Every region.
    pub const ALL: [Region; 8] = [
        Region::Global,
        Region::Us,
        Region::Eu,
        Region::Uk,
        Region::Au,
        Region::Swa,
        Region::Ina,
        Region::Aea,
    ];

    /// The spec's name for it (`x-region`).
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Global => "global",
            Region::Us => "us",
            Region::Eu => "eu",
            Region::Uk => "uk",
            Region::Au => "au",
            Region::Swa => "swa",
            Region::Ina => "ina",
            Region::Aea => "aea",
        }
    }
}

macro_rules! named {
    ($t:ty, $what:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                <$t>::ALL
                    .into_iter()
                    .find(|v| v.as_str().eq_ignore_ascii_case(s))
                    .ok_or_else(|| {
                        let known: Vec<&str> = <$t>::ALL.iter().map(|v| v.as_str()).collect();
                        format!(
                            concat!("unknown ", $what, " {:?}; one of {}"),
                            s,
                            known.join(", ")
                        )
                    })
            }
        }
    };
}
named!(Cloud, "cloud");
named!(Region, "region");

/// Where a client's calls go and where it signs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// Base URL of the `/api/...` operations.
    pub api: String,
    /// Azure AD authority, e.g. `https://login.microsoftonline.com`.
    pub authority: String,
    /// Scope of the client-credentials token.
    pub token_scope: String,
}

fn serves(server: &Server, cloud: Cloud) -> bool {
    server.clouds.contains(&cloud.as_str())
}

fn endpoints_of(server: &Server) -> Endpoints {
    Endpoints {
        api: server.url.to_string(),
        authority: server.authority.to_string(),
        token_scope: server
            .token_scope
            .unwrap_or(operations::TOKEN_SCOPES[0])
            .to_string(),
    }
}

impl Endpoints {
    /// The first host the spec lists for this cloud and region (the current name before the
    /// older `api-xx.securitycenter` one); `Err` when the spec has none.
    pub fn of(cloud: Cloud, region: Region) -> Result<Endpoints, String> {
        operations::SERVERS
            .iter()
            .find(|s| serves(s, cloud) && s.region == region.as_str())
            .map(endpoints_of)
            .ok_or_else(|| format!("the spec documents no {region} host in the {cloud} cloud"))
    }
}

/// The host `op` goes to: a host of its own when the spec documents it on one (the preview and
/// the Graph variants), else `api`. `Err` when its own hosts do not serve `cloud`.
pub fn host_for<'a>(op: &Operation, cloud: Cloud, api: &'a str) -> Result<&'a str, String>
where
    'static: 'a,
{
    if op.servers == operations::SERVERS {
        return Ok(api);
    }
    op.servers
        .iter()
        .find(|s| serves(s, cloud))
        .map(|s| s.url)
        .ok_or_else(|| {
            format!(
                "{} is documented only on {}, which does not serve the {cloud} cloud",
                op.id,
                op.servers
                    .iter()
                    .map(|s| s.url)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// The token scope `op` needs in `cloud`: its own host's (Microsoft Graph's, for an operation
/// on Graph), else `api_scope`, the API's.
pub fn scope_for(op: &Operation, cloud: Cloud, api_scope: &str) -> String {
    let own = (op.servers != operations::SERVERS)
        .then(|| op.servers.iter().find(|s| serves(s, cloud)))
        .flatten()
        .and_then(|s| s.token_scope);
    own.unwrap_or(api_scope).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_on_graph_asks_for_a_graph_token_in_each_cloud() {
        let hunt = operations::OperationId::RunHuntingQuery.facts();
        let api = "https://api.securitycenter.microsoft.com/.default";
        for (cloud, scope) in [
            (Cloud::Commercial, "https://graph.microsoft.com/.default"),
            (Cloud::Gcc, "https://graph.microsoft.com/.default"),
            (Cloud::GccHigh, "https://graph.microsoft.us/.default"),
            (Cloud::Dod, "https://dod-graph.microsoft.us/.default"),
        ] {
            assert_eq!(scope_for(hunt, cloud, api), scope, "{cloud}");
        }
        let isolate = operations::OperationId::IsolateMachine.facts();
        assert_eq!(scope_for(isolate, Cloud::Commercial, api), api);
    }

    #[test]
    fn every_cloud_has_a_global_host_and_each_commercial_region_one() {
        for cloud in Cloud::ALL {
            let e = Endpoints::of(cloud, Region::Global).unwrap();
            assert!(e.api.starts_with("https://") && e.authority.starts_with("https://login."));
            assert!(e.token_scope.ends_with("/.default"));
        }
        for region in Region::ALL {
            assert!(Endpoints::of(Cloud::Commercial, region).is_ok(), "{region}");
        }
        assert!(Endpoints::of(Cloud::Gcc, Region::Eu).is_err());
    }

    #[test]
    fn every_spec_cloud_and_region_has_a_variant() {
        for server in operations::ALL.iter().flat_map(|op| op.servers) {
            assert!(server.region.parse::<Region>().is_ok(), "{}", server.region);
            for cloud in server.clouds {
                assert!(cloud.parse::<Cloud>().is_ok(), "{cloud}");
            }
        }
    }

    #[test]
    fn gov_clouds_sign_in_where_documented() {
        let gcc = Endpoints::of(Cloud::Gcc, Region::Global).unwrap();
        let dod = Endpoints::of(Cloud::Dod, Region::Global).unwrap();
        assert_eq!(gcc.authority, "https://login.microsoftonline.com");
        assert_eq!(dod.authority, "https://login.microsoftonline.us");
        assert_eq!(dod, Endpoints::of(Cloud::GccHigh, Region::Global).unwrap());
        assert!(dod.token_scope.starts_with(&dod.api));
    }

    #[test]
    fn operations_documented_on_one_host_go_there() {
        let api = "https://eu.api.security.microsoft.com";
        let host = |op| host_for(op, Cloud::Commercial, api).unwrap();
        assert_eq!(host(&operations::COLLECT_INVESTIGATION_PACKAGE), api);
        assert_eq!(
            host(&operations::INITIATE_INVESTIGATION),
            operations::INITIATE_INVESTIGATION.servers[0].url
        );
        assert_eq!(
            host(&operations::COLLECT_INVESTIGATION_PACKAGE_GRAPH),
            "https://graph.microsoft.com"
        );
        assert!(host_for(&operations::INITIATE_INVESTIGATION, Cloud::Gcc, api).is_err());
    }
}

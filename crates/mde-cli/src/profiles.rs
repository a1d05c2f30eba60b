//! Named connections in `mde/config.toml` of the platform's configuration folder (or the
//! file `MDE_CONFIG` names): a tenant, an app, how it signs in, where the service is. No
//! secret is ever stored there: a profile names the environment variable that holds one, a
//! certificate file, or an identity of the machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mde_client::{Cloud, Region};
use serde::{Deserialize, Serialize};

/// The variable that names a configuration file other than the platform's.
pub const CONFIG_ENV: &str = "MDE_CONFIG";

/// How a profile, or `--auth`, signs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Auth {
    /// A client secret, from the environment variable `secret_env` names.
    Secret,
    /// A client certificate (PEM or PKCS#12): the client assertion signed with its key.
    Certificate,
    /// The managed identity of the machine (App Service's `IDENTITY_ENDPOINT`, or the VM's).
    ManagedIdentity,
    /// Workload identity federation: a token file (`AZURE_FEDERATED_TOKEN_FILE`) exchanged.
    WorkloadIdentity,
    /// The Azure CLI's signed-in account (`az login`).
    AzureCli,
}

impl Auth {
    /// Its name in the file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Auth::Secret => "secret",
            Auth::Certificate => "certificate",
            Auth::ManagedIdentity => "managed-identity",
            Auth::WorkloadIdentity => "workload-identity",
            Auth::AzureCli => "azure-cli",
        }
    }
}

/// One named connection, as the file writes it.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Azure AD tenant: its id or a domain (`contoso.onmicrosoft.com`).
    pub tenant: String,
    /// Application (client) id.
    pub client_id: String,
    /// How it signs in (`secret` when not given).
    #[serde(default = "secret")]
    pub auth: Auth,
    /// With `auth = "secret"`: the environment variable that holds the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// With `auth = "certificate"`: the certificate and key file (`~` is the home folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<PathBuf>,
    /// `commercial`, `gcc`, `gcc-high` or `dod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    /// A region of the commercial cloud: `us`, `eu`, `uk`, `au`, ….
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The service's base URL instead of the cloud's (a simulator, a proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// The sign-in authority instead of the cloud's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_url: Option<String>,
    /// A CA certificate to trust besides the system's (a simulator's, a proxy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
}

fn secret() -> Auth {
    Auth::Secret
}

/// The file's shape: `[profiles.NAME]` tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// The profiles of a configuration file, by name.
#[derive(Debug, Default)]
pub struct Profiles {
    /// Where they were read from.
    pub path: PathBuf,
    /// By name.
    pub by_name: BTreeMap<String, Profile>,
}

/// The configuration file: `MDE_CONFIG`, else `mde/config.toml` in the platform's
/// configuration folder (`$XDG_CONFIG_HOME` or `~/.config` on Linux, `~/Library/Application
/// Support` on macOS, `%APPDATA%` on Windows).
pub fn path() -> Option<PathBuf> {
    match std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()) {
        Some(path) => Some(PathBuf::from(path)),
        None => dirs::config_dir().map(|dir| dir.join("mde").join("config.toml")),
    }
}

/// `~/x` as the home folder's `x`.
fn expand(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), dirs::home_dir()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_path_buf(),
    }
}

impl Profiles {
    /// Reads the configuration file; none is no profile. A file that is not TOML of this
    /// shape, a key this does not know (`secret`, which is never kept there, among them), or
    /// a profile that cannot sign in as it says, is an error naming the file and the key.
    pub fn read() -> Result<Profiles, String> {
        let Some(path) = path() else {
            return Ok(Profiles::default());
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Profiles {
                    path,
                    ..Profiles::default()
                });
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let file: File = toml::from_str(&text).map_err(|e| {
            let hint = if text.contains("secret =") || text.contains("client_secret") {
                " (no secret is kept in the file: name the variable that holds it with secret_env)"
            } else {
                ""
            };
            format!("{}: {}{hint}", path.display(), e.message())
        })?;
        let mut by_name = BTreeMap::new();
        for (name, mut profile) in file.profiles {
            profile.certificate = profile.certificate.as_deref().map(expand);
            profile.ca_cert = profile.ca_cert.as_deref().map(expand);
            profile
                .check()
                .map_err(|e| format!("{}: profile {name}: {e}", path.display()))?;
            by_name.insert(name, profile);
        }
        Ok(Profiles { path, by_name })
    }

    /// The profile `name`, or an error listing the ones there are.
    pub fn get(&self, name: &str) -> Result<&Profile, String> {
        self.by_name.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
            format!(
                "no profile {name} in {}{}",
                self.path.display(),
                if known.is_empty() {
                    String::from(" (it has none)")
                } else {
                    format!("; it has {}", known.join(", "))
                }
            )
        })
    }
}

impl Profile {
    /// What the file's values must be for the profile to sign in as it says.
    fn check(&self) -> Result<(), String> {
        if self.tenant.trim().is_empty() || self.client_id.trim().is_empty() {
            return Err("tenant and client_id must not be empty".into());
        }
        match (self.auth, &self.secret_env, &self.certificate) {
            (Auth::Secret, None, _) => {
                return Err("auth = \"secret\" needs secret_env: the environment variable that holds the secret".into());
            }
            (Auth::Certificate, _, None) => {
                return Err(
                    "auth = \"certificate\" needs certificate: the PEM or PKCS#12 file".into(),
                );
            }
            _ => {}
        }
        if let Some(cloud) = &self.cloud {
            cloud.parse::<Cloud>().map_err(|_| {
                format!(
                    "cloud {cloud:?} is none of {}",
                    Cloud::ALL.map(Cloud::as_str).join(", ")
                )
            })?;
        }
        if let Some(region) = &self.region {
            region.parse::<Region>().map_err(|_| {
                format!(
                    "region {region:?} is none of {}",
                    Region::ALL.map(Region::as_str).join(", ")
                )
            })?;
        }
        Ok(())
    }

    /// Whether the variable the secret is in is set (never its value).
    pub fn secret_is_set(&self) -> Option<bool> {
        let name = self.secret_env.as_ref()?;
        Some(std::env::var(name).is_ok_and(|v| !v.is_empty()))
    }
}

/// A certificate or key file others can read is refused, with the command that fixes it.
pub fn private_file(path: &Path) -> Result<(), String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "{} can be read by others; a key must be the owner's only: chmod 600 {}",
                path.display(),
                shlex::try_quote(&path.to_string_lossy()).unwrap_or_default()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BTreeMap<String, Profile>, String> {
        let file: File = toml::from_str(text).map_err(|e| e.message().to_string())?;
        for profile in file.profiles.values() {
            profile.check()?;
        }
        Ok(file.profiles)
    }

    #[test]
    fn the_issue_example_reads_and_secrets_are_refused() {
        let profiles = parse(
            r#"
[profiles.contoso]
tenant = "00000000-0000-0000-0000-000000000000"
client_id = "11111111-1111-1111-1111-111111111111"
auth = "certificate"
certificate = "~/.config/mde/contoso.pem"
region = "eu"

[profiles.fabrikam]
tenant = "fabrikam.onmicrosoft.com"
client_id = "22222222-2222-2222-2222-222222222222"
auth = "secret"
secret_env = "FABRIKAM_SECRET"
api_url = "http://127.0.0.1:8787"
login_url = "http://127.0.0.1:8787"
"#,
        )
        .unwrap();
        assert_eq!(profiles["contoso"].auth, Auth::Certificate);
        assert_eq!(
            profiles["fabrikam"].secret_env.as_deref(),
            Some("FABRIKAM_SECRET")
        );
        let secret =
            parse("[profiles.x]\ntenant = \"t\"\nclient_id = \"c\"\nsecret = \"hunter2\"\n");
        assert!(secret.unwrap_err().contains("unknown field `secret`"));
        let no_env = parse("[profiles.x]\ntenant = \"t\"\nclient_id = \"c\"\n");
        assert!(no_env.unwrap_err().contains("secret_env"));
        let bad_region = parse(
            "[profiles.x]\ntenant = \"t\"\nclient_id = \"c\"\nauth = \"azure-cli\"\nregion = \"mars\"\n",
        );
        assert!(bad_region.unwrap_err().contains("mars"));
        let bad_auth =
            parse("[profiles.x]\ntenant = \"t\"\nclient_id = \"c\"\nauth = \"password\"\n");
        assert!(bad_auth.is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_key_others_can_read_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("contoso key.pem");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = private_file(&key).unwrap_err();
        assert!(refused.contains("chmod 600 '"), "{refused}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(private_file(&key).is_ok());
    }
}

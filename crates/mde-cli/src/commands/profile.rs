//! `mde profile list|show`: the configuration file's profiles, never a secret (a profile
//! holds none: it names the variable a secret is in, and whether that variable is set).

use crate::cli::{Cli, ProfileCommand};
use crate::json::{Line, Lines};
use crate::profiles::{Profile, Profiles};
use crate::vocabulary::{OK, USAGE, escape, fail};

/// Runs a `mde profile` command.
pub(crate) fn run(cli: &Cli, command: &ProfileCommand) -> Result<u8, u8> {
    let profiles = Profiles::read().map_err(|e| fail(USAGE, e))?;
    let lines = Lines::of(cli.run.output);
    match command {
        ProfileCommand::List => {
            if profiles.by_name.is_empty() {
                eprintln!("mde: no profile in {}", profiles.path.display());
            } else if lines.is_none() {
                println!(
                    "{:<16}  {:<38}  {:<38}  {:<17}  {:<10}  {:<8}  API",
                    "NAME", "TENANT", "CLIENT", "AUTH", "CLOUD", "REGION"
                );
            }
            for (name, profile) in &profiles.by_name {
                print(lines.as_ref(), name, profile);
            }
            Ok(OK)
        }
        ProfileCommand::Show { name } => {
            let profile = profiles.get(name).map_err(|e| fail(USAGE, e))?;
            match &lines {
                Some(lines) => print(Some(lines), name, profile),
                None => {
                    println!("# {} [profiles.{name}]", profiles.path.display());
                    let text = toml::to_string(profile).unwrap_or_default();
                    print!("{}", escape(&text).replace("\\n", "\n"));
                    if let (Some(variable), Some(set)) =
                        (&profile.secret_env, profile.secret_is_set())
                    {
                        println!("# {variable} is {}", if set { "set" } else { "not set" });
                    }
                }
            }
            Ok(OK)
        }
    }
}

fn print(lines: Option<&Lines>, name: &str, profile: &Profile) {
    match lines {
        Some(lines) => lines.write(
            &Line::new("profile")
                .with("profile", name)
                .with("profile_settings", profile)
                .with("secret_env_set", profile.secret_is_set()),
        ),
        None => println!(
            "{:<16}  {:<38}  {:<38}  {:<17}  {:<10}  {:<8}  {}",
            escape(name),
            escape(&profile.tenant),
            escape(&profile.client_id),
            profile.auth.as_str(),
            profile.cloud.as_deref().unwrap_or("commercial"),
            profile.region.as_deref().unwrap_or("global"),
            escape(profile.api_url.as_deref().unwrap_or("-"))
        ),
    }
}

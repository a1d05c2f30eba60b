//! The tenants of a run: with several profiles (`--profile A --profile B`, or machines given
//! as `PROFILE,MACHINE`), each profile's machines are a part of the run, with its own
//! connection, sign-in and rate budget; otherwise the run is one part, of the command line's
//! connection.

use crate::cli::{Cli, Connection, Targets};
use crate::vocabulary::{AUTH, USAGE, fail, qualified};

/// One tenant's part of a run.
#[derive(Debug)]
pub(crate) struct Part {
    /// The profile, in a run of several (`None`: the run's one connection).
    pub profile: Option<String>,
    /// Where it connects and as whom.
    pub conn: Connection,
    /// Why it cannot sign in (its secret's variable unset, a key file others can read): the
    /// part stops, the others go on.
    pub problem: Option<String>,
    /// Its machine ids and names, as given (without the profile).
    pub ids: Vec<String>,
    pub names: Vec<String>,
}

impl Part {
    /// Its machines as given, ids then names: those a part stopped before sending did not
    /// send to.
    pub fn given(&self) -> Vec<String> {
        self.ids.iter().chain(&self.names).cloned().collect()
    }
}

/// The parts of a run of `ids` and `names` (each maybe `PROFILE,MACHINE`, already held to the
/// run's scope by [`crate::targets`]). The profiles the command line or the environment gives
/// are the run's scope and its parts; with none given, those the machines name, each machine
/// then naming one. With no profile at all, one part of the command line's connection. A part
/// of a profile is named (its tenant shown with each machine), even alone; a `--tag` goes to
/// each. A usage error exits 2; a run of one profile that cannot sign in exits 3.
pub(crate) fn split(
    cli: &Cli,
    targets: &Targets,
    (ids, names): (Vec<String>, Vec<String>),
) -> Result<Vec<Part>, u8> {
    let scope = &cli.connection.profile;
    // Each profile once, in the order given: the scope's, else those the machines name.
    let mut profiles: Vec<String> = scope.clone();
    if scope.is_empty() {
        for profile in ids.iter().chain(&names).filter_map(|i| qualified(i).0) {
            if !profiles.iter().any(|p| p == profile) {
                profiles.push(profile.to_string());
            }
        }
    }
    if profiles.len() > 1 && cli.connection.simulate {
        return Err(fail(
            USAGE,
            "--simulate embeds one tenant: for a run of several profiles, start mde-sim with a --tenant for each and point each profile's api_url and login_url at it",
        ));
    }
    let strip = |items: &[String], profile: Option<&str>| -> Vec<String> {
        items
            .iter()
            .filter(|i| profile.is_none() || qualified(i).0.is_none_or(|p| Some(p) == profile))
            .map(|i| qualified(i).1.to_string())
            .collect()
    };
    let bare: Vec<&String> = ids
        .iter()
        .chain(&names)
        .filter(|i| qualified(i).0.is_none())
        .collect();
    // A bare machine is the scope's when it has one profile; otherwise nobody chose its tenant.
    if !bare.is_empty() && (profiles.len() > 1 || (scope.is_empty() && !profiles.is_empty())) {
        let shown: Vec<String> = bare
            .iter()
            .take(5)
            .map(|m| crate::vocabulary::escape(m))
            .collect();
        return Err(fail(
            USAGE,
            format!(
                "a run of the profiles {} needs each machine's profile: write PROFILE,MACHINE (or PROFILE,NAME); {} machine(s) have none: {}",
                profiles.join(", "),
                bare.len(),
                shown.join(", ")
            ),
        ));
    }
    if profiles.is_empty() || (profiles.len() == 1 && cli.connection.simulate) {
        return Ok(vec![Part {
            profile: None,
            conn: cli.connection.clone(),
            problem: None,
            ids: strip(&ids, None),
            names: strip(&names, None),
        }]);
    }
    let one = profiles.len() == 1;
    let mut parts = Vec::new();
    for profile in profiles {
        let (ids, names) = (strip(&ids, Some(&profile)), strip(&names, Some(&profile)));
        let selectors = targets.tag.is_some() || targets.from_hunt.is_some();
        if ids.is_empty() && names.is_empty() && !selectors {
            eprintln!("warning: profile {profile} has no machine in this run; left out");
            continue;
        }
        // The one profile of the command line was applied when it was read.
        let (conn, problem) = match &scope[..] {
            [one] if *one == profile => (cli.connection.clone(), None),
            _ => cli.connection_of(&profile).map_err(|e| fail(USAGE, e))?,
        };
        if let (Some(problem), true) = (&problem, one) {
            return Err(fail(AUTH, problem));
        }
        parts.push(Part {
            profile: Some(profile),
            conn,
            problem,
            ids,
            names,
        });
    }
    if parts.is_empty() {
        return Err(fail(USAGE, "no profile of this run has a machine in it"));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machine_names_its_profile_before_a_comma() {
        assert_eq!(qualified("contoso,ws-0001"), (Some("contoso"), "ws-0001"));
        assert_eq!(qualified("ws-0001"), (None, "ws-0001"));
    }
}

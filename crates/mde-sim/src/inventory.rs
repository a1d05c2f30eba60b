//! The machines of the simulated tenant: each with a fully qualified name, when it was seen,
//! its health and platform, all derived from its id and the seed, so every run agrees.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use mde_client::{Timestamp, types};

use crate::package::dice;

/// The domain of generated names, the one of the documents' examples (get-machines.md).
pub const DOMAIN: &str = "contoso.com";

/// One machine.
#[derive(Clone, Debug)]
pub struct MachineRecord {
    /// Its id.
    pub id: String,
    /// Its fully qualified name.
    pub name: String,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    health: types::HealthStatus,
    os: &'static str,
    /// Its tags, as setMachineTag left them.
    pub tags: Vec<String>,
}

/// The generated fully qualified name of a machine known by its id.
pub fn machine_name(id: &str) -> String {
    let short: String = id.chars().take(10).collect::<String>().to_ascii_lowercase();
    format!("desktop-{short}.{DOMAIN}")
}

/// The fully qualified name of a machine given by name: as given when it has a domain, in
/// [`DOMAIN`] when it is a short name.
pub fn qualified(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    if name.contains('.') {
        name
    } else {
        format!("{name}.{DOMAIN}")
    }
}

/// The id of the `nth` machine named `name` (0 for the first; re-imaged devices share a name):
/// 40 lowercase hex characters, the same on every run.
pub fn named_machine_id(name: &str, nth: usize) -> String {
    let text = format!("{}#{nth}", qualified(name));
    // The FNV hash of the name seeds the generator of ids.
    crate::config::generated_machine_id(crate::package::fnv1a(0, text.bytes()) as usize)
}

impl MachineRecord {
    /// A machine seen as the dice of `seed` say: mostly active, seen within the last day, on
    /// Windows but for the shares of `platforms`.
    pub fn new(
        id: String,
        name: String,
        seed: u64,
        platforms: &Platforms,
        now: DateTime<Utc>,
    ) -> MachineRecord {
        let roll = |what: &str| dice(seed, &[&id, what]);
        let hours = |h: f64| chrono::Duration::seconds((h * 3600.0) as i64);
        let last_seen = now - hours(roll("lastSeen") * 24.0);
        let first_seen = last_seen - hours(24.0 * (30.0 + roll("firstSeen") * 700.0));
        let health = match roll("health") {
            r if r < 0.90 => types::HealthStatus::Active,
            r if r < 0.94 => types::HealthStatus::Inactive,
            r if r < 0.97 => types::HealthStatus::ImpairedCommunication,
            _ => types::HealthStatus::NoSensorData,
        };
        let os = platforms
            .roll(roll("platform"))
            .unwrap_or(match roll("os") {
                r if r < 0.60 => "Windows11",
                r if r < 0.95 => "Windows10",
                _ => "WindowsServer2022",
            });
        MachineRecord {
            id,
            name,
            first_seen,
            last_seen,
            health,
            os,
            tags: Vec::new(),
        }
    }

    /// An older record of a re-imaged device: inactive, last seen `days` before `newer`.
    fn superseded(id: String, newer: &MachineRecord, days: i64) -> MachineRecord {
        MachineRecord {
            id,
            name: newer.name.clone(),
            first_seen: newer.first_seen - chrono::Duration::days(days + 200),
            last_seen: newer.last_seen - chrono::Duration::days(days),
            health: types::HealthStatus::Inactive,
            os: newer.os,
            tags: Vec::new(),
        }
    }

    /// Its `osPlatform`.
    pub fn os(&self) -> &'static str {
        self.os
    }

    /// Offboarded: its sensor stopped, so it reports no more and is `Inactive`.
    pub fn offboard(&mut self) {
        self.health = types::HealthStatus::Inactive;
    }

    /// The Machine entity (get-machines.md).
    pub fn entity(&self) -> types::Machine {
        types::Machine {
            id: Some(self.id.clone()),
            computer_dns_name: Some(self.name.clone()),
            first_seen: Some(Timestamp::from(self.first_seen)),
            last_seen: Some(Timestamp::from(self.last_seen)),
            os_platform: Some(self.os.into()),
            health_status: Some(self.health.clone()),
            onboarding_status: Some("onboarded".into()),
            os_processor: Some("x64".into()),
            os_architecture: Some("64-bit".into()),
            is_aad_joined: Some(false),
            machine_tags: Some(self.tags.clone()),
            ..Default::default()
        }
    }
}

impl crate::odata::Filterable for &MachineRecord {
    // The properties get-machines.md names and the simulator has.
    fn kind(name: &str) -> Option<crate::odata::Kind> {
        use crate::odata::Kind;
        match name.to_ascii_lowercase().as_str() {
            "computerdnsname" | "id" | "healthstatus" | "osplatform" => Some(Kind::Text),
            "lastseen" => Some(Kind::Time),
            _ => None,
        }
    }

    fn field(&self, name: &str) -> Option<crate::odata::Field> {
        use crate::odata::Field;
        let text = |t: &str| Some(Field::Text(t.to_string()));
        match name.to_ascii_lowercase().as_str() {
            "computerdnsname" => text(&self.name),
            "id" => text(&self.id),
            "healthstatus" => text(self.health.as_str()),
            "osplatform" => text(self.os),
            "lastseen" => Some(Field::Time(self.last_seen)),
            _ => None,
        }
    }
}

/// The shares of the inventory on platforms other than Windows, e.g. `macOS:0.1,Linux:0.1`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Platforms(Vec<(&'static str, f64)>);

impl Platforms {
    /// The platform a roll of the dice (0 to 1) falls on, if not Windows.
    fn roll(&self, roll: f64) -> Option<&'static str> {
        let mut upto = 0.0;
        self.0.iter().find_map(|&(os, share)| {
            upto += share;
            (roll < upto).then_some(os)
        })
    }
}

impl std::str::FromStr for Platforms {
    type Err = String;
    fn from_str(text: &str) -> Result<Platforms, String> {
        // The `osPlatform` values get-machines.md shows, in any case.
        let names = [("macOS", "macOS"), ("Linux", "Linux")];
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        let shares = crate::package::shares(text, ("platform", "macOS:0.1"), &names, same)?;
        if shares.iter().map(|(_, s)| s).sum::<f64>() > 1.0 {
            return Err("the shares add up to more than 1".into());
        }
        Ok(Platforms(shares))
    }
}

/// The machines, in the order they were added (the order listMachines answers them in).
#[derive(Debug, Default)]
pub struct Inventory {
    machines: Vec<MachineRecord>,
    by_id: HashMap<String, usize>,
}

impl Inventory {
    /// Adds a machine; an id already there is kept as it is.
    pub fn add(&mut self, machine: MachineRecord) {
        if !self.by_id.contains_key(&machine.id) {
            self.by_id.insert(machine.id.clone(), self.machines.len());
            self.machines.push(machine);
        }
    }

    /// The machine with this id.
    pub fn get(&self, id: &str) -> Option<&MachineRecord> {
        self.by_id.get(id).map(|&i| &self.machines[i])
    }

    /// The machine with this id, to change.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut MachineRecord> {
        self.by_id.get(id).map(|&i| &mut self.machines[i])
    }

    /// Every machine.
    pub fn all(&self) -> &[MachineRecord] {
        &self.machines
    }

    /// Gives the names of the first `n` machines to a second, older machine each (a device
    /// re-imaged, or onboarded again), as callers have seen (#12717).
    pub fn duplicate_names(&mut self, n: usize) {
        let originals: Vec<MachineRecord> = self.machines.iter().take(n).cloned().collect();
        for (i, newer) in originals.iter().enumerate() {
            let id = named_machine_id(&newer.name, 1);
            self.add(MachineRecord::superseded(id, newer, 20 + i as i64 % 60));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_of_platforms_and_faults_are_read_or_refused() {
        use crate::package::{Fault, Faults};
        let platforms: Platforms = "MACOS:0.1, linux:0.2".parse().unwrap();
        assert_eq!(platforms, Platforms(vec![("macOS", 0.1), ("Linux", 0.2)]));
        let faults: Faults = "drop:0.2,slow:0.1".parse().unwrap();
        assert_eq!(faults, Faults(vec![(Fault::Drop, 0.2), (Fault::Slow, 0.1)]));
        let refused = |text: &str, platform: bool| {
            if platform {
                text.parse::<Platforms>().unwrap_err()
            } else {
                text.parse::<Faults>().unwrap_err()
            }
        };
        assert_eq!(
            refused("bsd:0.1", true),
            "unknown platform \"bsd\": macOS or Linux"
        );
        assert_eq!(
            refused("DROP:0.1", false),
            "unknown fault \"DROP\": drop, slow or corrupt"
        );
        assert!(refused("drop", false).contains("write FAULT:SHARE, e.g. drop:0.2"));
        assert!(refused("macOS:2", true).contains("the share is a number from 0 to 1"));
        assert_eq!(
            refused("macOS:0.7,Linux:0.7", true),
            "the shares add up to more than 1"
        );
    }

    #[test]
    fn names_and_ids_are_stable_and_distinct() {
        assert_eq!(qualified("WS-0001"), "ws-0001.contoso.com");
        assert_eq!(qualified("ws-1.fabrikam.com"), "ws-1.fabrikam.com");
        assert_eq!(
            named_machine_id("ws-0001", 0),
            named_machine_id("WS-0001", 0)
        );
        assert_ne!(
            named_machine_id("ws-0001", 0),
            named_machine_id("ws-0001", 1)
        );
        assert_eq!(named_machine_id("ws-0001", 0).len(), 40);
        assert_eq!(
            machine_name("1e5bc9d7e413ddd7902c2932e418702b84d0cc07"),
            "desktop-1e5bc9d7e4.contoso.com"
        );
    }

    #[test]
    fn a_duplicated_name_has_an_older_inactive_second_machine() {
        let now = Utc::now();
        let mut inventory = Inventory::default();
        for name in ["a", "b", "c"] {
            let id = named_machine_id(name, 0);
            inventory.add(MachineRecord::new(
                id,
                qualified(name),
                1,
                &Platforms::default(),
                now,
            ));
        }
        inventory.duplicate_names(2);
        let named = |n: &str| {
            inventory
                .all()
                .iter()
                .filter(|m| m.name == qualified(n))
                .collect::<Vec<_>>()
        };
        assert_eq!(named("a").len(), 2);
        assert_eq!(named("b").len(), 2);
        assert_eq!(named("c").len(), 1);
        let a = named("a");
        assert!(a[1].last_seen < a[0].last_seen);
        assert_eq!(a[1].health, types::HealthStatus::Inactive);
    }
}

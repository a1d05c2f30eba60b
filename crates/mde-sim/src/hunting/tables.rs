//! The hunting tables, made up from the inventory: the same rows for the same seed, machine and
//! day, whenever they are read. A row is at a fixed UTC time (a calendar day and an offset in
//! it), so that two queries of adjacent windows see each row once; a row later than the
//! simulator's now is not there yet.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

use crate::inventory::MachineRecord;
use crate::package::{fnv1a, splitmix};

/// A column's type, as the service names it in an answer's schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // each the service's type of that name
pub enum Kind {
    DateTime,
    String,
    Int32,
    Int64,
    Double,
    Boolean,
    Dynamic,
}

impl Kind {
    /// The name an answer's schema gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DateTime => "DateTime",
            Kind::String => "String",
            Kind::Int32 => "Int32",
            Kind::Int64 => "Int64",
            Kind::Double => "Double",
            Kind::Boolean => "Boolean",
            Kind::Dynamic => "Dynamic",
        }
    }
}

/// One value of a row.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)] // each a value of its `Kind`
pub enum Cell {
    Text(Arc<str>),
    Int(i64),
    Real(f64),
    Bool(bool),
    Time(DateTime<Utc>),
    Json(Arc<serde_json::Value>),
}

/// The days of data a table holds, back from now (security-api-overview.md: "the past 30 days").
pub const DAYS: i64 = 30;

/// The tables and their columns, named as the service names them.
pub const TABLES: [(&str, &[(&str, Kind)]); 6] = [
    (
        "DeviceInfo",
        &[
            ("Timestamp", Kind::DateTime),
            ("DeviceId", Kind::String),
            ("DeviceName", Kind::String),
            ("OSPlatform", Kind::String),
            ("PublicIP", Kind::String),
        ],
    ),
    (
        "DeviceNetworkInfo",
        &[
            ("Timestamp", Kind::DateTime),
            ("DeviceId", Kind::String),
            ("DeviceName", Kind::String),
            ("MacAddress", Kind::String),
            ("IPAddresses", Kind::Dynamic),
        ],
    ),
    (
        "DeviceFileEvents",
        &[
            ("Timestamp", Kind::DateTime),
            ("DeviceId", Kind::String),
            ("DeviceName", Kind::String),
            ("ActionType", Kind::String),
            ("FileName", Kind::String),
            ("FolderPath", Kind::String),
            ("SHA1", Kind::String),
            ("SHA256", Kind::String),
            ("InitiatingProcessFileName", Kind::String),
        ],
    ),
    (
        "DeviceProcessEvents",
        &[
            ("Timestamp", Kind::DateTime),
            ("DeviceId", Kind::String),
            ("DeviceName", Kind::String),
            ("ActionType", Kind::String),
            ("FileName", Kind::String),
            ("FolderPath", Kind::String),
            ("SHA1", Kind::String),
            ("SHA256", Kind::String),
            ("ProcessCommandLine", Kind::String),
            ("AccountName", Kind::String),
            ("InitiatingProcessFileName", Kind::String),
        ],
    ),
    (
        "DeviceNetworkEvents",
        &[
            ("Timestamp", Kind::DateTime),
            ("DeviceId", Kind::String),
            ("DeviceName", Kind::String),
            ("ActionType", Kind::String),
            ("RemoteIP", Kind::String),
            ("RemotePort", Kind::Int32),
            ("RemoteUrl", Kind::String),
            ("InitiatingProcessFileName", Kind::String),
        ],
    ),
    (
        "DeviceLogonEvents",
        &[
            ("Timestamp", Kind::DateTime),
            ("DeviceId", Kind::String),
            ("DeviceName", Kind::String),
            ("ActionType", Kind::String),
            ("AccountDomain", Kind::String),
            ("AccountName", Kind::String),
            ("LogonType", Kind::String),
            ("RemoteIP", Kind::String),
        ],
    ),
];

/// The file that the hunts of the guide look for: a rare download, the SHA-1 of
/// stop-and-quarantine-file.md's example.
pub const PAYLOAD: (&str, &str) = (
    "invoice.pdf.exe",
    "87662bc3d60e4200ceaf7aae249d1c343f4b83c9",
);

const FILES: [&str; 10] = [
    "cmd.exe",
    "powershell.exe",
    "conhost.exe",
    "explorer.exe",
    "notepad.exe",
    "csc.exe",
    "svchost.exe",
    "msedge.exe",
    "rundll32.exe",
    "OfficeClickToRun.exe",
];
const ACCOUNTS: [&str; 5] = ["alice", "bob", "carol", "dave", "svc-backup"];
const REMOTE: [(&str, &str); 5] = [
    ("20.190.128.5", "login.microsoftonline.com"),
    ("52.113.194.132", "teams.microsoft.com"),
    ("10.0.0.20", "fileserver.contoso.com"),
    ("13.107.42.14", "update.contoso.com"),
    ("185.220.101.4", "cdn-update.example"),
];
const PORTS: [i64; 5] = [443, 80, 445, 3389, 8080];

/// Where the rows come from: the machines, the seed, and how many events each machine has a
/// day in each event table.
pub struct Source<'a> {
    /// The machines whose rows the tables hold.
    pub machines: &'a [MachineRecord],
    /// The dice: the same seed, the same rows.
    pub seed: u64,
    /// Rows each machine has a day in each event table (`DeviceInfo` and
    /// `DeviceNetworkInfo` have one).
    pub events_a_day: u32,
}

fn hash_of(text: &str) -> u64 {
    fnv1a(0, text.bytes())
}

/// The SHA-1 and SHA-256 standing for each file's, the payload's its documented SHA-1: made
/// once, shared by every row.
fn hashes_of(file: &str) -> (Arc<str>, Arc<str>) {
    type Hashes = Vec<(&'static str, Arc<str>, Arc<str>)>;
    static HASHES: std::sync::OnceLock<Hashes> = std::sync::OnceLock::new();
    let all = HASHES.get_or_init(|| {
        (FILES.iter().chain([&PAYLOAD.0]))
            .map(|&f| {
                let sha1 = if f == PAYLOAD.0 {
                    PAYLOAD.1.to_string()
                } else {
                    digest(f, 40)
                };
                (f, sha1.into(), digest(f, 64).into())
            })
            .collect()
    });
    let (_, sha1, sha256) = all.iter().find(|(f, _, _)| *f == file).unwrap_or(&all[0]);
    (sha1.clone(), sha256.clone())
}

/// A hex digest of `len` characters standing for a file's hash.
fn digest(name: &str, len: usize) -> String {
    let mut out = String::new();
    let mut h = hash_of(name);
    while out.len() < len {
        h = splitmix(h);
        out.push_str(&format!("{h:016x}"));
    }
    out.truncate(len);
    out
}

impl Source<'_> {
    /// Every row of `table` with a time in `[from, to)`, machine by machine, day by day; the
    /// table's rows are at most 30 days old.
    pub fn rows<'s>(
        &'s self,
        table: &'static str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Iterator<Item = Vec<Cell>> + 's {
        let per_day = match table {
            "DeviceInfo" | "DeviceNetworkInfo" => 1,
            _ => self.events_a_day,
        };
        let first = from.timestamp().div_euclid(86_400);
        let last = to.timestamp().div_euclid(86_400);
        let table_hash = hash_of(table);
        self.machines.iter().flat_map(move |machine| {
            let id: Arc<str> = machine.id.as_str().into();
            let name: Arc<str> = machine.name.to_lowercase().into();
            let machine_hash = hash_of(&machine.id);
            (first..=last).flat_map(move |day| {
                let (id, name) = (id.clone(), name.clone());
                (0..per_day).filter_map(move |n| {
                    let h = splitmix(
                        self.seed
                            ^ table_hash
                            ^ splitmix(machine_hash ^ splitmix(day as u64 ^ (u64::from(n) << 40))),
                    );
                    let ticks = (h % 864_000_000_000) as i64;
                    let at = Utc.timestamp_opt(day * 86_400, 0).single()?
                        + Duration::microseconds(ticks / 10)
                        + Duration::nanoseconds((ticks % 10) * 100);
                    (at >= from && at < to).then(|| row(table, (&id, &name, machine), at, h))
                })
            })
        })
    }
}

/// One row of `table` for a machine at `at`, its values picked by `h`.
fn row(
    table: &str,
    (id, name, machine): (&Arc<str>, &Arc<str>, &MachineRecord),
    at: DateTime<Utc>,
    h: u64,
) -> Vec<Cell> {
    let text = |s: &str| Cell::Text(s.into());
    let pick = |n: usize, shift: u32| ((h >> shift) % n as u64) as usize;
    let mut cells = vec![
        Cell::Time(at),
        Cell::Text(id.clone()),
        Cell::Text(name.clone()),
    ];
    let m = hash_of(&machine.id);
    let (file, parent) = match h % 997 {
        0 => (PAYLOAD.0, "msedge.exe"),
        _ => (FILES[pick(FILES.len(), 8)], FILES[pick(FILES.len(), 16)]),
    };
    let (sha1, sha256) = hashes_of(file);
    let account = ACCOUNTS[pick(ACCOUNTS.len(), 24)];
    let folder = match file == PAYLOAD.0 {
        true => format!(r"C:\Users\{account}\Downloads"),
        false => r"C:\Windows\System32".to_string(),
    };
    let (ip, url) = REMOTE[pick(REMOTE.len(), 32)];
    match table {
        "DeviceInfo" => cells.extend([text(machine.os()), text(&format!("203.0.113.{}", m % 250 + 1))]),
        "DeviceNetworkInfo" => cells.extend([
            text(&format!("00-15-5D-{:02X}-{:02X}-{:02X}", m & 0xff, (m >> 8) & 0xff, (m >> 16) & 0xff)),
            Cell::Json(Arc::new(json!([{"IPAddress": format!("10.1.{}.{}", (m >> 8) % 250, m % 250 + 1), "SubnetPrefix": 24, "AddressType": "Private"}]))),
        ]),
        "DeviceFileEvents" => cells.extend([
            text(["FileCreated", "FileModified", "FileDeleted"][pick(3, 40)]),
            text(file), text(&folder), Cell::Text(sha1), Cell::Text(sha256), text(parent),
        ]),
        "DeviceProcessEvents" => {
            let command = match file {
                "powershell.exe" if h.is_multiple_of(3) => format!(r"powershell.exe -ExecutionPolicy Bypass -File C:\Users\{account}\AppData\Local\Temp\update.ps1"),
                _ => file.to_string(),
            };
            cells.extend([
                text("ProcessCreated"), text(file), text(&folder), text(&sha1),
                Cell::Text(sha256), text(&command), text(account), text(parent),
            ])
        }
        "DeviceNetworkEvents" => cells.extend([
            text(["ConnectionSuccess", "ConnectionFailed"][pick(2, 40)]), text(ip),
            Cell::Int(PORTS[pick(PORTS.len(), 44)]), text(url), text(parent),
        ]),
        _ => cells.extend([
            text(["LogonSuccess", "LogonFailed"][pick(2, 40)]), text("contoso"), text(account),
            text(["Interactive", "Network", "RemoteInteractive"][pick(3, 44)]), text(ip),
        ]),
    }
    cells
}

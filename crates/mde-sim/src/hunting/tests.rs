use std::collections::HashSet;

use chrono::TimeZone;

use super::*;
use crate::inventory::{MachineRecord, Platforms};

fn machines(n: usize, now: DateTime<Utc>) -> Vec<MachineRecord> {
    (0..n)
        .map(|i| {
            let id = crate::config::generated_machine_id(i);
            let name = format!("ws-{i:04}.contoso.com");
            MachineRecord::new(id, name, 7, &Platforms::default(), now)
        })
        .collect()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap()
}

fn run(query: &str, source: &Source) -> Result<Answer, QueryError> {
    hunt(query, source, window(None, now()).unwrap(), now())
}

fn text(cell: &Cell) -> String {
    match cell {
        Cell::Text(t) => t.to_string(),
        other => format!("{other:?}"),
    }
}

#[test]
fn a_query_answers_what_a_direct_count_of_the_table_finds() {
    let machines = machines(5, now());
    let source = Source {
        machines: &machines,
        seed: 1,
        events_a_day: 20,
    };
    let query = "DeviceProcessEvents | where FileName =~ 'CMD.EXE' and Timestamp > ago(3d) | summarize count() by DeviceId";
    let answer = run(query, &source).unwrap();
    let since = now() - Duration::days(3);
    let mut direct = std::collections::HashMap::<String, i64>::new();
    for row in source.rows("DeviceProcessEvents", now() - Duration::days(DAYS), now()) {
        if text(&row[4]) == "cmd.exe" && matches!(row[0], Cell::Time(t) if t > since) {
            *direct.entry(text(&row[1])).or_default() += 1;
        }
    }
    let counted: std::collections::HashMap<String, i64> = (answer.rows.iter())
        .map(|r| (text(&r[0]), if let Cell::Int(n) = r[1] { n } else { -1 }))
        .collect();
    assert!(!direct.is_empty());
    assert_eq!(counted, direct);
    assert_eq!(answer.columns[1], ("count_".to_string(), Kind::Int64));
    let read = source.rows("DeviceProcessEvents", now() - Duration::days(DAYS), now());
    assert_eq!(
        answer.scanned,
        read.count() as u64,
        "every row of the window read once"
    );
}

#[test]
fn the_documented_query_answers_in_both_shapes() {
    let machines = machines(3, now());
    let source = Source {
        machines: &machines,
        seed: 1,
        events_a_day: 50,
    };
    let query = r#"DeviceProcessEvents | where InitiatingProcessFileName =~ "powershell.exe" | project Timestamp, FileName, InitiatingProcessFileName | order by Timestamp desc | limit 2"#;
    let answer = run(query, &source).unwrap();
    assert_eq!(answer.rows.len(), 2);
    assert!(
        matches!((&answer.rows[0][0], &answer.rows[1][0]), (Cell::Time(a), Cell::Time(b)) if a >= b)
    );
    let graph = answer.json(
        true,
        "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.security.huntingQueryResults",
    );
    assert_eq!(
        graph["schema"][0],
        json!({"name": "Timestamp", "type": "DateTime"})
    );
    assert_eq!(
        graph["results"][0]["InitiatingProcessFileName"],
        "powershell.exe"
    );
    let time = graph["results"][0]["Timestamp"].as_str().unwrap();
    assert_eq!(
        (time.len(), &time[19..20], &time[27..]),
        (28, ".", "Z"),
        "{time}"
    );
    let defender = answer.json(false, "");
    assert_eq!(
        defender["Schema"][2],
        json!({"Name": "InitiatingProcessFileName", "Type": "String"})
    );
    assert_eq!(defender["Results"], graph["results"]);
}

#[test]
fn adjacent_windows_hold_each_row_once() {
    let machines = machines(4, now());
    let source = Source {
        machines: &machines,
        seed: 3,
        events_a_day: 30,
    };
    let rows = |from, to| -> Vec<String> {
        let answer = hunt("DeviceNetworkEvents", &source, (from, to), now()).unwrap();
        answer.rows.iter().map(|r| format!("{r:?}")).collect()
    };
    let (from, to) = window(Some("P10D"), now()).unwrap();
    let middle = from + (to - from) / 2;
    let whole = rows(from, to);
    let mut halves = rows(from, middle);
    halves.extend(rows(middle, to));
    assert!(whole.len() > 1000);
    assert_eq!(halves.len(), whole.len());
    assert_eq!(
        halves.iter().collect::<HashSet<_>>(),
        whole.iter().collect::<HashSet<_>>()
    );
    assert_eq!(
        whole.iter().collect::<HashSet<_>>().len(),
        whole.len(),
        "no row twice"
    );
}

#[test]
fn an_answer_stops_at_the_row_cap_and_says_so() {
    let machines = machines(40, now());
    let source = Source {
        machines: &machines,
        seed: 1,
        events_a_day: 100,
    };
    let answer = run("DeviceFileEvents", &source).unwrap();
    assert_eq!((answer.rows.len(), answer.truncated), (ROW_CAP, true));
    let counted = run("DeviceFileEvents | summarize count()", &source).unwrap();
    let Cell::Int(all) = counted.rows[0][0] else {
        panic!()
    };
    assert!(all > ROW_CAP as i64, "{all}");
    let small = run("DeviceFileEvents | take 10", &source).unwrap();
    assert_eq!((small.rows.len(), small.truncated), (10, false));
}

#[test]
fn each_operator_of_the_subset_does_what_kql_does() {
    let machines = machines(3, now());
    let source = Source {
        machines: &machines,
        seed: 5,
        events_a_day: 200,
    };
    let count = |query: &str| run(query, &source).unwrap().rows.len();
    let files = count("DeviceFileEvents | distinct FileName");
    assert!((2..=11).contains(&files), "{files}");
    assert_eq!(count("DeviceInfo | distinct DeviceId"), 3);
    let top = run("DeviceNetworkEvents | top 3 by RemotePort asc", &source).unwrap();
    assert!(
        top.rows.iter().all(|r| r[5] == Cell::Int(80)),
        "{:?}",
        top.rows
    );
    let some = count("DeviceNetworkEvents | where RemotePort in (443, 445)");
    let none = count("DeviceNetworkEvents | where not(RemotePort in (443, 445))");
    assert_eq!(some + none, count("DeviceNetworkEvents"));
    assert_eq!(
        count("DeviceNetworkEvents | where RemotePort between (443 .. 445)"),
        count("DeviceNetworkEvents | where RemotePort == 443 or RemotePort == 445")
    );
    assert!(count("DeviceProcessEvents | where ProcessCommandLine has 'bypass'") > 0);
    assert_eq!(
        count("DeviceProcessEvents | where ProcessCommandLine has 'bypas'"),
        0
    );
    assert_eq!(
        count("DeviceProcessEvents | where FileName startswith 'power'"),
        count("DeviceProcessEvents | where FileName == 'powershell.exe'")
    );
    let payload = format!(
        "DeviceFileEvents | where SHA1 == '{}' | distinct DeviceId",
        PAYLOAD.1
    );
    assert!(count(&payload) >= 1, "the payload is on some machine");
    let recent = count("DeviceLogonEvents | where Timestamp >= datetime(2026-12-06)");
    assert!(recent > 0 && recent < count("DeviceLogonEvents"));
}

#[test]
fn what_cannot_run_is_the_query_400() {
    let machines = machines(1, now());
    let source = Source {
        machines: &machines,
        seed: 1,
        events_a_day: 1,
    };
    for (query, says) in [
        ("", "must not be empty"),
        (
            "DeviceEvilEvents",
            "Failed to resolve table or column expression named 'DeviceEvilEvents'",
        ),
        (
            "DeviceInfo | project Nope",
            "Failed to resolve scalar expression named 'Nope'",
        ),
        (
            "DeviceInfo | where Timestamp > 'yesterday'",
            "Cannot compare values of types datetime and string",
        ),
        (
            "DeviceInfo | join (DeviceNetworkInfo) on DeviceId",
            "expected where",
        ),
        (
            "DeviceInfo | where Timestamp > datetime('soon')",
            "is not a date",
        ),
    ] {
        let error = run(query, &source).unwrap_err();
        assert!(error.0.contains(says), "{query}: {}", error.0);
    }
}

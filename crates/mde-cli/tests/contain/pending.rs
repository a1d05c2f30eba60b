//! Containment and remediation: pending.

use super::*;

/// An isolation still pending is its own state, `isolating`, listed with `--isolated`; `machine
/// show` takes names as every command does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_pending_isolation_is_listed_as_isolating_and_show_takes_names() {
    let dir = scratch("machine-pending");
    let sim = Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        time_scale: 60.0,
        // No device picks it up while the test runs.
        response_time: std::time::Duration::from_secs(3600),
        names: vec!["ws-0001".into(), "ws-0002".into()],
        ..Config::default()
    })
    .await
    .unwrap();
    let mde = |args: &[&str]| {
        let mut command = against(dir.path(), &sim);
        command.args(args);
        run_off(command)
    };
    let pending = mde(&["isolate", "--machine-name", "ws-0002", "--comment", "c"]).await;
    assert_eq!(pending.code, 0, "{}", pending.stderr);
    let listed = lines(
        &mde(&["-o", "json", "machine", "list", "--isolated"])
            .await
            .stdout,
    );
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["name"], "ws-0002.contoso.com");
    assert_eq!(listed[0]["isolated"], Value::Null);
    assert_eq!(
        listed[0]["isolation_pending"]["state"], "isolating",
        "{listed:?}"
    );
    let shown = mde(&["machine", "show", "--machine-name", "ws-0002"]).await;
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(shown.stdout.contains("isolating ("), "{}", shown.stdout);
    let unknown = mde(&["machine", "show", "--machine-name", "ws-9999"]).await;
    assert_eq!(unknown.code, 1, "{}", unknown.stdout);
    assert!(
        unknown.stdout.contains("no machine is named ws-9999"),
        "{}",
        unknown.stdout
    );
    sim.stop().await;
}

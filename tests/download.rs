//! Package downloads against the simulator's download host, over real sockets and real files:
//! a verified archive, resumption with `Range` after cuts, a new link after one expired, and
//! the failures that must leave nothing that looks complete.

use std::time::Duration;

use mde_client::{Client, Error, PackageLink};
use mde_sim::{Config, Simulator, generated_machine_id};
use sha2::{Digest, Sha256};

async fn simulator(config: Config) -> Simulator {
    Simulator::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        package_size: 300_000,
        ..config
    })
    .await
    .unwrap()
}

/// Collections of `n` machines, completed; their action ids.
async fn completed(sim: &Simulator, client: &Client, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let action = client
            .collect_investigation_package(&generated_machine_id(i), "evidence")
            .await
            .unwrap();
        ids.push(action.id.unwrap());
    }
    sim.clock().advance(Config::default().collection_time);
    ids
}

fn sha256(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_is_saved_verified_and_private() {
    let sim = simulator(Config::default().with_generated_machines(1)).await;
    let client = sim.client_builder().build().unwrap();
    let ids = completed(&sim, &client, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("package.zip");
    let saved = client.download_package(&ids[0], None, &dest).await.unwrap();
    assert_eq!(saved.path, dest);
    assert_eq!(saved.size, std::fs::metadata(&dest).unwrap().len());
    assert_eq!(saved.sha256, sha256(&dest));
    assert_eq!((saved.resumed, saved.new_links), (0, 0));
    assert!(!dir.path().join("package.zip.part").exists());
    let archive = zip::ZipArchive::new(std::fs::File::open(&dest).unwrap()).unwrap();
    assert!(archive.len() >= 2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // Never overwritten.
    let again = client.download_package(&ids[0], None, &dest).await;
    assert!(matches!(again, Err(Error::InvalidInput(_))), "{again:?}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_transfers_resume_with_range_and_end_whole() {
    let config = Config {
        download_faults: "drop:0.5".parse().unwrap(),
        seed: 3,
        ..Config::default().with_generated_machines(6)
    };
    let sim = simulator(config).await;
    let client = sim.client_builder().build().unwrap();
    let ids = completed(&sim, &client, 6).await;
    let dir = tempfile::tempdir().unwrap();
    let mut resumed = 0;
    for (i, id) in ids.iter().enumerate() {
        if i >= 2 {
            // getPackageUri allows 2 a minute: the client waits; the simulated clock is fast.
            sim.clock().advance(Duration::from_secs(60));
        }
        let dest = dir.path().join(format!("{i}.zip"));
        let saved = client.download_package(id, None, &dest).await.unwrap();
        assert_eq!(saved.sha256, sha256(&dest), "{i}");
        zip::ZipArchive::new(std::fs::File::open(&dest).unwrap()).unwrap();
        resumed += saved.resumed;
    }
    assert!(resumed > 0, "the seed cuts some transfers");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_link_is_replaced_once_and_its_token_never_shows() {
    let config = Config::default().with_generated_machines(1);
    let lifetime = config.package_link_lifetime;
    let sim = simulator(config).await;
    let client = sim.client_builder().build().unwrap();
    let ids = completed(&sim, &client, 1).await;
    let link = client.package_link(&ids[0]).await.unwrap();
    let token = link
        .expose()
        .query()
        .unwrap()
        .trim_start_matches("token=")
        .to_string();
    assert!(!format!("{link} {link:?}").contains(&token));
    sim.clock().advance(lifetime + Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("late.zip");
    let saved = client
        .download_package(&ids[0], Some(link.clone()), &dest)
        .await
        .unwrap();
    assert_eq!(saved.new_links, 1);

    // Expired in the middle: a transfer cut halfway (its `.part`), resumed with the old link,
    // gets a new one and goes on from where it was cut.
    let whole = std::fs::read(&dest).unwrap();
    let cut = dir.path().join("cut.zip");
    std::fs::write(dir.path().join("cut.zip.part"), &whole[..whole.len() / 2]).unwrap();
    sim.clock().advance(lifetime + Duration::from_secs(60));
    let resumed = client
        .download_package(&ids[0], Some(link.clone()), &cut)
        .await
        .unwrap();
    assert_eq!(resumed.new_links, 1);
    assert_eq!((resumed.size, &resumed.sha256), (saved.size, &saved.sha256));
    assert_eq!(std::fs::read(&cut).unwrap(), whole);

    // A download host that refuses every link: one new link, then a clear error without it.
    let bogus = PackageLink::parse(&format!(
        "\"{}/safedownload/WDATP_Investigation_Package.zip?token=s3cr3t-{token}\"",
        sim.base_url()
    ))
    .unwrap();
    let never = dir.path().join("never.zip");
    let refused = client
        .download_package("00000000-0000-0000-0000-000000000000", Some(bogus), &never)
        .await
        .unwrap_err();
    let shown = format!("{refused} {refused:?}");
    assert!(
        !shown.contains("s3cr3t") && !shown.contains(&token),
        "{shown}"
    );
    assert!(!never.exists());
    sim.stop().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_folder_is_a_clear_error_and_leaves_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let sim = simulator(Config::default().with_generated_machines(1)).await;
    let client = sim.client_builder().build().unwrap();
    let ids = completed(&sim, &client, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    let dest = locked.join("p.zip");
    let result = client.download_package(&ids[0], None, &dest).await;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Root writes anywhere: then the test can only check the file is whole.
    match result {
        Err(Error::Io { path, .. }) => {
            assert!(path.starts_with(&locked));
            assert!(!dest.exists());
        }
        Ok(saved) => assert_eq!(saved.sha256, sha256(&dest)),
        Err(other) => panic!("{other:?}"),
    }
    // A write that fails whoever runs the test: the `.part` path is a folder.
    let blocked = dir.path().join("blocked.zip");
    std::fs::create_dir(dir.path().join("blocked.zip.part")).unwrap();
    let failed = client.download_package(&ids[0], None, &blocked).await;
    assert!(matches!(&failed, Err(Error::Io { .. })), "{failed:?}");
    assert!(!blocked.exists());
    sim.stop().await;
}

/// Many collections followed with one list call per interval, whatever their number; the
/// failed ones end as such, not as errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_actions_are_followed_with_one_list_call_an_interval() {
    use mde_client::types::MachineActionStatus as Status;
    let config = Config {
        time_scale: 2000.0,
        collection_failures: 0.3,
        seed: 11,
        ..Config::default().with_generated_machines(50)
    };
    let sim = simulator(config).await;
    let client = sim.client_builder().build().unwrap();
    let since = sim.clock().now_utc();
    let mut ids = Vec::new();
    for i in 0..50 {
        let action = client
            .collect_investigation_package(&generated_machine_id(i), "fleet")
            .await
            .unwrap();
        ids.push(action.id.unwrap());
    }
    let interval = Duration::from_secs(30);
    let mut changes = 0;
    let started = sim.clock().elapsed();
    let followed = client
        .follow_actions(&ids, since, interval, None, |_| changes += 1)
        .await
        .unwrap();
    let took = sim.clock().elapsed() - started;
    assert_eq!(followed.actions.len(), 50);
    assert!(
        followed
            .actions
            .values()
            .all(|a| mde_client::is_final(a.status.as_ref().unwrap()))
    );
    let failed = followed
        .actions
        .values()
        .filter(|a| matches!(a.status, Some(Status::Failed | Status::TimeOut)))
        .count();
    assert!(failed > 0 && failed < 50, "{failed}");
    // One call per interval: the calls are bounded by the time taken, not the fleet.
    let intervals = took.as_secs_f64() / interval.as_secs_f64();
    assert!(
        f64::from(followed.list_calls) <= intervals.ceil() + 1.0,
        "{} calls over {intervals:.1} intervals",
        followed.list_calls
    );
    assert!(changes >= 50);
    assert!(followed.unlisted.is_empty() && followed.running.is_empty());
    assert!(!mde_client::is_final(&Status::Other("Throttled".into())));

    // An action the service does not list (another tenant's, one deleted) is given up after
    // a few looks, never waited for; a deadline ends the wait for one still running.
    // Taken before the request: the clock runs 2000 times real time.
    let since = sim.clock().now_utc() - mde_client::chrono::Duration::seconds(1);
    let running = client
        .collect_investigation_package(&generated_machine_id(0), "later")
        .await
        .unwrap()
        .id
        .unwrap();
    let gone = "00000000-0000-0000-0000-000000000000";
    let followed = client
        .follow_actions(
            [gone, running.as_str()],
            since,
            interval,
            Some(interval * 5),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(followed.unlisted, [gone]);
    assert_eq!(followed.running, [running]);
    assert!(followed.list_calls <= 6, "{}", followed.list_calls);
    sim.stop().await;
}

/// The link's token never reaches a log line, at any level, through a download that is cut
/// and resumed and one whose link expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_never_shows_in_trace_logs() {
    // Global: the download runs on the runtime's worker threads.
    let logs = mde_tests::Logs::default();
    let _ = tracing::subscriber::set_global_default(logs.subscriber());

    let config = Config {
        download_faults: "drop:0.5".parse().unwrap(),
        seed: 3,
        ..Config::default().with_generated_machines(3)
    };
    let lifetime = config.package_link_lifetime;
    let sim = simulator(config).await;
    let client = sim.client_builder().build().unwrap();
    let ids = completed(&sim, &client, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let mut tokens = Vec::new();
    let mut resumed = 0;
    for (i, id) in ids.iter().enumerate() {
        let link = client.package_link(id).await.unwrap();
        tokens.push(link.expose().query().unwrap().to_string());
        // The second link expires before it is used: a new one is asked for.
        if i == 1 {
            sim.clock().advance(lifetime + Duration::from_secs(60));
        }
        let dest = dir.path().join(format!("{i}.zip"));
        let saved = client
            .download_package(id, Some(link), &dest)
            .await
            .unwrap();
        resumed += saved.resumed + saved.new_links;
    }
    assert!(resumed > 0);
    let text = logs.text();
    assert!(text.contains("mde-client"), "logs were captured");
    for token in &tokens {
        let value = token.trim_start_matches("token=");
        assert!(!text.contains(value), "a link's token is in the logs");
    }
    sim.stop().await;
}

/// getPackageUri's answer, as the generated operation gives it, keeps the link out of `Debug`
/// (`x-secret` in the spec), alone or as an `Answer`; its JSON still carries it whole.
#[tokio::test]
async fn the_link_never_shows_in_debug_output() {
    use mde_client::operations::{self, Answer, Request};
    let sim = simulator(Config::default().with_generated_machines(1)).await;
    let client = sim.client_builder().build().unwrap();
    let id = completed(&sim, &client, 1).await.remove(0);
    let answer = client
        .send(operations::GetPackageUri { id: id.clone() })
        .await
        .unwrap();
    let link = answer.value.expose().trim_matches('"').to_string();
    let query = link.split_once('?').expect("the link has a query").1;
    assert!(!query.is_empty());
    let shown = [
        format!("{answer:?}"),
        format!("{answer:#?}"),
        format!("{:?}", operations::GetPackageUri::answer(answer.clone())),
    ];
    for text in &shown {
        assert!(!text.contains(query), "the token shows: {text}");
        assert!(text.contains("Secret([redacted])"), "{text}");
    }
    assert!(matches!(
        operations::GetPackageUri::answer(answer.clone()),
        Answer::GetPackageUri(_)
    ));
    let json = serde_json::to_string(&answer).unwrap();
    assert!(json.contains(query), "the JSON keeps the link: {json}");
    sim.stop().await;
}

/// A body that is not the archive, or a `.part` an earlier run left that is not the start of
/// this package, is discarded and the package fetched again; a body corrupt every time is a
/// clear error that leaves no file behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_body_or_part_is_discarded_and_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        download_faults: "corrupt:1".parse().unwrap(),
        ..Config::default().with_generated_machines(1)
    };
    let sim = simulator(config).await;
    let client = sim.client_builder().build().unwrap();
    let ids = completed(&sim, &client, 1).await;
    let dest = dir.path().join("corrupt.zip");
    let failed = client.download_package(&ids[0], None, &dest).await;
    match failed {
        Err(Error::Download(message)) => assert!(message.contains("not a zip"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(!dest.exists());
    assert!(!dir.path().join("corrupt.zip.part").exists());
    sim.stop().await;

    let sim = simulator(Config::default().with_generated_machines(1)).await;
    let client = sim.client_builder().build().unwrap();
    let ids = completed(&sim, &client, 1).await;
    let dest = dir.path().join("left.zip");
    std::fs::write(dir.path().join("left.zip.part"), vec![b'x'; 1000]).unwrap();
    let saved = client.download_package(&ids[0], None, &dest).await.unwrap();
    zip::ZipArchive::new(std::fs::File::open(&dest).unwrap()).unwrap();
    let fresh = dir.path().join("fresh.zip");
    let again = client
        .download_package(&ids[0], None, &fresh)
        .await
        .unwrap();
    assert_eq!(saved.sha256, again.sha256);
    assert_eq!(saved.sha256, sha256(&dest));
    sim.stop().await;
}

/// A live response session's results, saved as packages are: a GetFile's file whole and
/// verified through cut transfers (`Range`), a RunScript's transcript read into its type with
/// its NULs, and a result link that expired replaced once (links live 30 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_response_results_are_saved_like_packages() {
    let config = Config {
        download_faults: "drop:0.5".parse().unwrap(),
        live_file_size: 400_000,
        seed: 3,
        ..Config::default().with_generated_machines(3)
    };
    let sim = simulator(config).await;
    let client = sim.client_builder().build().unwrap();
    let script = mde_client::operations::UploadLibraryFile::new("collect.ps1", "Get-Process");
    client.send(script).await.unwrap();
    let mut actions = Vec::new();
    for i in 0..3 {
        let body = mde_client::LiveResponse::new()
            .run_script("collect.ps1", Some("-Fast"))
            .get_file(r"C:\windows\TEMP\triage.zip")
            .build("triage")
            .unwrap();
        let id = generated_machine_id(i);
        let request = mde_client::operations::RunLiveResponse { id, body };
        actions.push(client.send(request).await.unwrap().id.unwrap());
    }
    let config = Config::default();
    sim.clock()
        .advance(config.pickup_time + config.command_time * 2);
    let dir = tempfile::tempdir().unwrap();
    let mut resumed = 0;
    for (i, action) in actions.iter().enumerate() {
        let file = dir.path().join(format!("{i}.bin"));
        let saved = client
            .download_live_response_result(action, 1, None, &file)
            .await
            .unwrap();
        assert_eq!((saved.size, saved.sha256.clone()), (400_000, sha256(&file)));
        assert!(
            std::fs::read(&file)
                .unwrap()
                .starts_with(br"C:\windows\TEMP\triage.zip on ")
        );
        resumed += saved.resumed;

        let transcript = dir.path().join(format!("{i}.json"));
        client
            .download_live_response_result(action, 0, None, &transcript)
            .await
            .unwrap();
        let read: mde_client::types::RunScriptTranscript =
            serde_json::from_slice(&std::fs::read(&transcript).unwrap()).unwrap();
        // Read into its type without a file: the same transcript.
        let typed = client.run_script_transcript(action, 0).await.unwrap();
        assert_eq!(typed, read);
        let output = read.script_output.clone().unwrap();
        assert!(
            output.ends_with('\u{0}') && output.contains("collect.ps1 -Fast"),
            "{output:?}"
        );
        // NULs and all, it writes back as it was read.
        let again: mde_client::types::RunScriptTranscript =
            serde_json::from_str(&serde_json::to_string(&read).unwrap()).unwrap();
        assert_eq!(again, read);
    }
    assert!(resumed > 0, "the seed cuts some transfers");

    late_links_and_refusals(&sim, &client, dir.path(), &actions).await;
    sim.stop().await;
}

/// A link left to expire, a command without a result, and sessions the builder refuses.
async fn late_links_and_refusals(
    sim: &mde_sim::Simulator,
    client: &mde_client::Client,
    dir: &std::path::Path,
    actions: &[String],
) {
    // A link asked for, then left 31 minutes: replaced once, the file still whole.
    let link = client
        .live_response_result_link(&actions[0], 1)
        .await
        .unwrap();
    sim.clock().advance(Duration::from_secs(31 * 60));
    let late = dir.join("late.bin");
    let saved = client
        .download_live_response_result(&actions[0], 1, Some(link), &late)
        .await
        .unwrap();
    assert_eq!(saved.new_links, 1);
    assert_eq!(
        std::fs::read(&late).unwrap(),
        std::fs::read(dir.join("0.bin")).unwrap()
    );
    // A PutFile has no result: a clear NotFound, nothing on disk.
    let none = dir.join("none.bin");
    let body = mde_client::LiveResponse::new()
        .put_file("collect.ps1")
        .build("p")
        .unwrap();
    let id = generated_machine_id(2);
    sim.clock().advance(Duration::from_secs(3600));
    let put = client
        .send(mde_client::operations::RunLiveResponse { id, body })
        .await
        .unwrap()
        .id
        .unwrap();
    sim.clock().advance(Duration::from_secs(3600));
    let e = client
        .download_live_response_result(&put, 0, None, &none)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");
    assert!(!none.exists());
    // Out of the documented order, or with a bad name: refused by the builder, nothing sent.
    let sent = sim.calls(mde_client::OperationId::RunLiveResponse);
    for refused in [
        mde_client::LiveResponse::new()
            .get_file(r"C:\a")
            .put_file("collect.ps1"),
        mde_client::LiveResponse::new()
            .get_file(r"C:\a")
            .run_script("collect.ps1", None),
        mde_client::LiveResponse::new().put_file("col lect.ps1"),
        mde_client::LiveResponse::new(),
    ] {
        let e = refused.build("c").unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    }
    assert_eq!(sim.calls(mde_client::OperationId::RunLiveResponse), sent);
}

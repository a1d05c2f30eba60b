//! The simulator against the spec: live response.

use super::*;

/// A live response command's result, as get-live-response-result.md describes it: a link in
/// the OData string wrapper (no quotes around it), only once the command completed and only
/// for RunScript (its transcript, NULs kept) and GetFile (the file), valid 30 minutes and made
/// again by another call; the function path takes the index inside its parentheses.
#[tokio::test]
async fn live_response_results_are_linked_once_their_command_completed() {
    let spec = spec();
    let sim = simulator(Config::default().with_generated_machines(1)).await;
    let token = sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let base = sim.base_url().to_string();
    // The script the sessions put and run, in the library first.
    let script = operations::UploadLibraryFile::new("collect.ps1", "Get-ChildItem C:\\");
    client_of(&sim, &token).send(script).await.unwrap();
    let post = async |path: String, body: Value| {
        let body = serde_json::to_vec(&body).unwrap();
        raw(
            &spec,
            &base,
            &path,
            Some(&token),
            Some("application/json"),
            body,
        )
        .await
    };
    let session = post(
        path_of(OperationId::RunLiveResponse, &generated_machine_id(0)),
        json!({
            "Commands": [
                { "type": "PutFile", "params": [{ "key": "FileName", "value": "collect.ps1" }] },
                { "type": "RunScript", "params": [{ "key": "ScriptName", "value": "collect.ps1" }, { "key": "Args", "value": "-Fast" }] },
                { "type": "GetFile", "params": [{ "key": "Path", "value": "C:\\triage.zip" }] }
            ],
            "Comment": "triage"
        }),
    )
    .await;
    assert_eq!(session.status, 201, "{:?}", session.body);
    let action = session.body["id"].as_str().unwrap().to_string();
    let link = async |index: &str| {
        let path = format!(
            "/api/machineactions/{action}/GetLiveResponseResultDownloadLink(index={index})"
        );
        raw(&spec, &base, &path, Some(&token), None, Vec::new()).await
    };
    assert_eq!(link("1").await.status, 404, "not completed yet");

    let config = Config::default();
    sim.clock()
        .advance(config.pickup_time + config.command_time * 3);
    assert_eq!(link("0").await.status, 404, "a PutFile has no result");
    assert_eq!(link("7").await.status, 404, "no such command");
    assert_eq!(link("one").await.status, 400);
    let other = format!("{base}/api/machineactions/{action}/GetSomethingElse(index=1)");
    let other = http().get(other).bearer_auth(&token).send().await.unwrap();
    assert_eq!(
        other.status().as_u16(),
        404,
        "another function is no resource"
    );

    let download = async |answer: Raw| {
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        let url = answer.body["value"].as_str().unwrap().to_string();
        assert!(url.starts_with("http"), "no quotes around the link: {url}");
        let response = http().get(&url).send().await.unwrap();
        (
            response.status().as_u16(),
            response.bytes().await.unwrap().to_vec(),
            url,
        )
    };
    let (status, transcript, url) = download(link("1").await).await;
    assert_eq!(status, 200);
    let transcript: mde_client::types::RunScriptTranscript =
        serde_json::from_slice(&transcript).unwrap();
    assert_eq!(transcript.script_name.as_deref(), Some("collect.ps1"));
    assert!(
        transcript.script_output.unwrap().contains('\u{0}'),
        "NULs as real output has them"
    );
    let (status, file, _) = download(link("2").await).await;
    assert_eq!(status, 200);
    assert!(
        String::from_utf8(file)
            .unwrap()
            .starts_with("C:\\triage.zip on ")
    );

    // 30 minutes later the link is refused; another call makes a new one.
    sim.clock().advance(Duration::from_secs(30 * 60));
    assert_eq!(
        http().get(&url).send().await.unwrap().status().as_u16(),
        403
    );
    let (status, _, _) = download(link("1").await).await;
    assert_eq!(status, 200);
    sim.stop().await;
}

/// The library as list-library-files.md, upload-library.md and delete-library.md describe it:
/// a multipart upload (name rule, 20 MiB, `OverrideIfExists`), the list, a delete answering
/// 204 then 404; the client refuses what the service would before sending.
#[tokio::test]
async fn the_library_takes_uploads_lists_and_deletes() {
    let spec = spec();
    let sim = simulator(Config::default()).await;
    let token = sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let client = client_of(&sim, &token);
    let upload = |name: &str, content: &str| operations::UploadLibraryFile {
        description: Some("triage".into()),
        ..operations::UploadLibraryFile::new(name, content)
    };
    let file = client.send(upload("collect.ps1", "v1")).await.unwrap();
    assert_eq!(file.file_name.as_deref(), Some("collect.ps1"));
    let digest = |content: &[u8]| {
        use sha2::Digest;
        Some(format!("{:x}", sha2::Sha256::digest(content)))
    };
    assert_eq!(file.sha256, digest(b"v1"));
    // The same name again: refused unless it overrides; then the new content is listed.
    let again = client.send(upload("collect.ps1", "v2")).await.unwrap_err();
    assert!(
        matches!(again, mde_client::Error::InvalidRequest(_)),
        "{again:?}"
    );
    let replaced = operations::UploadLibraryFile {
        override_if_exists: Some(true),
        ..upload("collect.ps1", "v2")
    };
    client.send(replaced).await.unwrap();
    let listed = client.send(operations::ListLibraryFiles {}).await.unwrap();
    assert_eq!(listed.value.len(), 1);
    assert_eq!(listed.value[0].sha256, digest(b"v2"));
    assert_eq!(
        listed.value[0].creation_time, file.creation_time,
        "created once"
    );

    // What the client refuses before sending: nothing reaches the simulator.
    let calls = sim.calls(OperationId::UploadLibraryFile);
    for refused in [
        upload("../evil.ps1", "x"),
        upload("a b.ps1", "x"),
        operations::UploadLibraryFile::new(
            "big.bin",
            vec![0u8; mde_client::LIBRARY_FILE_LIMIT + 1],
        ),
    ] {
        let e = client.send(refused).await.unwrap_err();
        assert!(matches!(e, mde_client::Error::InvalidInput(_)), "{e:?}");
    }
    assert_eq!(sim.calls(OperationId::UploadLibraryFile), calls);
    // A plain client gets the service's 400 for the same.
    let base = sim.base_url().to_string();
    let (content_type, body) = multipart(&json!({ "file": "x" }));
    let body = String::from_utf8(body)
        .unwrap()
        .replace("mdatp1.png", "a b.ps1");
    let bad = raw(
        &spec,
        &base,
        "/api/libraryfiles",
        Some(&token),
        Some(&content_type),
        body.into_bytes(),
    )
    .await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
    let not_a_form = raw(
        &spec,
        &base,
        "/api/libraryfiles",
        Some(&token),
        Some("application/json"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(not_a_form.status, 400);

    let delete = |name: &str| operations::DeleteLibraryFile {
        file_name: name.into(),
    };
    client.send(delete("collect.ps1")).await.unwrap();
    let gone = client.send(delete("collect.ps1")).await.unwrap_err();
    assert!(matches!(gone, mde_client::Error::NotFound(_)), "{gone:?}");
    let listed = client.send(operations::ListLibraryFiles {}).await.unwrap();
    assert!(listed.value.is_empty());
    sim.stop().await;
}

/// How sessions end on the devices: a library file that is not there fails its command and
/// the later ones never run; a missing file fails a GetFile the same way; a device that stays
/// offline keeps its session queued 2 hours, then `TimeOut`; a group without an automation
/// level is the 403 `DisallowedOperation` with #6054's text.
#[tokio::test]
async fn live_response_sessions_fail_queue_and_refuse_as_devices_do() {
    let sim = simulator(Config {
        no_automation: 1,
        offline: 1.0,
        ..Config::default().with_generated_machines(4)
    })
    .await;
    let token = sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let client = client_of(&sim, &token);
    let denied = client
        .send(session(0, vec![command("GetFile", "Path", "C:\\a")]))
        .await
        .unwrap_err();
    let text = denied.to_string();
    assert!(
        text.contains("DisallowedOperation") && text.contains("Remediation Level"),
        "{text}"
    );

    // Every machine is offline: the session waits 2 hours, then times out, nothing run.
    let queued = client
        .send(session(1, vec![command("GetFile", "Path", "C:\\a")]))
        .await
        .unwrap();
    sim.clock().advance(Duration::from_secs(2 * 3600 - 60));
    let action = |id: &str| {
        sim.actions()
            .into_iter()
            .find(|a| a.id.as_deref() == Some(id))
            .unwrap()
    };
    use mde_client::types::{LiveResponseCommandStatus as Command, MachineActionStatus as Status};
    let id = queued.id.clone().unwrap();
    assert_eq!(action(&id).status, Some(Status::Pending));
    sim.clock().advance(Duration::from_secs(120));
    let timed_out = action(&id);
    assert_eq!(timed_out.status, Some(Status::TimeOut));
    assert_eq!(
        timed_out.commands.unwrap()[0].command_status,
        Some(Command::Created)
    );
    sim.stop().await;

    the_first_failure_stops_a_session().await;
}

/// Online devices, one file that does not exist: the first failure stops the session.
async fn the_first_failure_stops_a_session() {
    use mde_client::types::{LiveResponseCommandStatus as Command, MachineActionStatus as Status};
    // Online devices, one file that does not exist: the first failure stops the session.
    let sim = simulator(Config {
        missing_files: 1.0,
        ..Config::default().with_generated_machines(2)
    })
    .await;
    let token = sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let client = client_of(&sim, &token);
    let unknown_script = client
        .send(session(
            0,
            vec![
                command("RunScript", "ScriptName", "absent.ps1"),
                command("GetFile", "Path", "C:\\a"),
            ],
        ))
        .await
        .unwrap();
    let missing_file = client
        .send(session(
            1,
            vec![
                command("GetFile", "Path", "C:\\a"),
                command("GetFile", "Path", "C:\\b"),
            ],
        ))
        .await
        .unwrap();
    let config = Config::default();
    sim.clock()
        .advance(config.pickup_time + config.command_time * 2);
    for (session, why) in [
        (unknown_script, "library"),
        (missing_file, "does not exist"),
    ] {
        let action = sim
            .actions()
            .into_iter()
            .find(|a| a.id == session.id)
            .unwrap();
        assert_eq!(action.status, Some(Status::Failed));
        let commands = action.commands.unwrap();
        assert_eq!(commands[0].command_status, Some(Command::Failed));
        let errors = format!("{:?}", commands[0].errors);
        assert!(errors.contains(why), "{errors}");
        assert_eq!(
            commands[1].command_status,
            Some(Command::Created),
            "never run"
        );
        assert_eq!(commands[1].start_time, None);
    }
    sim.stop().await;
}

/// A live response command of one parameter.
fn command(kind: &str, key: &str, value: &str) -> mde_client::types::LiveResponseCommand {
    mde_client::types::LiveResponseCommand {
        type_: kind.parse().unwrap(),
        params: vec![mde_client::types::LiveResponseParam {
            key: key.into(),
            value: value.into(),
        }],
    }
}

/// A session of `commands` on the generated machine `machine`.
fn session(
    machine: usize,
    commands: Vec<mde_client::types::LiveResponseCommand>,
) -> operations::RunLiveResponse {
    operations::RunLiveResponse {
        id: generated_machine_id(machine),
        body: mde_client::types::LiveResponseRequest {
            commands,
            comment: "triage".try_into().unwrap(),
        },
    }
}

/// Several tenants: each has its own inventory (other machine ids), its own actions and its
/// own rate budget per app; the default app is registered in each, another app only where it
/// is given; an unknown tenant is Azure AD's AADSTS90002.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_have_their_own_inventory_actions_and_budgets() {
    let spec = spec();
    let sim = simulator(Config {
        tenants: vec!["contoso".into(), "fabrikam".into()],
        apps: vec![
            mde_sim::App::default_app(),
            App::parse("fabrikam/narrow:pw:Machine.Read.All").unwrap(),
        ],
        ..Config::default().with_generated_machines(2)
    })
    .await;
    let base = sim.base_url().to_string();
    let contoso = mde_sim::sign_in(&base, "contoso", DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
        .await
        .unwrap();
    let home = sign_in(&sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    let theirs = mde_sim::tenant_machine_id("contoso", &generated_machine_id(0));
    assert_ne!(theirs, generated_machine_id(0));
    let ids = |tenant: &str| -> Vec<String> {
        sim.machines_in(tenant)
            .into_iter()
            .filter_map(|m| m.id)
            .collect()
    };
    assert!(ids("contoso").contains(&theirs));
    assert!(!ids("contoso").contains(&generated_machine_id(0)));

    let collect = |token: String, machine: String| {
        let (spec, base) = (&spec, &base);
        async move {
            let path = path_of(OperationId::CollectInvestigationPackage, &machine);
            let body = serde_json::to_vec(&json!({ "Comment": "tenant" })).unwrap();
            raw(
                spec,
                base,
                &path,
                Some(&token),
                Some("application/json"),
                body,
            )
            .await
        }
    };
    assert_eq!(collect(contoso.clone(), theirs.clone()).await.status, 201);
    // The same machine is not in the home tenant, and the home tenant's is not in contoso.
    assert_eq!(collect(home.clone(), theirs.clone()).await.status, 404);
    assert_eq!(
        collect(contoso.clone(), generated_machine_id(1))
            .await
            .status,
        404
    );
    assert_eq!(sim.actions_in("contoso").len(), 1);
    assert!(sim.actions().is_empty());

    // The budget is the app's in each tenant: contoso's spent, the home tenant's whole.
    let list = |token: String| {
        let (spec, base) = (&spec, &base);
        async move { raw(spec, base, "/api/machines", Some(&token), None, Vec::new()).await }
    };
    let mut statuses = Vec::new();
    for _ in 0..101 {
        statuses.push(list(contoso.clone()).await.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(list(home).await.status, 200);

    // Another app only where it was given; an unknown tenant as Azure AD says it.
    let scope = mde_client::operations::TOKEN_SCOPES[0];
    let narrow = token_request(&sim, "fabrikam", "narrow", "pw", scope).await;
    assert_eq!(narrow.0, 200, "{:?}", narrow.1);
    let elsewhere = token_request(&sim, "contoso", "narrow", "pw", scope).await;
    assert_eq!(elsewhere.1["error"], "unauthorized_client");
    let unknown = token_request(
        &sim,
        "nowhere",
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        scope,
    )
    .await;
    assert!(
        unknown.1["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS90002"),
        "{:?}",
        unknown.1
    );
    sim.stop().await;
}

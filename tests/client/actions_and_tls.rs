//! The client against a server of its own: actions and tls.

use super::*;

/// A repeated scan answered with the pending scan (201) is no new action: `AlreadyPending`,
/// with the pending action, whether this client was given it before (its id) or another
/// one was (its creation time, well before the answer's `Date`).
#[tokio::test]
async fn a_pending_action_answered_again_is_already_running_not_new() {
    let machine = generated_machine_id(0);
    // A seed whose dice answer the second and third scans with the pending one.
    let seed = (0..)
        .find(|s| {
            ["1", "2"]
                .iter()
                .all(|nth| mde_sim::dice(*s, &[&machine, "scan", nth]) < 0.5)
        })
        .unwrap();
    let sim = simulator(Config {
        seed,
        ..Config::default().with_generated_machines(1)
    })
    .await;
    let client = builder(&sim).build().unwrap();
    let full = mde_client::types::ScanType::Full;
    let first = client
        .run_antivirus_scan(&machine, "c", full)
        .await
        .unwrap();
    // At once, by the same client: the id tells.
    let again = client.run_antivirus_scan(&machine, "c", full).await;
    let Err(Error::AlreadyPending(pending)) = &again else {
        panic!("{again:?}")
    };
    assert_eq!(pending.id, first.id);
    assert!(again.as_ref().unwrap_err().is_already_running());
    assert_eq!(again.as_ref().unwrap_err().status(), Some(201));
    // A minute later, by another client: the creation time tells.
    sim.clock().advance(Duration::from_secs(60));
    let other = builder(&sim).build().unwrap();
    let later = other.run_antivirus_scan(&machine, "c", full).await;
    assert!(
        matches!(&later, Err(Error::AlreadyPending(p)) if p.id == first.id),
        "{later:?}"
    );
    assert_eq!(sim.actions().len(), 1);
}

/// listMachines: every machine, a name found with `eq` or `startswith`, and the service's 404 for
/// a tenant with no recent machines read as no machines.
#[tokio::test]
async fn machines_are_listed_by_page_and_filter_and_a_404_is_none() {
    let sim = simulator(Config {
        names: vec!["ws-1".into(), "ws-10".into(), "ws-2.fabrikam.com".into()],
        duplicate_names: 1,
        ..Config::default().with_generated_machines(3)
    })
    .await;
    let client = builder(&sim).build().unwrap();
    let all = client.list_machines(None).await.unwrap();
    assert_eq!(all.len(), sim.machines().len());
    let fqdn = |f: &str| {
        let client = &client;
        let f = f.to_string();
        async move {
            let mut names: Vec<String> = client
                .list_machines(Some(f))
                .await
                .unwrap()
                .into_iter()
                .filter_map(|m| m.computer_dns_name)
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(
        fqdn("startswith(computerDnsName,'WS-1')").await,
        ["ws-1.contoso.com", "ws-10.contoso.com"]
    );
    assert_eq!(
        fqdn("computerDnsName eq 'ws-2.fabrikam.com'").await,
        ["ws-2.fabrikam.com"]
    );
    // The first generated machine's name is given to a second, older one too.
    let first = &sim.machines()[0];
    let shared = first.computer_dns_name.clone().unwrap();
    let twins = fqdn(&format!("computerDnsName eq '{shared}'")).await;
    assert_eq!(twins.len(), 2);
    assert_eq!(
        fqdn("computerDnsName eq 'nobody.contoso.com'").await.len(),
        0
    );

    let (base, hits) = hostile(|| {
        answer(
            404,
            "application/json",
            r#"{"error":{"code":"NotFound","message":"No recent machines"}}"#,
        )
    })
    .await;
    let none = hostile_client(&base).list_machines(None).await.unwrap();
    assert!(none.is_empty());
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

/// `mde-sim --tls`: the client trusts the simulator's CA it is given and collects over
/// HTTPS; without it the handshake fails (verification is never off).
#[tokio::test]
async fn a_tls_simulator_is_trusted_through_its_ca_and_only_so() {
    let sim = simulator(Config {
        tls: true,
        ..Config::default()
    })
    .await;
    assert!(sim.base_url().starts_with("https://127.0.0.1:"));
    let pem = sim.ca_pem().unwrap().to_string();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let client = builder(&sim).build().unwrap();
    let action = client
        .collect_investigation_package(MACHINE, "over TLS")
        .await
        .unwrap();
    assert_eq!(
        action.status,
        Some(mde_client::types::MachineActionStatus::Pending)
    );

    let untrusting = Client::builder()
        .base_url(sim.base_url())
        .login_url(sim.base_url())
        .client_credentials(DEFAULT_TENANT, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
        .build()
        .unwrap();
    let refused = untrusting
        .collect_investigation_package(&generated_machine_id(0), "c")
        .await;
    assert!(
        matches!(&refused, Err(Error::Transport { .. })),
        "{refused:?}"
    );
    let not_pem = Client::builder()
        .bearer_token("t")
        .add_root_certificate("not a certificate")
        .build();
    assert!(
        matches!(not_pem, Err(Error::Configuration(_))),
        "{not_pem:?}"
    );

    // The OpenID Connect discovery document MSAL and azure-identity read first points at
    // the token endpoint the client uses.
    let http = mde_client::reqwest::Client::builder()
        .tls_certs_merge(mde_client::reqwest::Certificate::from_pem_bundle(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let discovery: serde_json::Value = http
        .get(format!(
            "{}/{DEFAULT_TENANT}/v2.0/.well-known/openid-configuration",
            sim.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["token_endpoint"], sim.token_url(DEFAULT_TENANT));
    assert_eq!(
        discovery["issuer"],
        format!("{}/{DEFAULT_TENANT}/v2.0", sim.base_url())
    );
}

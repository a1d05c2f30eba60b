//! The client against a server of its own: tokens and errors.

use super::*;

#[tokio::test]
async fn client_credentials_are_cached_shared_and_renewed_before_expiry() {
    let sim = simulator(Config::default().with_generated_machines(60)).await;
    let client = builder(&sim).build().unwrap();
    // Fifty callers at once share one exchange.
    let calls = (0..50).map(|i| {
        let client = client.clone();
        async move {
            client
                .collect_investigation_package(&generated_machine_id(i), "c")
                .await
        }
    });
    for result in futures_util::future::join_all(calls).await {
        result.unwrap();
    }
    assert_eq!(sim.tokens_issued(), 1);
    // Later in the token's life, but within its last tenth: renewed, never refused.
    sim.clock()
        .advance(Config::default().token_lifetime - Duration::from_secs(200));
    client
        .collect_investigation_package(&generated_machine_id(50), "c")
        .await
        .unwrap();
    assert_eq!(sim.tokens_issued(), 2);
    client
        .collect_investigation_package(&generated_machine_id(51), "c")
        .await
        .unwrap();
    assert_eq!(sim.tokens_issued(), 2, "the renewed token is cached");
}

#[tokio::test]
async fn a_refused_cached_token_is_replaced_once() {
    // Tokens live 10 s on the simulator, but the client's own clock says they are fresh: the
    // simulator refuses the expired token, and the client asks for a new one and succeeds.
    let sim = simulator(Config {
        token_lifetime: Duration::from_secs(10),
        ..Config::default()
    })
    .await;
    let client = builder(&sim)
        .clock(Arc::new(mde_client::SystemClock::default()))
        .build()
        .unwrap();
    client
        .collect_investigation_package(MACHINE, "c")
        .await
        .unwrap();
    sim.clock().advance(Duration::from_secs(11));
    client
        .collect_investigation_package("1e5bc9d7e413ddd7902c2932e418702b84d0cc07", "c")
        .await
        .unwrap();
    assert_eq!(sim.tokens_issued(), 2);
}

#[tokio::test]
async fn azure_ad_errors_are_authentication_errors() {
    let sim = simulator(Config::default()).await;
    let wrong = builder(&sim)
        .client_credentials(DEFAULT_TENANT, DEFAULT_CLIENT_ID, "not-the-secret")
        .build()
        .unwrap();
    let error = wrong
        .collect_investigation_package(MACHINE, "c")
        .await
        .unwrap_err();
    let Error::Authentication(message) = &error else {
        panic!("{error:?}")
    };
    assert!(
        message.contains("invalid_client") && message.contains("AADSTS7000215"),
        "{message}"
    );
    assert!(!message.contains("not-the-secret"));
    assert!(sim.actions().is_empty());
}

/// Every public type that holds a secret, and every log line, at every level, never shows it.
#[tokio::test]
async fn secrets_never_show_in_debug_display_errors_or_logs() {
    let logs = mde_tests::Logs::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());

    let sim = simulator(Config::default()).await;
    const STATIC: &str = "static-token-SECRET-4711";
    let mut shown = Vec::new();

    let good = builder(&sim).on_wait(|_| {});
    shown.push(format!("{good:?}"));
    let good = good.build().unwrap();
    good.collect_investigation_package(MACHINE, "c")
        .await
        .unwrap();
    shown.push(format!("{good:?}"));
    shown.push(format!(
        "{:?}",
        good.raw(OperationId::CollectInvestigationPackage).unwrap()
    ));

    let wrong_secret = builder(&sim)
        .client_credentials(DEFAULT_TENANT, DEFAULT_CLIENT_ID, "wrong-SECRET-0815")
        .build()
        .unwrap();
    let e = wrong_secret
        .collect_investigation_package(MACHINE, "c")
        .await
        .unwrap_err();
    shown.push(format!("{e} {e:?} {wrong_secret:?}"));

    let static_token = Client::builder()
        .base_url(sim.base_url())
        .bearer_token(STATIC)
        .build()
        .unwrap();
    let e = static_token
        .collect_investigation_package(MACHINE, "c")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Authentication(_)), "{e:?}");
    shown.push(format!("{e} {e:?} {static_token:?}"));
    let credentials = mde_client::Credentials::BearerToken(STATIC.into());
    shown.push(format!(
        "{credentials:?} {:?}",
        mde_client::Secret::new(DEFAULT_CLIENT_SECRET)
    ));

    shown.push(logs.text());
    let everything = shown.join("\n");
    assert!(everything.contains("mde-client"), "logs were captured");
    for secret in [DEFAULT_CLIENT_SECRET, "wrong-SECRET-0815", STATIC, "sim."] {
        assert!(
            !everything.contains(secret),
            "{secret:?} shows in:\n{everything}"
        );
    }
}

/// Going as fast as it can, a caller never meets a 429, and waits exactly what the documented
/// 100 collections a minute require: 120 at once take one minute (plus the client's margin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_limits_are_kept_without_waiting_longer_than_they_require() {
    // x10: the 3 simulated seconds of slack below are 300 ms of real time, room for a loaded
    // machine to answer the first calls (a call counts until its answer arrives).
    let sim = simulator(Config {
        time_scale: 10.0,
        ..Config::default().with_generated_machines(120)
    })
    .await;
    let (events, hook) = recorder();
    let client = builder(&sim).on_wait(hook).build().unwrap();
    let started = sim.clock().elapsed();
    let calls = (0..120).map(|i| {
        let client = client.clone();
        async move {
            client
                .collect_investigation_package(&generated_machine_id(i), "fleet")
                .await
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let took = sim.clock().elapsed() - started;
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    assert_eq!(sim.actions().len(), 120);
    let events = events.lock().unwrap();
    assert!(
        events.iter().all(|e| e.reason == WaitReason::RateLimit),
        "a 429 was received: {events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.operation == OperationId::CollectInvestigationPackage)
    );
    let minute =
        Duration::from_secs(operations::COLLECT_INVESTIGATION_PACKAGE.rate_limits[0].seconds);
    assert!(took >= minute, "{took:?}");
    assert!(
        took < minute + Duration::from_secs(3),
        "waited longer than the limit requires: {took:?}"
    );
}

#[tokio::test]
async fn a_429_is_waited_out_and_sent_again_within_the_bound() {
    // The 100 calls must fit in the simulated minute: at x60 they have a real second, enough
    // on a loaded machine; the wait for the 429 is then at most a real second too.
    let sim = simulator(Config {
        time_scale: 60.0,
        ..Config::default().with_generated_machines(102)
    })
    .await;
    let (events, hook) = recorder();
    // The client does not hold calls back, so it meets the simulator's limit.
    let client = builder(&sim)
        .enforce_rate_limits(false)
        .on_wait(hook)
        .build()
        .unwrap();
    for i in 0..100 {
        client
            .collect_investigation_package(&generated_machine_id(i), "c")
            .await
            .unwrap();
    }
    client
        .collect_investigation_package(&generated_machine_id(100), "c")
        .await
        .unwrap();
    let waits: Vec<WaitEvent> = events.lock().unwrap().clone();
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert_eq!(waits[0].reason, WaitReason::RetryAfter);
    assert!(
        waits[0].wait > Duration::ZERO && waits[0].wait <= Duration::from_secs(60),
        "{waits:?}"
    );

    // Over the bound, the 429 comes back to the caller with the wait.
    let impatient = builder(&sim)
        .enforce_rate_limits(false)
        .max_retry_after(Duration::from_secs(5))
        .build()
        .unwrap();
    for i in 0..100 {
        impatient
            .collect_investigation_package(&generated_machine_id(i), "c")
            .await
            .ok();
    }
    let error = impatient
        .collect_investigation_package(&generated_machine_id(101), "c")
        .await
        .unwrap_err();
    let Error::RateLimited {
        retry_after: Some(wait),
        error: Some(service),
    } = &error
    else {
        panic!("{error:?}")
    };
    assert!(*wait > Duration::from_secs(5));
    assert_eq!(service.code, "TooManyRequests");
}

#[tokio::test]
async fn the_service_errors_each_have_their_variant() {
    let mut config = Config::default();
    config
        .apps
        .push(App::parse("reader:reader-secret:Alert.ReadWrite.All").unwrap());
    let sim = simulator(config).await;
    let client = builder(&sim).build().unwrap();

    let missing = client
        .collect_investigation_package("0000000000000000000000000000000000000000", "c")
        .await;
    assert!(
        matches!(&missing, Err(Error::NotFound(e)) if e.code == "ResourceNotFound"),
        "{missing:?}"
    );

    client
        .collect_investigation_package(MACHINE, "c")
        .await
        .unwrap();
    let again = client.collect_investigation_package(MACHINE, "c").await;
    assert!(
        matches!(&again, Err(Error::AlreadyRunning(e)) if e.status == 400),
        "{again:?}"
    );

    let reader = builder(&sim)
        .client_credentials(DEFAULT_TENANT, "reader", "reader-secret")
        .build()
        .unwrap();
    let denied = reader
        .collect_investigation_package(MACHINE, "c")
        .await
        .unwrap_err();
    let Error::Permission { required, error } = &denied else {
        panic!("{denied:?}")
    };
    assert_eq!(required, &["Machine.CollectForensics"]);
    assert_eq!(error.status, 403);
    assert!(denied.to_string().contains("Machine.CollectForensics"));

    let stranger = Client::builder()
        .base_url(sim.base_url())
        .bearer_token("nope")
        .build()
        .unwrap();
    assert!(matches!(
        stranger.collect_investigation_package(MACHINE, "c").await,
        Err(Error::Authentication(_))
    ));

    let closed = Client::builder()
        .base_url("http://127.0.0.1:1")
        .bearer_token("t")
        .build()
        .unwrap();
    let refused = closed
        .collect_investigation_package(MACHINE, "c")
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Transport { timeout: false, .. }));
    // Refused before a byte was sent: nothing can have been started.
    assert_eq!(refused.delivery(), mde_client::Delivery::NotSent);
    // The transport's own error is kept, with its causes, for a program to walk.
    let mut chain = Vec::new();
    let mut source = std::error::Error::source(&refused);
    while let Some(cause) = source {
        chain.push(cause.to_string());
        source = cause.source();
    }
    assert!(
        std::error::Error::source(&refused).is_some_and(|s| s.is::<mde_client::reqwest::Error>()),
        "{refused:?}"
    );
    assert!(
        chain.iter().any(|c| c.to_lowercase().contains("refused")),
        "the cause chain names the refused connection: {chain:?}"
    );
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_sent() {
    let (base, hits) = hostile(|| answer(500, "text/plain", "should not be reached")).await;
    let client = hostile_client(&base);
    for (id, comment) in [
        (MACHINE, ""),
        ("", "c"),
        ("..", "c"),
        (".", "c"),
        ("a\u{0}b", "c"),
    ] {
        let refused = client.collect_investigation_package(id, comment).await;
        assert!(
            matches!(refused, Err(Error::InvalidInput(_))),
            "{id:?} {comment:?}: {refused:?}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn nothing_but_a_429_is_retried_unless_the_call_opts_in() {
    let error_body = r#"{"error":{"code":"InternalServerError","message":"boom","target":"x"}}"#;
    let (base, hits) = hostile(move || answer(500, "application/json", error_body)).await;
    let fast = Arc::new(mde_sim::Clock::scaled(1000.0));
    let (events, hook) = recorder();
    let client = Client::builder()
        .base_url(&base)
        .bearer_token("t")
        .clock(fast)
        .on_wait(hook)
        .build()
        .unwrap();

    let failed = client
        .collect_investigation_package(MACHINE, "c")
        .await
        .unwrap_err();
    assert!(
        matches!(
            failed,
            Error::UnexpectedResponse {
                status: Some(500),
                ..
            }
        ),
        "{failed:?}"
    );
    assert!(failed.is_transient());
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "a 5xx is not retried by default"
    );

    client
        .collect_investigation_package(MACHINE, "c")
        .retry_transient(2)
        .await
        .unwrap_err();
    assert_eq!(hits.load(Ordering::SeqCst), 4, "opted in: two more tries");
    assert_eq!(
        events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.reason == WaitReason::Backoff)
            .count(),
        2
    );

    // A timeout is not retried either.
    let (slow, slow_hits) = hostile(|| {
        std::thread::sleep(Duration::from_millis(400));
        answer(201, "application/json", "{}")
    })
    .await;
    let impatient = Client::builder()
        .base_url(&slow)
        .bearer_token("t")
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let timed_out = impatient
        .collect_investigation_package(MACHINE, "c")
        .await
        .unwrap_err();
    assert!(
        matches!(timed_out, Error::Transport { timeout: true, .. }),
        "{timed_out:?}"
    );
    // Sent, and no answer: the action may exist.
    assert_eq!(timed_out.delivery(), mde_client::Delivery::Unknown);
    assert_eq!(slow_hits.load(Ordering::SeqCst), 1);
}

/// What a broken or hostile server answers is an error with its status and a bounded excerpt,
/// never a panic, and a huge body is not read.
#[tokio::test]
async fn hostile_answers_are_bounded_errors() {
    let html = format!(
        "<html><body>{}</body></html>",
        "Bad gateway. ".repeat(10_000)
    );
    let cases: Vec<(&str, u16, &str, Vec<u8>)> = vec![
        (
            "truncated JSON",
            201,
            "application/json",
            br#"{"id": "c9042f9b", "status": "#.to_vec(),
        ),
        (
            "wrong types",
            201,
            "application/json",
            br#"{"id": 5, "status": ["InProgress"]}"#.to_vec(),
        ),
        (
            "HTML error page",
            502,
            "text/html",
            html.clone().into_bytes(),
        ),
        (
            "HTML for a documented error",
            404,
            "text/html",
            html.into_bytes(),
        ),
        (
            "50 MB with its length",
            201,
            "application/json",
            vec![b' '; 50 << 20],
        ),
        (
            "an undocumented success",
            200,
            "application/json",
            b"{}".to_vec(),
        ),
    ];
    for (what, status, content_type, body) in cases {
        let body = Arc::new(body);
        let (base, _) = hostile(move || answer(status, content_type, body.as_ref().clone())).await;
        let error = hostile_client(&base)
            .collect_investigation_package(MACHINE, "c")
            .await
            .unwrap_err();
        let Error::UnexpectedResponse {
            status: got,
            excerpt,
        } = &error
        else {
            panic!("{what}: {error:?}")
        };
        assert_eq!(*got, Some(status), "{what}");
        assert!(
            excerpt.len() < 1024,
            "{what}: excerpt of {} bytes",
            excerpt.len()
        );
    }

    streams_limits_and_refusals_are_typed().await;
}

/// An endless stream, a bare 429 and a documented 400: each its typed error.
async fn streams_limits_and_refusals_are_typed() {
    // 50 MB streamed without a length: reading stops at the cap.
    let (base, _) = hostile(|| {
        let chunks = futures_util::stream::iter(
            (0..50).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1 << 20])),
        );
        answer(201, "application/json", Body::from_stream(chunks))
    })
    .await;
    let error = hostile_client(&base)
        .collect_investigation_package(MACHINE, "c")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("cap"), "{error}");

    // A 429 with neither body nor Retry-After.
    let (base, _) = hostile(|| answer(429, "text/plain", "")).await;
    let error = hostile_client(&base)
        .collect_investigation_package(MACHINE, "c")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::RateLimited {
                retry_after: None,
                ..
            }
        ),
        "{error:?}"
    );

    // A documented 400 other than "already running".
    let invalid = r#"{"error":{"code":"InvalidRequestBody","message":"Request body is incorrect","target":"1fa6"}}"#;
    let (base, _) = hostile(move || answer(400, "application/json", invalid)).await;
    let error = hostile_client(&base)
        .collect_investigation_package(MACHINE, "c")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::InvalidRequest(e) if e.code == "InvalidRequestBody"),
        "{error:?}"
    );
}

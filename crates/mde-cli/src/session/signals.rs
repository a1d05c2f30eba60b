//! The signals that stop a run (Ctrl-C, SIGTERM) and the exit code each gives.

use crate::vocabulary::{INTERRUPTED, TERMINATED};

/// The signal that stopped the run, as its exit code (0: none yet).
static SIGNALLED: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Resolves at Ctrl-C or SIGTERM: a run stops sending, and lets what is in flight end.
pub(crate) async fn stop_signal() {
    let code = {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => tokio::select! {
                    _ = tokio::signal::ctrl_c() => INTERRUPTED,
                    _ = term.recv() => TERMINATED,
                },
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    INTERRUPTED
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            INTERRUPTED
        }
    };
    SIGNALLED.store(code, std::sync::atomic::Ordering::SeqCst);
}

/// The exit code of a run a signal stopped: 130 for Ctrl-C, 143 for SIGTERM.
pub(crate) fn stopped_code() -> u8 {
    match SIGNALLED.load(std::sync::atomic::Ordering::SeqCst) {
        0 => INTERRUPTED,
        code => code,
    }
}

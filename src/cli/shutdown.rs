//! The signals that stop a long-running `meridian` command: Ctrl-C
//! (SIGINT) and SIGTERM, which is what `cluster up` and `cluster down`
//! send to the processes they stop.

use std::future::Future;
use std::io;

/// A future that completes on the first SIGINT or SIGTERM. The handlers are
/// installed when this is called (inside a tokio runtime), not when the
/// future is first polled, so a signal that arrives in between is not lost.
#[cfg(unix)]
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("interrupted (SIGINT)"),
            _ = terminate.recv() => tracing::info!("terminated (SIGTERM)"),
        }
    })
}

/// A future that completes on the first Ctrl-C.
#[cfg(not(unix))]
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

//! The async runtime every command runs on.

use langsight_server::workers::RUNTIME_THREADS_VAR;

/// Builds the multi-thread runtime with `default_threads` (tokio's default, all the cores, when `None`), unless
/// the operator set `TOKIO_WORKER_THREADS`.
///
/// tokio reads that variable itself and panics on a value it cannot use (`0`, empty, not a number); it is read
/// here instead, so a bad value is refused with a message that says what to set.
pub(crate) fn build(default_threads: Option<usize>) -> Result<tokio::runtime::Runtime, String> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    match std::env::var_os(RUNTIME_THREADS_VAR) {
        Some(value) => {
            let threads = value.to_str().and_then(|s| s.trim().parse::<usize>().ok()).filter(|n| *n > 0).ok_or_else(
                || {
                    format!(
                        "{RUNTIME_THREADS_VAR}={value:?} is not a number of threads: set a positive whole number (e.g. 2), or unset it to use every core"
                    )
                },
            )?;
            builder.worker_threads(threads);
        }
        None => {
            if let Some(threads) = default_threads {
                builder.worker_threads(threads);
            }
        }
    }
    builder.enable_all().build().map_err(|e| format!("cannot start the async runtime: {e}"))
}

//! Concurrent identical reads share one query.
//!
//! The cost breakdown's session ranking reads thousands of session rows; ten dashboards asking for the same
//! window at the same moment would run it ten times over, each waiting behind the others on the database. A
//! [`SingleFlight`] runs it once for all the requests that arrive while it is in flight and forgets the result
//! when it completes, so it is a coalescer, not a cache: a request that starts after a computation finished
//! always starts a new one. A request that joins one already in flight may miss what was committed since that
//! computation started — data at most one computation (milliseconds) older than the request.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// Computations in flight by key.
pub struct SingleFlight<K, V> {
    in_flight: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight { in_flight: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> SingleFlight<K, V> {
    /// The value of `compute` for `key`, shared with every caller that asks for `key` while it runs. An error is
    /// not shared: the next waiter runs `compute` itself.
    pub async fn run<E, F, Fut>(&self, key: K, compute: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let cell = match self.in_flight.lock() {
            Ok(mut map) => map.entry(key.clone()).or_default().clone(),
            // A poisoned map (a panic while it was held, which its code cannot do) only loses the sharing.
            Err(_) => Arc::new(OnceCell::new()),
        };
        let result = cell.get_or_try_init(compute).await.cloned();
        if let Ok(mut map) = self.in_flight.lock() {
            if map.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                map.remove(&key);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_run_and_later_ones_run_again() {
        let flight: Arc<SingleFlight<&str, usize>> = Arc::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let call = |flight: Arc<SingleFlight<&'static str, usize>>,
                    runs: Arc<AtomicUsize>,
                    mut gate: tokio::sync::watch::Receiver<bool>| async move {
            flight
                .run("k", || async move {
                    let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                    let _ = gate.wait_for(|open| *open).await;
                    Ok::<_, ()>(n)
                })
                .await
        };
        let first = tokio::spawn(call(flight.clone(), runs.clone(), gate.clone()));
        // Wait until the first run is in flight, then join it.
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let second = tokio::spawn(call(flight.clone(), runs.clone(), gate.clone()));
        // The event that proves the second caller joined: the in-flight cell held by the map and both callers.
        let joined = async {
            while flight.in_flight.lock().map(|m| m.get("k").map_or(0, Arc::strong_count)).unwrap_or(0) < 3 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), joined)
            .await
            .expect("the second caller joins the run");
        release.send(true).unwrap();
        assert_eq!((first.await.unwrap(), second.await.unwrap()), (Ok(1), Ok(1)), "one run for both");
        assert_eq!(call(flight.clone(), runs.clone(), gate.clone()).await, Ok(2), "a later caller runs again");
        assert!(flight.in_flight.lock().unwrap().is_empty(), "nothing kept after the run");
    }

    #[tokio::test]
    async fn an_error_is_not_shared_with_later_callers() {
        let flight: SingleFlight<u8, u8> = SingleFlight::default();
        assert_eq!(flight.run(1, || async { Err::<u8, &str>("down") }).await, Err("down"));
        assert_eq!(flight.run(1, || async { Ok::<u8, &str>(7) }).await, Ok(7));
    }
}

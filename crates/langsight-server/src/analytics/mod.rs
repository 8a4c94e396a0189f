//! Analytics over stored spans — costs, monitoring, reliability, lineage — computed in Rust from
//! [`SpanFact`]s, so every storage backend gives the same figures from the same data (one implementation,
//! checked once against hand-computed expectations) instead of three dialects of SQL aggregates.
//!
//! Windows are read in pages ([`scan`]): memory is bounded by the page, not the window.

pub mod costs;
pub mod lineage;
pub mod links;
pub mod monitoring;
pub mod pricing;
pub mod reliability;
pub mod rolled;
pub mod single_flight;

use crate::error::ApiResult;
use crate::state::AppState;
use langsight_storage::{FactQuery, SpanFact};

const HOUR: i64 = 3_600_000_000;

/// Which spans an analytics request reads.
#[derive(Debug, Clone)]
pub struct Window {
    pub project_id: Option<String>,
    /// Also the spans sent without a project (blast radius and server views include them, as the original).
    pub include_global: bool,
    pub since: i64,
    pub until: i64,
}

impl Window {
    /// The last `hours` hours of `project_id` (or of every project), from the start of the hour `hours` ago:
    /// windows are whole hours so that they are exactly a set of rollup rows (docs/compatibility.md).
    pub fn last_hours(project_id: Option<String>, hours: i64) -> Window {
        Window::since(project_id, langsight_core::time::now_micros() - hours * HOUR)
    }

    /// From the start of the hour holding `since` until now.
    pub fn since(project_id: Option<String>, since: i64) -> Window {
        let now = langsight_core::time::now_micros();
        Window { project_id, include_global: false, since: since.div_euclid(HOUR) * HOUR, until: now + 1 }
    }
}

/// Facts read per page.
const PAGE: usize = 20_000;

/// Visits every span fact of the window in pages of [`PAGE`], so memory stays bounded however many spans the
/// window holds (the folds keep only their aggregates).
pub async fn scan(state: &AppState, w: &Window, mut visit: impl FnMut(&SpanFact)) -> ApiResult<()> {
    let mut after = None;
    loop {
        let page = state
            .storage
            .spans
            .span_facts(FactQuery {
                project_id: w.project_id.clone(),
                include_global: w.include_global,
                since: w.since,
                until: w.until,
                after: after.take(),
                limit: PAGE,
            })
            .await?;
        page.iter().for_each(&mut visit);
        if page.len() < PAGE {
            return Ok(());
        }
        after = page.last().map(|f| f.cursor.clone());
    }
}

/// The `q` quantile of `values` (sorted here) by linear interpolation between closest ranks; 0 when empty.
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let pos = q.clamp(0.0, 1.0) * (values.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
}

/// A 64-bit hash standing in for a span or session id in the folds: a window can hold millions of them and
/// only identity matters (a collision needs billions of ids to become likely).
pub fn key(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// `v` rounded to `dp` decimal places.
pub fn round(v: f64, dp: i32) -> f64 {
    let f = 10f64.powi(dp);
    (v * f).round() / f
}

/// The mean of `sum` over `n`, 0 for none.
pub fn mean(sum: f64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_ranks() {
        let mut v = vec![40.0, 10.0, 30.0, 20.0];
        assert_eq!(quantile(&mut v, 0.5), 25.0);
        assert_eq!(quantile(&mut v, 0.0), 10.0);
        assert_eq!(quantile(&mut v, 1.0), 40.0);
        assert!((quantile(&mut v, 0.99) - 39.7).abs() < 1e-9);
        assert_eq!(quantile(&mut [], 0.5), 0.0);
        assert_eq!(round(2.34567, 2), 2.35);
    }
}

//! The server scorecard: a grade A+…F from availability, security, reliability, schema stability and
//! performance, with the original's weights, notes and caps.

/// What the scorecard is computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreInputs {
    pub total_checks: u64,
    pub successful_checks: u64,
    pub consecutive_failures: u64,
    /// A scan of the server exists; without one the dimension scores 100 and says "no scan data", as the
    /// original does (and A+ stays out of reach).
    pub security_scanned: bool,
    /// Findings of the newest scan, per severity.
    pub critical_findings: u64,
    pub high_findings: u64,
    pub medium_findings: u64,
    pub low_findings: u64,
    pub error_rate_pct: f64,
    pub latency_cv: f64,
    pub breaking_drifts: u64,
    pub compatible_drifts: u64,
    pub current_p99_ms: Option<f64>,
    pub baseline_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dimension {
    pub name: &'static str,
    pub score: f64,
    pub weight: f64,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scorecard {
    pub grade: &'static str,
    pub score: f64,
    pub cap_applied: Option<String>,
    pub dimensions: Vec<Dimension>,
}

const GRADES: [&str; 6] = ["A+", "A", "B", "C", "D", "F"];

fn worse(a: &'static str, b: &'static str) -> &'static str {
    let rank = |g| GRADES.iter().position(|x| *x == g).unwrap_or(5);
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

pub fn compute(i: &ScoreInputs) -> Scorecard {
    let uptime = if i.total_checks > 0 { i.successful_checks as f64 / i.total_checks as f64 } else { 0.0 };
    let mut availability = Dimension { name: "availability", score: 0.0, weight: 0.30, notes: vec![] };
    if i.total_checks == 0 {
        availability.notes.push("No health checks recorded in the last 7 days".into());
    } else {
        availability.score = uptime * 100.0;
        availability.notes.push(if uptime >= 0.9999 {
            format!("Uptime {:.3}% (exceptional)", uptime * 100.0)
        } else if uptime >= 0.999 {
            format!("Uptime {:.2}%", uptime * 100.0)
        } else {
            format!("Uptime {:.1}%", uptime * 100.0)
        });
        if i.consecutive_failures > 0 {
            availability.notes.push(format!("{} consecutive failures", i.consecutive_failures));
        }
    }
    let mut security = Dimension { name: "security", score: 100.0, weight: 0.25, notes: vec![] };
    if !i.security_scanned {
        security.notes.push("No scan data — run langsight security-scan".into());
    } else {
        security.score = (100.0
            - 40.0 * i.critical_findings as f64
            - 20.0 * i.high_findings as f64
            - 10.0 * i.medium_findings as f64
            - 5.0 * i.low_findings as f64)
            .max(0.0);
        for (n, word) in [
            (i.critical_findings, "critical"),
            (i.high_findings, "high"),
            (i.medium_findings, "medium"),
            (i.low_findings, "low"),
        ] {
            if n > 0 {
                security.notes.push(format!("{n} {word} finding(s)"));
            }
        }
    }
    let error_score = (100.0 - 10.0 * i.error_rate_pct).max(0.0);
    let variance_score = (100.0 - 100.0 * i.latency_cv).max(0.0);
    let mut reliability =
        Dimension { name: "reliability", score: 0.6 * error_score + 0.4 * variance_score, weight: 0.20, notes: vec![] };
    if i.error_rate_pct > 0.0 {
        reliability.notes.push(format!("Error rate {:.1}%", i.error_rate_pct));
    }
    if i.latency_cv > 0.5 {
        reliability.notes.push(format!("High latency variance (CV={:.2})", i.latency_cv));
    }
    let drifts = i.breaking_drifts + i.compatible_drifts;
    let mut schema = Dimension { name: "schema_stability", score: 100.0, weight: 0.15, notes: vec![] };
    if drifts == 0 {
        schema.notes.push("No schema changes in 7 days".into());
    } else {
        schema.score = if i.breaking_drifts >= 3 {
            0.0
        } else if i.breaking_drifts >= 1 {
            (60.0 - 20.0 * i.breaking_drifts as f64).max(0.0)
        } else if drifts <= 2 {
            80.0
        } else if drifts <= 5 {
            60.0
        } else {
            30.0
        };
        schema.notes.push(format!("{} breaking, {} compatible change(s)", i.breaking_drifts, i.compatible_drifts));
    }
    let mut performance = Dimension { name: "performance", score: 100.0, weight: 0.10, notes: vec![] };
    match (i.current_p99_ms, i.baseline_p99_ms.filter(|b| *b > 0.0)) {
        (None, _) => performance.notes.push("No p99 data available".into()),
        (Some(p), None) => {
            performance.score = match p {
                p if p <= 200.0 => 100.0,
                p if p <= 500.0 => 80.0,
                p if p <= 1000.0 => 60.0,
                p if p <= 3000.0 => 40.0,
                _ => 20.0,
            };
            performance.notes.push(format!("p99 = {p:.0}ms (no baseline)"));
        }
        (Some(p), Some(b)) => {
            let r = p / b;
            performance.score = match r {
                r if r <= 1.0 => 100.0,
                r if r <= 1.5 => 80.0,
                r if r <= 2.0 => 60.0,
                r if r <= 3.0 => 40.0,
                r if r <= 5.0 => 20.0,
                _ => 0.0,
            };
        }
    }
    let dimensions = vec![availability, security, reliability, schema, performance];
    let score: f64 = dimensions.iter().map(|d| d.score * d.weight).sum();
    let mut grade = match score {
        s if s >= 90.0 => "A",
        s if s >= 80.0 => "B",
        s if s >= 65.0 => "C",
        s if s >= 50.0 => "D",
        _ => "F",
    };
    let mut cap: Option<String> = None;
    if i.consecutive_failures >= 10 {
        return Scorecard {
            grade: "F",
            score,
            cap_applied: Some("10+ consecutive failures — server is effectively unreachable".into()),
            dimensions,
        };
    }
    let mut apply = |limit: &'static str, reason: String, grade: &mut &'static str| {
        let capped = worse(grade, limit);
        if capped != *grade {
            *grade = capped;
            cap = Some(reason);
        }
    };
    if i.total_checks > 0 && uptime < 0.90 {
        apply("D", format!("Uptime below 90% ({:.1}%)", uptime * 100.0), &mut grade);
    }
    if i.critical_findings > 0 || i.high_findings > 0 {
        apply("B", "Critical/high security finding present".into(), &mut grade);
    }
    if let Some(p) = i.current_p99_ms.filter(|p| *p > 5000.0) {
        apply("B", format!("p99 latency {p:.0}ms > 5 s"), &mut grade);
    }
    if grade == "A"
        && i.security_scanned
        && uptime >= 0.999
        && i.critical_findings + i.high_findings == 0
        && drifts == 0
    {
        grade = "A+";
    }
    Scorecard { grade, score, cap_applied: cap, dimensions }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grades_and_caps() {
        let healthy =
            ScoreInputs { total_checks: 100, successful_checks: 100, current_p99_ms: Some(50.0), ..Default::default() };
        let s = compute(&healthy);
        assert_eq!((s.grade, s.score), ("A", 100.0));
        let flaky = ScoreInputs { successful_checks: 85, ..healthy.clone() };
        let s = compute(&flaky);
        assert_eq!(s.grade, "D", "uptime below 90% caps at D ({})", s.score);
        assert_eq!(s.cap_applied.as_deref(), Some("Uptime below 90% (85.0%)"));
        let dead = ScoreInputs { consecutive_failures: 10, ..healthy.clone() };
        assert_eq!(compute(&dead).grade, "F");
        let drifting = ScoreInputs { breaking_drifts: 1, ..healthy.clone() };
        let s = compute(&drifting);
        assert_eq!(s.dimensions[3].score, 40.0);
        assert_eq!(s.grade, "A", "91 points: {}", s.score);
        let scanned = ScoreInputs { security_scanned: true, ..healthy.clone() };
        assert_eq!(compute(&scanned).grade, "A+", "a clean scan and perfect health");
        let critical = ScoreInputs { critical_findings: 1, ..scanned.clone() };
        let s = compute(&critical);
        assert_eq!((s.grade, s.score), ("B", 90.0), "60 security points would still be an A: the cap holds it");
        assert_eq!(s.cap_applied.as_deref(), Some("Critical/high security finding present"));
        assert_eq!(s.dimensions[1].notes, ["1 critical finding(s)"]);
        let medium = ScoreInputs { medium_findings: 1, low_findings: 2, ..scanned };
        let s = compute(&medium);
        assert_eq!((s.grade, s.dimensions[1].score), ("A+", 80.0), "medium and low deduct without capping");
        assert_eq!(
            compute(&ScoreInputs::default()).dimensions[0].notes[0],
            "No health checks recorded in the last 7 days"
        );
    }
}

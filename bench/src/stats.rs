//! Percentiles and reports.

use serde::Serialize;
use serde_json::Value;

/// p50, p90, p99 and max of a sample, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Sample size.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
}

impl Percentiles {
    /// Percentiles of `values` (nearest rank).
    pub fn of(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let rank =
            |p: f64| values[((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        Self {
            count: values.len(),
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: *values.last().unwrap_or(&0.0),
        }
    }
}

/// What a scenario measured and any correctness violation it saw.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Its parameters.
    pub parameters: Value,
    /// The figures.
    pub metrics: Value,
    /// Correctness violations (gaps, duplicates, logs that differ); empty when all is well.
    pub violations: Vec<String>,
}

impl Report {
    /// A human-readable table of the figures.
    pub fn table(&self) -> String {
        let mut out = format!("== {} {}\n", self.scenario, self.parameters);
        flatten("", &self.metrics, &mut out);
        if self.violations.is_empty() {
            out.push_str("  correctness: ok (every subscriber checked against the final log: no violation)\n");
        } else {
            for v in &self.violations {
                out.push_str(&format!("  VIOLATION: {v}\n"));
            }
        }
        out
    }
}

fn flatten(prefix: &str, value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&name, value, out);
            }
        }
        Value::Number(n) => {
            let text = n
                .as_f64()
                .map(|f| {
                    if f.fract() == 0.0 {
                        format!("{f:.0}")
                    } else {
                        format!("{f:.3}")
                    }
                })
                .unwrap_or_default();
            out.push_str(&format!("  {prefix:<44} {text:>14}\n"));
        }
        other => out.push_str(&format!("  {prefix:<44} {other:>14}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!(
            (p.p50, p.p90, p.p99, p.max, p.count),
            (50.0, 90.0, 99.0, 100.0, 100)
        );
        assert_eq!(Percentiles::of(vec![]).count, 0);
    }
}

//! Scenario results: rows of figures per target, printed as a table with the
//! ratio first target / second target (chat-server / peer), and as JSON.

use serde_json::{Map, Value, json};

/// One figure of one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub metric: String,
    pub unit: &'static str,
    pub value: f64,
}

/// The figures one scenario produced against one target, in order.
#[derive(Debug, Clone, Default)]
pub struct Figures(pub Vec<Figure>);

impl Figures {
    pub fn push(&mut self, metric: impl Into<String>, unit: &'static str, value: f64) {
        self.0.push(Figure {
            metric: metric.into(),
            unit,
            value,
        });
    }

    pub fn get(&self, metric: &str) -> Option<f64> {
        self.0.iter().find(|f| f.metric == metric).map(|f| f.value)
    }
}

/// One row of a scenario table: a metric and its value per target.
#[derive(Debug, Clone)]
pub struct Row {
    pub metric: String,
    pub unit: &'static str,
    pub values: Vec<Option<f64>>,
}

/// A scenario's results against every target.
#[derive(Debug, Clone)]
pub struct ScenarioReport {
    pub scenario: String,
    pub targets: Vec<String>,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl ScenarioReport {
    /// Merges the figures of each target (in the targets' order) into rows.
    pub fn merge(scenario: &str, per_target: Vec<(String, Figures)>) -> Self {
        let targets: Vec<String> = per_target.iter().map(|(n, _)| n.clone()).collect();
        let mut rows: Vec<Row> = Vec::new();
        for (i, (_, figs)) in per_target.iter().enumerate() {
            for f in &figs.0 {
                let row = match rows.iter_mut().position(|r| r.metric == f.metric) {
                    Some(p) => &mut rows[p],
                    None => {
                        rows.push(Row {
                            metric: f.metric.clone(),
                            unit: f.unit,
                            values: vec![None; targets.len()],
                        });
                        rows.last_mut().expect("just pushed")
                    }
                };
                row.values[i] = Some(f.value);
            }
        }
        ScenarioReport {
            scenario: scenario.to_owned(),
            targets,
            rows,
            notes: Vec::new(),
        }
    }

    /// The value of `metric` for `target`.
    pub fn value(&self, metric: &str, target: &str) -> Option<f64> {
        let t = self.targets.iter().position(|n| n == target)?;
        self.rows.iter().find(|r| r.metric == metric)?.values[t]
    }

    /// Adds or replaces a row.
    pub fn set_row(&mut self, metric: &str, unit: &'static str, values: Vec<Option<f64>>) {
        self.rows.retain(|r| r.metric != metric);
        self.rows.push(Row {
            metric: metric.to_owned(),
            unit,
            values,
        });
    }

    fn ratio(&self, row: &Row) -> Option<f64> {
        if self.targets.len() < 2 {
            return None;
        }
        match (row.values[0], row.values[1]) {
            (Some(a), Some(b)) if b != 0.0 => Some(a / b),
            _ => None,
        }
    }

    /// The table, ready to print.
    pub fn table(&self) -> String {
        let mut head = vec!["metric".to_owned(), "unit".to_owned()];
        head.extend(self.targets.iter().cloned());
        if self.targets.len() >= 2 {
            head.push(format!("{}/{}", self.targets[0], self.targets[1]));
        }
        let mut lines = vec![head];
        for r in &self.rows {
            let mut l = vec![r.metric.clone(), r.unit.to_owned()];
            l.extend(r.values.iter().map(|v| v.map_or("-".to_owned(), fmt_num)));
            if self.targets.len() >= 2 {
                l.push(self.ratio(r).map_or("-".to_owned(), |x| format!("{x:.2}")));
            }
            lines.push(l);
        }
        let cols = lines[0].len();
        let width: Vec<usize> = (0..cols)
            .map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0))
            .collect();
        let mut out = format!("## {}\n", self.scenario);
        for (i, l) in lines.iter().enumerate() {
            let cells: Vec<String> = l
                .iter()
                .enumerate()
                .map(|(c, s)| {
                    if c < 2 {
                        format!("{s:<w$}", w = width[c])
                    } else {
                        format!("{s:>w$}", w = width[c])
                    }
                })
                .collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
            if i == 0 {
                let dashes: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
                out.push_str(&format!("|-{}-|\n", dashes.join("-|-")));
            }
        }
        for n in &self.notes {
            out.push_str(&format!("\nnote: {n}\n"));
        }
        out
    }

    /// The report as JSON.
    pub fn json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let mut values = Map::new();
                for (t, v) in self.targets.iter().zip(&r.values) {
                    values.insert(t.clone(), v.map_or(Value::Null, |x| json!(x)));
                }
                json!({ "metric": r.metric, "unit": r.unit, "values": values, "ratio": self.ratio(r) })
            })
            .collect();
        json!({ "scenario": self.scenario, "targets": self.targets, "rows": rows, "notes": self.notes })
    }
}

fn fmt_num(x: f64) -> String {
    if (x == x.trunc() && x.abs() < 1e15) || x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_ratio() {
        let mut a = Figures::default();
        a.push("x", "ms", 2.0);
        a.push("only-a", "n", 1.0);
        let mut b = Figures::default();
        b.push("x", "ms", 4.0);
        let r = ScenarioReport::merge("s", vec![("a".into(), a), ("b".into(), b)]);
        assert_eq!(r.value("x", "b"), Some(4.0));
        assert_eq!(r.value("only-a", "b"), None);
        assert_eq!(r.json()["rows"][0]["ratio"], json!(0.5));
        assert!(r.table().contains("0.50"));
    }
}

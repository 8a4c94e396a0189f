//! Terminal output: tables that fit the terminal, colour only on a terminal (and never with `NO_COLOR`), and a
//! progress line on stderr for long work. Data goes to stdout, everything else to stderr, so `--json` output
//! can be piped.

use std::io::IsTerminal;

/// Whether stdout gets ANSI colours.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `text` in an ANSI colour (`31` red, `32` green, `33` yellow, `2` dim…) when colours are on.
pub fn paint(text: &str, code: &str) -> String {
    if colour() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The colour of a status or severity word.
pub fn tone(word: &str) -> &'static str {
    match word.trim_start_matches(['✓', '✗', '⚠', '●', ' ']).to_ascii_lowercase().as_str() {
        "up" | "ok" | "success" | "clean" | "a" | "b" => "32",
        "down" | "critical" | "error" | "timeout" | "tool_failure" | "loop_detected" | "f" | "breached" => "31",
        "degraded" | "high" | "medium" | "warning" | "success_with_fallback" | "c" | "d" | "incomplete" => "33",
        _ => "0",
    }
}

/// Terminal width: `COLUMNS`, else the terminal's, else 120 (a pipe).
pub fn width() -> usize {
    if let Some(n) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse().ok()) {
        return n;
    }
    terminal_size::terminal_size().map(|(w, _)| w.0 as usize).unwrap_or(120)
}

/// A table whose `flex` column is shortened (with `…`) so every line fits the terminal.
pub struct Table {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
    /// Columns drawn in the status colour of their text.
    pub coloured: Vec<usize>,
    pub flex: usize,
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else if max <= 1 {
        "…".chars().take(max).collect()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

impl Table {
    pub fn new(headers: Vec<&'static str>, flex: usize) -> Table {
        Table { headers, rows: Vec::new(), coloured: Vec::new(), flex }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let total: usize = widths.iter().sum::<usize>() + 2 * (n.saturating_sub(1));
        let room = width();
        if total > room && self.flex < n {
            let others = total - widths[self.flex];
            widths[self.flex] = room.saturating_sub(others).max(8).min(widths[self.flex]);
        }
        let line = |cells: Vec<String>, header: bool| -> String {
            let mut out = String::new();
            for (i, w) in widths.iter().enumerate() {
                let text = cut(cells.get(i).map(String::as_str).unwrap_or(""), *w);
                let pad = w.saturating_sub(text.chars().count());
                let shown = if header {
                    paint(&text, "1")
                } else if self.coloured.contains(&i) {
                    paint(&text, tone(&text))
                } else {
                    text
                };
                out.push_str(&shown);
                if i + 1 < n {
                    out.push_str(&" ".repeat(pad + 2));
                }
            }
            out.trim_end().to_string()
        };
        let mut out = line(self.headers.iter().map(|h| h.to_string()).collect(), true);
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r.clone(), false));
            out.push('\n');
        }
        out
    }
}

/// A one-line progress indicator on stderr, only when stderr is a terminal.
pub struct Progress {
    on: bool,
    total: usize,
    what: &'static str,
}

impl Progress {
    pub fn new(what: &'static str, total: usize) -> Progress {
        Progress { on: std::io::stderr().is_terminal() && total > 1, total, what }
    }

    pub fn step(&self, done: usize) {
        if self.on {
            eprint!("\r{} {done}/{} …", self.what, self.total);
        }
    }

    pub fn done(&self) {
        if self.on {
            eprint!("\r{}\r", " ".repeat(self.what.len() + 16));
        }
    }
}

/// `1234 ms` below two seconds, else `1.2 s`.
pub fn duration(ms: f64) -> String {
    if ms < 2000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_shrink_their_flex_column_to_fit() {
        std::env::set_var("COLUMNS", "30");
        let mut t = Table::new(vec!["Name", "Description"], 1);
        t.row(vec!["a".into(), "a description far longer than thirty columns".into()]);
        let text = t.render();
        assert!(text.lines().all(|l| l.chars().count() <= 30), "{text}");
        assert!(text.contains('…'), "{text}");
        assert_eq!(duration(1500.0), "1500 ms");
        assert_eq!(duration(2500.0), "2.5 s");
    }
}

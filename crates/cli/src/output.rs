//! How results are shown: the stable `--json` shapes and the human tables.
//!
//! The `--json` documents are the API's wire types (`sandpit_server::wire`), converted by hand
//! from the use cases' types; the text is printed from the same documents, so a command's output
//! is the same whether it ran here or on a control plane.

use sandpit_domain::Name;
use sandpit_server::wire::artifacts::{Artifact, ArtifactList};
use sandpit_server::wire::biome::{BiomeDocument, CostDocument};
use sandpit_server::wire::deployments::DeploymentRecord;
use serde::Serialize;

pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// An error and its causes, outermost first, as one message.
fn error_message(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        // A context that already quotes its cause ("writing x: No space left on device") must
        // not be followed by the cause again.
        if !message.contains(&cause) {
            message.push_str(&format!(": {cause}"));
        }
    }
    message
}

pub fn print_error(error: &anyhow::Error) {
    eprintln!("error: {}", error_message(error));
}

/// A failure as JSON on stdout (`--json`): `{"error": {"code", "message", "hint"}}` — the kind
/// of failure (`not_found`, `conflict`, … see `sandpit_ops::error::ErrorKind`), the message and
/// its causes as `print_error` shows them up to the first hint, and the hints (or null).
pub fn print_json_error(error: &anyhow::Error) {
    let value = json_error(error);
    println!(
        "{}",
        serde_json::to_string_pretty(&value).expect("a JSON value always serialises")
    );
}

fn json_error(error: &anyhow::Error) -> serde_json::Value {
    let text = error_message(error);
    let (message, hint) = match text.split_once("\nhint: ") {
        Some((message, hint)) => (message.to_owned(), Some(hint.replace("\nhint: ", "\n"))),
        None => (text, None),
    };
    let code = sandpit_ops::error::kind_of(error).code();
    serde_json::json!({ "error": { "code": code, "message": message, "hint": hint } })
}

/// A progress line from the daemon, on stderr so `--json` output stays clean.
pub fn print_event(component: Option<&Name>, message: &str) {
    match component {
        Some(component) => eprintln!("  {component}: {message}"),
        None => eprintln!("  {message}"),
    }
}

/// `status BIOME --json`, and what `up`, `restart` and a rollout report: the API's document.
pub use sandpit_server::wire::biome::BiomeDocument as BiomeJson;

/// The progress lines a control plane collected for a change, printed after its answer as they
/// are printed while it happens locally.
pub fn print_events(events: &[sandpit_server::wire::deployments::ProgressLine]) {
    for event in events {
        match &event.component {
            Some(component) => eprintln!("  {component}: {}", event.message),
            None => eprintln!("  {}", event.message),
        }
    }
}

/// A version as tables show it: the commit cut to 12 hex digits, while a dirty version keeps its
/// whole `-dirty-<hex>`, so a build of uncommitted changes never passes for its commit.
pub fn short_version(version: &str) -> String {
    match version.split_once("-dirty-") {
        Some((commit, dirt)) => format!("{}-dirty-{dirt}", short_hex(commit)),
        None => short_hex(version).to_owned(),
    }
}

/// The first 12 characters of a hex string (a commit or a digest's hex).
fn short_hex(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

/// A digest as tables show it: `sha256:` and 12 hex digits.
fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algorithm, hex)) => format!("{algorithm}:{}", short_hex(hex)),
        None => short_hex(digest).to_owned(),
    }
}

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A text table whose columns are as wide as their widest cell, header included, so a long name
/// never pushes the rest of its row out of line. Notes are lines of their own under a row,
/// indented to the second column; they do not widen anything.
#[derive(Debug)]
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    lines: Vec<Line>,
    header: bool,
}

#[derive(Debug)]
enum Line {
    Row(Vec<String>),
    Note(String),
}

const GAP: &str = "  ";

impl Table {
    pub fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            columns: columns.to_vec(),
            lines: Vec::new(),
            header: true,
        }
    }

    /// A table printed without its header line (the columns still align).
    pub fn without_header(mut self) -> Table {
        self.header = false;
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len(), "one cell per column");
        self.lines.push(Line::Row(cells));
    }

    pub fn note(&mut self, text: String) {
        self.lines.push(Line::Note(text));
    }

    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .map(|(header, _)| {
                if self.header {
                    header.chars().count()
                } else {
                    0
                }
            })
            .collect();
        for line in &self.lines {
            if let Line::Row(cells) = line {
                for (width, cell) in widths.iter_mut().zip(cells) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        widths
    }

    fn render_row(&self, widths: &[usize], cells: &[String]) -> String {
        let mut line = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str(GAP);
            }
            let pad = width - cell.chars().count();
            match self.columns[i].1 {
                Align::Left => {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
                Align::Right => {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                }
            }
        }
        line.trim_end().to_owned()
    }

    /// The lines of the table, without trailing spaces.
    pub fn render(&self) -> Vec<String> {
        let widths = self.widths();
        let indent = " ".repeat(widths.first().map_or(0, |w| w + GAP.len()));
        let mut out = Vec::new();
        if self.header {
            let headers: Vec<String> = self.columns.iter().map(|(h, _)| h.to_string()).collect();
            out.push(self.render_row(&widths, &headers));
        }
        for line in &self.lines {
            match line {
                Line::Row(cells) => out.push(self.render_row(&widths, cells)),
                Line::Note(text) => out.push(format!("{indent}{text}")),
            }
        }
        out
    }

    pub fn print(&self) {
        for line in self.render() {
            println!("{line}");
        }
    }
}

/// One biome as `status` shows it; the database URL only when the document carries it
/// (`--show-secrets` on this machine).
pub fn print_biome(status: &BiomeDocument) {
    let sleeping = status
        .sleeping_since
        .as_deref()
        .map(|since| format!(" since {since}"))
        .unwrap_or_default();
    println!(
        "biome {}  env {}  at {}  {}{sleeping}",
        status.biome,
        status.env,
        short_version(&status.sha),
        status.state
    );
    if let Some(timeout) = &status.idle_timeout {
        let last = status
            .last_request
            .as_deref()
            .map(|at| format!("; last request {at}"))
            .unwrap_or_default();
        println!("sleeps after {timeout} without a request through the gateway{last}");
    }
    if let Some(cost) = &status.cost {
        let [processes, cpu, rss, database, models] = cost_cells(Some(cost));
        println!(
            "cost: {processes} processes, {cpu} CPU, {rss} RSS, database {database}, models {models}"
        );
    }
    if let Some(expires_at) = &status.expires_at {
        println!("{}", expires_line(expires_at));
    }
    if let Some(database) = &status.database {
        let url = database
            .url
            .as_deref()
            .unwrap_or("in DATABASE_URL (--show-secrets shows it)");
        println!(
            "database {} (from {}): {url}",
            database.name, database.template
        );
    }
    let mut table = Table::new(&[
        ("COMPONENT", Align::Left),
        ("KIND", Align::Left),
        ("STATE", Align::Left),
        ("PID", Align::Right),
        ("RESTARTS", Align::Right),
        ("URL", Align::Left),
        ("PUBLIC URL", Align::Left),
    ]);
    for c in &status.components {
        let state = match &c.borrowed_from {
            Some(lender) => format!("{} (borrowed from {lender})", c.state),
            None => c.state.clone(),
        };
        table.row(vec![
            c.name.clone(),
            c.kind.clone(),
            state,
            c.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            c.restarts.to_string(),
            c.url.clone().unwrap_or_else(|| "-".into()),
            c.public_url.clone().unwrap_or_else(|| "-".into()),
        ]);
        if let Some(detail) = &c.detail {
            if !c.is_good() {
                table.note(detail.clone());
            }
        }
    }
    table.print();
    for state in &status.terraform {
        let applied = state
            .applied_by
            .map(|id| format!(", applied by deployment #{id}"))
            .unwrap_or_default();
        println!(
            "terraform {}: {} resource instance(s){applied}",
            state.component, state.resources
        );
        if !state.outputs.is_empty() {
            let shown: Vec<String> = state
                .outputs
                .iter()
                .map(|name| {
                    if state.sensitive_outputs.contains(name) {
                        format!("{name} (secret)")
                    } else {
                        name.clone()
                    }
                })
                .collect();
            println!("  outputs: {}", shown.join(", "));
        }
        if let Some(lock) = &state.lock {
            println!(
                "  {lock}: if that run crashed, `sandpit tf unlock {} {}` clears it",
                status.biome, state.component
            );
        }
    }
    for pending in &status.pending {
        println!(
            "pending deployment #{} ({} of {} by {}): needs {} approval(s); `sandpit approve {}` or `sandpit reject {}`",
            pending.id,
            pending.kind,
            short_version(&pending.sha),
            pending.requested_by,
            pending.approvals_missing,
            pending.id,
            pending.id
        );
        for line in &pending.plan {
            println!("  terraform plan: {line}");
        }
    }
    let models = status.models.as_deref().unwrap_or_default();
    if models.is_empty() {
        return;
    }
    println!();
    match models.first().and_then(|m| m.endpoint.as_deref()) {
        Some(endpoint) => println!("models (SANDPIT_MODELS_URL {endpoint}):"),
        None => println!("models:"),
    }
    let mut table = Table::new(&[
        ("MODEL", Align::Left),
        ("ARTIFACT", Align::Left),
        ("DIGEST", Align::Left),
        ("SOURCE", Align::Left),
    ]);
    let is_base = status.biome == status.env;
    for m in models {
        let source = match m.source.as_str() {
            "biome" => "this biome's own".to_owned(),
            _ if is_base => format!("environment {}", status.env),
            _ => format!("environment {} (fallback)", status.env),
        };
        table.row(vec![
            m.name.clone(),
            artifact_shown(&m.artifact),
            short_digest(&m.digest),
            source,
        ]);
    }
    table.print();
}

/// An artifact file name with its version as tables show versions (a dirty suffix kept whole).
fn artifact_shown(artifact: &str) -> String {
    match sandpit_domain::ArtifactName::parse(artifact) {
        Some(name) => format!(
            "{}-{}.zip",
            name.component,
            short_version(&name.version.to_string())
        ),
        None => artifact.to_owned(),
    }
}

pub fn print_biome_list(biomes: &[sandpit_server::wire::biomes::BiomeSummary]) {
    let mut table = Table::new(&[
        ("BIOME", Align::Left),
        ("ENV", Align::Left),
        ("SHA", Align::Left),
        ("STATE", Align::Left),
        ("PROCS", Align::Right),
        ("CPU", Align::Right),
        ("RSS", Align::Right),
        ("DB", Align::Right),
        ("MODELS", Align::Right),
        ("EXPIRES", Align::Left),
    ]);
    for b in biomes {
        let mut row = vec![
            b.name.clone(),
            b.env.clone(),
            short_version(&b.sha),
            b.state.clone(),
            b.expires_at
                .as_deref()
                .and_then(sandpit_ops::expiry::relative_to_now)
                .unwrap_or_else(|| "-".to_owned()),
        ];
        row.extend(cost_cells(b.cost.as_ref()));
        table.row(row);
    }
    table.print();
}

/// A biome's cost as table cells: processes, CPU, RSS, database, models; `-` for what is not
/// known.
fn cost_cells(cost: Option<&CostDocument>) -> [String; 5] {
    let unknown = || "-".to_owned();
    let Some(cost) = cost else {
        return [unknown(), unknown(), unknown(), unknown(), unknown()];
    };
    [
        cost.processes.to_string(),
        cpu_time(cost.cpu_seconds),
        human_bytes(cost.rss_bytes),
        cost.database_bytes.map_or_else(unknown, human_bytes),
        cost.model_bytes.map_or_else(unknown, human_bytes),
    ]
}

/// A size as people read it: `512 B`, `12.3 KiB`, `12.3 MiB`, `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // 1023.96 KiB would print as `1024.0 KiB`: move up once it would round to 1024.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// CPU time as people read it: `0.42s`, `12.3s`, `4m05s`, `2h07m`.
pub fn cpu_time(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    // Below what rounds to 10.00, two decimals; from there one.
    if seconds < 9.995 {
        return format!("{seconds:.2}s");
    }
    if seconds < 60.0 {
        return format!("{seconds:.1}s");
    }
    let whole = seconds as u64;
    if whole < 3600 {
        return format!("{}m{:02}s", whole / 60, whole % 60);
    }
    format!("{}h{:02}m", whole / 3600, whole % 3600 / 60)
}

/// `expires in 6d23h (2026-12-10T11:00:00Z)`, or `expired 2h ago (…)`.
pub fn expires_line(expires_at: &str) -> String {
    match sandpit_ops::expiry::relative_to_now(expires_at) {
        Some(relative) if relative.starts_with("expired") => format!("{relative} ({expires_at})"),
        Some(relative) => format!("expires {relative} ({expires_at})"),
        None => format!("expires {expires_at}"),
    }
}

pub fn print_artifacts(list: &ArtifactList) {
    let mut table = Table::new(&[
        ("ARTIFACT", Align::Left),
        ("SIZE", Align::Right),
        ("DIGEST", Align::Left),
        ("INTEGRITY", Align::Left),
    ]);
    for a in &list.artifacts {
        let size = match (a.integrity.as_str(), a.size) {
            ("intact", Some(size)) => size.to_string(),
            _ => "-".to_owned(),
        };
        table.row(vec![
            a.name.clone(),
            size,
            short_digest(&a.digest),
            a.integrity.clone(),
        ]);
    }
    table.print();
    let problems: Vec<String> = list
        .artifacts
        .iter()
        .filter_map(Artifact::integrity_problem)
        .collect();
    for problem in &problems {
        eprintln!("warning: {problem}");
    }
    for record in &list.unreadable_records {
        eprintln!("warning: {}: {}", record.name, record.message);
    }
    if !problems.is_empty() || !list.unreadable_records.is_empty() {
        eprintln!("hint: `sandpit verify` checks every store and what runs; `sandpit verify --repair` replaces a damaged artifact with an intact copy from another store");
    }
}

/// `trace`'s "running now": where an artifact runs, one aligned line each.
pub fn print_running(running: &[sandpit_server::wire::trace::Running]) {
    let mut table = Table::new(&[
        ("TARGET", Align::Left),
        ("COMPONENT", Align::Left),
        ("AS", Align::Left),
        ("ARTIFACT", Align::Left),
        ("DIGEST", Align::Left),
    ]);
    for r in running {
        table.row(vec![
            format!("  {}", r.target),
            r.component.clone(),
            r.served_as.clone(),
            artifact_shown(&r.artifact),
            r.digest.clone(),
        ]);
    }
    table.without_header().print();
}

/// What `gc` removed (or, with `dry_run`, would remove), store by store, then each name.
pub fn print_garbage<'a>(
    stores: impl IntoIterator<Item = &'a sandpit_ops::gc::StoreGarbage>,
    dry_run: bool,
) {
    let stores: Vec<&sandpit_ops::gc::StoreGarbage> = stores.into_iter().collect();
    println!(
        "{}",
        if dry_run {
            "would remove (dry run, nothing was changed):"
        } else {
            "removed:"
        }
    );
    let mut table = Table::new(&[
        ("STORE", Align::Left),
        ("ARTIFACTS", Align::Right),
        ("BLOBS", Align::Right),
        ("BYTES", Align::Right),
        ("KEPT DIGESTS", Align::Right),
    ]);
    for g in &stores {
        table.row(vec![
            g.store.clone(),
            g.report.removed_names.len().to_string(),
            g.report.removed_blobs.len().to_string(),
            g.report.freed_bytes.to_string(),
            g.kept.to_string(),
        ]);
    }
    table.print();
    for g in &stores {
        for name in &g.report.removed_names {
            println!("  {}: {name}", g.store);
        }
    }
}

pub fn print_deployments(deployments: &[DeploymentRecord]) {
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("TARGET", Align::Left),
        ("SHA", Align::Left),
        ("STATE", Align::Left),
        ("KIND", Align::Left),
        ("REQUESTED BY", Align::Left),
        ("APPROVED BY", Align::Left),
    ]);
    for d in deployments {
        table.row(vec![
            d.id.to_string(),
            d.target.clone(),
            short_version(&d.sha),
            d.state.clone(),
            d.kind.clone(),
            d.requested_by.clone(),
            d.approved_by.join(", "),
        ]);
        // An overlay biome's borrowed components, by lender.
        let mut borrowed: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for c in &d.components {
            if let Some(lender) = &c.borrowed_from {
                borrowed.entry(lender).or_default().push(&c.name);
            }
        }
        for (lender, names) in borrowed {
            table.note(format!("borrowed from {lender}: {}", names.join(", ")));
        }
        // One line each: the full messages are in `--json`.
        for step in &d.steps {
            table.note(format!(
                "{}: {}",
                step.step.replace('_', " "),
                first_line(&step.message)
            ));
        }
        match (d.state.as_str(), &d.message) {
            ("failed" | "rejected", Some(message)) => {
                let said = d.steps.last().map(|s| first_line(&s.message));
                if said != Some(first_line(message)) {
                    table.note(format!("{}: {}", d.state, first_line(message)));
                }
            }
            // Why it was made (the reaper's removals say what they found).
            (_, Some(message)) => table.note(format!("why: {}", first_line(message))),
            _ => {}
        }
    }
    table.print();
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// What `deploy`, `promote`, `approve` and `rollback` print.
pub fn print_deploy_outcome(
    outcome: &sandpit_server::wire::deployments::DeploymentResult,
    json: bool,
) -> anyhow::Result<()> {
    print_events(&outcome.events);
    if json {
        let mut outcome = outcome.clone();
        outcome.events.clear();
        return print_json(&outcome);
    }
    let d = &outcome.deployment;
    if outcome.is_pending() {
        println!(
            "deployment #{} to {} is pending: it needs {} more approval(s) from someone other than {} (`sandpit approve {}`)",
            d.id,
            d.target,
            d.approvals_missing(),
            d.requested_by,
            d.id
        );
        // What the approvers approve: each terraform component's saved plan, every address.
        for step in &d.steps {
            println!("  {}: {}", step.step.replace('_', " "), step.message);
        }
        return Ok(());
    }
    match &outcome.status {
        Some(status) => {
            println!(
                "deployment #{} to {} {}: {} at {}",
                d.id, d.target, d.state, status.state, d.sha
            );
            for step in &d.steps {
                println!(
                    "  {}: {}",
                    step.step.replace('_', " "),
                    first_line(&step.message)
                );
            }
            let mut urls =
                Table::new(&[("COMPONENT", Align::Left), ("URL", Align::Left)]).without_header();
            for component in status.components.iter().filter(|c| c.url.is_some()) {
                urls.row(vec![
                    format!("  {}", component.name),
                    component.url.clone().unwrap_or_default(),
                ]);
            }
            urls.print();
        }
        None => println!(
            "deployment #{} ({}) to {} {}",
            d.id,
            d.kind_described(),
            d.target,
            d.state
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_error_has_its_kind_its_message_and_its_hints_apart() {
        let lookup = sandpit_ops::error::failure(
            sandpit_ops::error::ErrorKind::NotFound,
            "there is no biome `nope` in project `p`\nhint: did you mean `nop`?\nhint: `sandpit ls` lists them",
        );
        let value = json_error(&lookup);
        assert_eq!(value["error"]["code"], "not_found");
        assert_eq!(
            value["error"]["message"],
            "there is no biome `nope` in project `p`"
        );
        assert_eq!(
            value["error"]["hint"],
            "did you mean `nop`?\n`sandpit ls` lists them"
        );
        let plain = json_error(&anyhow::anyhow!("disk on fire"));
        assert_eq!(plain["error"]["code"], "internal");
        assert_eq!(plain["error"]["message"], "disk on fire");
        assert!(plain["error"]["hint"].is_null());
    }

    #[test]
    fn sizes_and_cpu_times_read_as_people_read_them() {
        for (bytes, shown) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (12_595, "12.3 KiB"),
            (1024 * 1024 - 1, "1.0 MiB"),
            (12_897_485, "12.3 MiB"),
            (3 * 1024 * 1024 * 1024 / 2, "1.5 GiB"),
            (5 * 1024u64.pow(4), "5.0 TiB"),
            (2048 * 1024u64.pow(4), "2048.0 TiB"),
        ] {
            assert_eq!(human_bytes(bytes), shown, "{bytes}");
        }
        for (seconds, shown) in [
            (0.0, "0.00s"),
            (0.423, "0.42s"),
            (9.994, "9.99s"),
            (9.999, "10.0s"),
            (12.34, "12.3s"),
            (245.9, "4m05s"),
            (7620.0, "2h07m"),
            (-1.0, "0.00s"),
        ] {
            assert_eq!(cpu_time(seconds), shown, "{seconds}");
        }
        let cost = CostDocument {
            processes: 2,
            cpu_seconds: 0.5,
            rss_bytes: 12_897_485,
            database_bytes: None,
            model_bytes: Some(0),
        };
        assert_eq!(
            cost_cells(Some(&cost)),
            ["2", "0.50s", "12.3 MiB", "-", "0 B"].map(String::from)
        );
        assert_eq!(
            cost_cells(None),
            ["-", "-", "-", "-", "-"].map(String::from)
        );
    }

    #[test]
    fn versions_are_shortened_but_never_lose_their_dirty_suffix() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        for (version, shown) in [
            (sha.to_owned(), "0123456789ab".to_owned()),
            (
                format!("{sha}-dirty-fedcba987654"),
                "0123456789ab-dirty-fedcba987654".to_owned(),
            ),
            ("abc".to_owned(), "abc".to_owned()),
            (String::new(), String::new()),
        ] {
            assert_eq!(short_version(&version), shown, "{version}");
        }
        assert_eq!(
            artifact_shown(&format!("web-{sha}-dirty-fedcba987654.zip")),
            "web-0123456789ab-dirty-fedcba987654.zip"
        );
        assert_eq!(artifact_shown("not an artifact"), "not an artifact");
        assert_eq!(
            short_digest(&format!("sha256:{}", "a".repeat(64))),
            "sha256:aaaaaaaaaaaa"
        );
    }

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut table = Table::new(&[
            ("NAME", Align::Left),
            ("N", Align::Right),
            ("LAST", Align::Left),
        ]);
        let long = "a-forty-character-biome-name-for-testing";
        table.row(vec![long.into(), "7".into(), "x".into()]);
        table.note("a note under the row".into());
        table.row(vec!["b".into(), "1234".into(), "".into()]);
        let lines = table.render();
        assert_eq!(
            lines,
            [
                format!("NAME{}     N  LAST", " ".repeat(long.len() - 4)),
                format!("{long}     7  x"),
                format!("{}a note under the row", " ".repeat(long.len() + 2)),
                format!("b{}  1234", " ".repeat(long.len() - 1)),
            ]
        );
        // Every column starts where its header does.
        let header = &lines[0];
        let last = header.find("LAST").unwrap();
        assert_eq!(lines[1].find('x'), Some(last));
        let headless = {
            let mut t = Table::new(&[("A", Align::Left), ("B", Align::Left)]).without_header();
            t.row(vec!["x".into(), "y".into()]);
            t.render()
        };
        assert_eq!(headless, ["x  y"]);
    }
}

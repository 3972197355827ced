//! When biomes expire: `up` sets `[biomes] ttl` (of the commit it ran) from now, `sandpit
//! extend BIOME SPAN` moves it to `max(expiry, now) + SPAN`; both append a row to the state
//! store's `biome_expiries` and the newest row wins. `ls` and `status` show it; the reaper
//! (`crate::reap`) removes what is past it.

use std::time::{Duration, SystemTime};

use sandpit_build::git::Repository;
use sandpit_domain::{Name, Span};
use sandpit_state::{BiomeSource, DeploymentKind, DeploymentState, Expiry, ExpiryCause, NewExpiry};

use crate::deployment::{requester, state_store};
use crate::Context;

/// An RFC 3339 time as the state store keeps expiries (whole seconds, UTC).
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// The time an expiry's `expires_at` names; `None` when it is not a time (never written so).
pub fn expires_at(expiry: &Expiry) -> Option<SystemTime> {
    humantime::parse_rfc3339(&expiry.expires_at).ok()
}

/// How a listing shows an expiry relative to `now` (pure): `in 6d23h`, `expired 2h ago`.
pub fn relative(expires_at: SystemTime, now: SystemTime) -> String {
    match expires_at.duration_since(now) {
        Ok(left) if left > Duration::ZERO => {
            format!("in {}", sandpit_domain::span::approximately(left.as_secs()))
        }
        _ => {
            let ago = now.duration_since(expires_at).unwrap_or_default();
            format!(
                "expired {} ago",
                sandpit_domain::span::approximately(ago.as_secs())
            )
        }
    }
}

/// [`relative`] of an RFC 3339 `expires_at` as written in a document; `None` when it is not one.
pub fn relative_to_now(expires_at: &str) -> Option<String> {
    let at = humantime::parse_rfc3339(expires_at).ok()?;
    Some(relative(at, SystemTime::now()))
}

/// What set an expiry, for messages: `ttl 7d after the up of 2026-12-03T10:00:00Z` or
/// `extended by alice at 2026-12-04T09:00:00Z`.
pub fn cause(expiry: &Expiry) -> String {
    // The store's times carry milliseconds; whole seconds read better in a message.
    let at = |time: &str| {
        humantime::parse_rfc3339(time)
            .map(rfc3339)
            .unwrap_or_else(|_| time.to_owned())
    };
    match expiry.reason {
        sandpit_state::ExpiryReason::Up => format!(
            "ttl {} after the up of {}",
            Span::from_secs(expiry.ttl_secs.unwrap_or_default()),
            at(&expiry.at)
        ),
        sandpit_state::ExpiryReason::Extend => {
            format!("extended by {} at {}", expiry.requested_by, at(&expiry.at))
        }
    }
}

/// After a successful `up` of `biome` (also one that found it already running exactly that):
/// it expires the commit's `[biomes] ttl` from now, and its definition is read from `repo` at
/// `treeish` by whoever removes it later.
pub fn record_up(
    context: &Context,
    spec: &sandpit_spec::Spec,
    env: &Name,
    biome: &Name,
    repo: &Repository,
    treeish: &str,
) -> anyhow::Result<Expiry> {
    let ttl = spec.biomes.ttl;
    let mut state = state_store(context)?;
    let deployment = state
        .current(
            spec.project.name.as_str(),
            &crate::deployment::target_label(env, biome),
        )?
        .map(|d| d.id);
    let repository = if repo.is_bare() || repo.prefix().is_empty() {
        repo.root().to_path_buf()
    } else {
        repo.root().join(repo.prefix())
    };
    let recorded = state.record_expiry(&NewExpiry {
        project: spec.project.name.to_string(),
        env: env.to_string(),
        biome: biome.to_string(),
        expires_at: rfc3339(SystemTime::now() + ttl.duration()),
        requested_by: requester(context)?,
        cause: ExpiryCause::Up {
            ttl_secs: ttl.as_secs(),
            deployment,
            source: BiomeSource {
                repository: repository.display().to_string(),
                bare: repo.is_bare(),
                revision: treeish.to_owned(),
            },
        },
    });
    recorded.map_err(|e| {
        anyhow::Error::from(e).context(format!(
            "`{biome}` is up, but its expiry was not recorded\nhint: `sandpit up {biome}` again records it"
        ))
    })
}

/// The current expiry of every biome of `project` (taken down ones included; see
/// [`exists`]).
pub fn of_project(context: &Context, project: &Name) -> anyhow::Result<Vec<Expiry>> {
    Ok(state_store(context)?.expiries(project.as_str())?)
}

/// The current expiry of `biome` in `env`.
pub fn of_biome(
    context: &Context,
    project: &Name,
    env: &Name,
    biome: &Name,
) -> anyhow::Result<Option<Expiry>> {
    Ok(state_store(context)?.expiry(project.as_str(), env.as_str(), biome.as_str())?)
}

/// Whether the biome a deployment history ends with still exists: its newest deployment is
/// not a `down` that succeeded (a failed `down` leaves it, to be finished).
pub fn exists(newest: Option<&sandpit_state::Deployment>) -> bool {
    newest
        .is_some_and(|d| !(d.kind == DeploymentKind::Down && d.state == DeploymentState::Succeeded))
}

/// The expiry `extend` sets (pure): `span` after the current expiry, or after `now` when it
/// has passed (or none was recorded).
pub fn extended(current: Option<SystemTime>, now: SystemTime, span: Span) -> SystemTime {
    current.filter(|at| *at > now).unwrap_or(now) + span.duration()
}

/// What `extend` did.
#[derive(Debug, Clone)]
pub struct ExtendOutcome {
    pub biome: Name,
    pub env: Name,
    /// The expiry before (RFC 3339; `None`: none was recorded).
    pub previous: Option<String>,
    pub expiry: Expiry,
}

/// `sandpit extend BIOME SPAN`: the biome (resolved like `status`'s) expires `span` later
/// than it would, counted from now if it already expired. Environment bases never expire.
pub async fn extend(context: &Context, raw: &str, span: Span) -> anyhow::Result<ExtendOutcome> {
    let spec = context.source.spec()?;
    let project = spec.project.name.clone();
    let target = crate::target::resolve(context, &spec, Some(raw))?;
    let biome = target.name.clone();
    if target.is_base(&spec) {
        crate::fail!(
            InvalidInput,
            "`{biome}` is an environment: its base does not expire, only biomes do\nhint: `sandpit ls` lists the biomes"
        );
    }
    let mut state = state_store(context)?;
    // The biome's newest deployment says whether it still exists and where it lives.
    let history = state.history(project.as_str(), None)?;
    let newest = history.iter().find(|d| {
        d.biome.as_deref() == Some(biome.as_str())
            && target.env.as_ref().is_none_or(|env| env.as_str() == d.env)
    });
    if !exists(newest) {
        // The biomes that exist, for the did-you-mean: each one's newest deployment (the
        // history is newest first) is not a finished `down`.
        let mut newest_of: std::collections::BTreeMap<&str, &sandpit_state::Deployment> =
            Default::default();
        for d in &history {
            if let Some(name) = d.biome.as_deref() {
                newest_of.entry(name).or_insert(d);
            }
        }
        let known: Vec<String> = newest_of
            .into_iter()
            .filter(|(_, d)| exists(Some(d)))
            .map(|(name, _)| name.to_owned())
            .collect();
        let hint = crate::target::did_you_mean_biome(&known, &biome)
            .unwrap_or_else(|| "`sandpit ls` lists the biomes".to_owned());
        crate::fail!(
            NotFound,
            "there is no biome `{biome}` in project `{project}`\nhint: {hint}"
        );
    }
    let env = Name::parse(&newest.expect("exists").env)?;
    let current = state.expiry(project.as_str(), env.as_str(), biome.as_str())?;
    let now = SystemTime::now();
    let until = extended(current.as_ref().and_then(expires_at), now, span);
    let expiry = state.record_expiry(&NewExpiry {
        project: project.to_string(),
        env: env.to_string(),
        biome: biome.to_string(),
        expires_at: rfc3339(until),
        requested_by: requester(context)?,
        cause: ExpiryCause::Extend,
    })?;
    Ok(ExtendOutcome {
        biome,
        env,
        previous: current.map(|c| c.expires_at),
        expiry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn expiries_are_shown_relative_to_now() {
        let now = at(1_000_000);
        for (expires, shown) in [
            (1_000_000 + 6 * 86_400 + 23 * 3_600 + 59, "in 6d23h"),
            (1_000_000 + 90, "in 1m30s"),
            (1_000_000 + 1, "in 1s"),
            (1_000_000, "expired 0s ago"),
            (1_000_000 - 2 * 3_600 - 5, "expired 2h5s ago"),
            (1_000_000 - 3 * 86_400, "expired 3d ago"),
        ] {
            assert_eq!(relative(at(expires), now), shown, "{expires}");
        }
    }

    #[test]
    fn an_extension_counts_from_the_expiry_or_from_now_once_it_passed() {
        let now = at(1_000_000);
        let three_days = Span::parse("3d").unwrap();
        // (current expiry, expected)
        for (current, expected) in [
            (Some(1_000_000 + 3_600), 1_000_000 + 3_600 + 259_200),
            (Some(1_000_000 - 3_600), 1_000_000 + 259_200),
            (Some(1_000_000), 1_000_000 + 259_200),
            (None, 1_000_000 + 259_200),
        ] {
            assert_eq!(
                extended(current.map(at), now, three_days),
                at(expected),
                "{current:?}"
            );
        }
    }
}

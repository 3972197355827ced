//! The SQL files a deployment reads besides its artifacts (the `[database]` migrations, seed and
//! shared data set): from the commit in git, as on the control plane, or carried in a signed
//! manifest (path → text), as on an environment agent that has no git.

use std::collections::BTreeMap;

use anyhow::bail;
use sandpit_build::git::Repository;
use sandpit_database::{MigrationFile, MigrationSet};
use sandpit_spec::Spec;

/// Where the SQL files come from.
#[derive(Clone, Copy)]
pub enum SqlSource<'a> {
    /// The commit (or snapshot tree) `treeish` of `repo`, below the repository's project prefix.
    Git {
        repo: &'a Repository,
        treeish: &'a str,
    },
    /// Files carried with the deployment, by their path relative to the project's directory
    /// (as [`carried`] lists them).
    Carried(&'a BTreeMap<String, String>),
}

/// A path `sandpit.toml` names, as a key of the carried files: without `./` in front or `/`
/// at the end, so the control plane and the agent agree on it.
fn carried_path(path: &str) -> String {
    let mut path = path.trim_end_matches('/');
    while let Some(rest) = path.strip_prefix("./") {
        path = rest;
    }
    path.to_owned()
}

impl SqlSource<'_> {
    /// The names of the files directly in `dir` (relative to the project), `None` when there is
    /// no such directory.
    fn list(&self, dir: &str) -> anyhow::Result<Option<Vec<String>>> {
        match self {
            SqlSource::Git { repo, treeish } => Ok(repo.list_files(treeish, &in_repo(repo, dir))?),
            SqlSource::Carried(files) => {
                let prefix = format!("{}/", carried_path(dir));
                let names: Vec<String> = files
                    .keys()
                    .filter_map(|path| path.strip_prefix(&prefix))
                    .filter(|name| !name.contains('/'))
                    .map(str::to_owned)
                    .collect();
                Ok((!names.is_empty()).then_some(names))
            }
        }
    }

    /// The text of the file at `path` (relative to the project), `None` when it is missing.
    fn read(&self, path: &str) -> anyhow::Result<Option<String>> {
        match self {
            SqlSource::Git { repo, treeish } => Ok(repo.read_file(treeish, &in_repo(repo, path))?),
            SqlSource::Carried(files) => Ok(files.get(&carried_path(path)).cloned()),
        }
    }

    /// Where the files were looked for, for messages.
    fn place(&self) -> &'static str {
        match self {
            SqlSource::Git { .. } => "the commit",
            SqlSource::Carried(_) => "the files the manifest carries",
        }
    }
}

fn in_repo(repo: &Repository, path: &str) -> String {
    if repo.prefix().is_empty() {
        path.to_owned()
    } else {
        format!("{}/{path}", repo.prefix())
    }
}

/// The migrations, seed and shared data set of `spec`'s `[database]` as `source` has them.
pub fn read_sql(
    source: &SqlSource<'_>,
    spec: &Spec,
) -> anyhow::Result<(MigrationSet, Option<MigrationFile>)> {
    let database = spec.database.as_ref().expect("checked by the caller");
    let place = source.place();
    let names = source.list(&database.migrations)?.ok_or_else(|| {
        anyhow::anyhow!(
            "[database] migrations = \"{}\" is not a directory in {place}\nhint: create it with at least one .sql file and commit it",
            database.migrations
        )
    })?;
    let mut files = Vec::new();
    for name in names.into_iter().filter(|n| n.ends_with(".sql")) {
        let sql = source
            .read(&format!("{}/{name}", database.migrations))?
            .unwrap_or_default();
        files.push((name, sql));
    }
    let read_named = |path: &Option<String>,
                      key: &str|
     -> anyhow::Result<Option<(String, String)>> {
        match path {
            None => Ok(None),
            Some(path) => match source.read(path)? {
                Some(sql) => Ok(Some((path.clone(), sql))),
                None => bail!("[database] {key} = \"{path}\" does not exist in {place}\nhint: commit it, or remove the key"),
            },
        }
    };
    let seed = read_named(&database.seed, "seed")?;
    let shared =
        read_named(&database.shared, "shared")?.map(|(name, sql)| MigrationFile::new(name, sql));
    Ok((MigrationSet::from_files(files, seed), shared))
}

/// Every SQL file of `spec`'s `[database]` in `source`, by its path relative to the project:
/// what a manifest carries so that [`SqlSource::Carried`] reads the same set. Empty without a
/// `[database]`.
pub fn carried(source: &SqlSource<'_>, spec: &Spec) -> anyhow::Result<BTreeMap<String, String>> {
    let Some(database) = &spec.database else {
        return Ok(BTreeMap::new());
    };
    let (migrations, shared) = read_sql(source, spec)?;
    let mut files = BTreeMap::new();
    for file in &migrations.files {
        files.insert(
            carried_path(&format!("{}/{}", database.migrations, file.name)),
            file.sql.clone(),
        );
    }
    if let (Some(path), Some(seed)) = (&database.seed, &migrations.seed) {
        files.insert(carried_path(path), seed.sql.clone());
    }
    if let (Some(path), Some(shared)) = (&database.shared, &shared) {
        files.insert(carried_path(path), shared.sql.clone());
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const SPEC: &str = "[project]\nname = \"shop\"\n\n[database]\nmigrations = \"./db/migrations/\"\nseed = \"db/seed.sql\"\n\n[services.api]\npath = \"api\"\nrun = \"true\"\n";

    fn spec() -> Spec {
        crate::project::parse_spec(SPEC).unwrap()
    }

    fn names(set: &MigrationSet) -> Vec<(&str, &str)> {
        set.files
            .iter()
            .map(|f| (f.name.as_str(), f.sql.as_str()))
            .collect()
    }

    /// A repository with the project in `project/` (a prefix), committed.
    fn repository(dir: &std::path::Path) -> Repository {
        let project = dir.join("project");
        std::fs::create_dir_all(project.join("db/migrations")).unwrap();
        std::fs::write(project.join("sandpit.toml"), SPEC).unwrap();
        std::fs::write(project.join("db/migrations/10_b.sql"), "create table b ();").unwrap();
        std::fs::write(project.join("db/migrations/2_a.sql"), "create table a ();").unwrap();
        std::fs::write(project.join("db/migrations/notes.txt"), "not sql").unwrap();
        std::fs::write(project.join("db/seed.sql"), "insert into a default values;").unwrap();
        let env = [
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("HOME", dir.to_str().unwrap()),
            ("GIT_CONFIG_NOSYSTEM", "1"),
            ("GIT_AUTHOR_NAME", "t"),
            ("GIT_AUTHOR_EMAIL", "t@example.com"),
            ("GIT_COMMITTER_NAME", "t"),
            ("GIT_COMMITTER_EMAIL", "t@example.com"),
        ];
        for args in [
            &["init", "-q", "-b", "main"][..],
            &["add", "."],
            &["commit", "-q", "-m", "init"],
        ] {
            let output = Command::new("git")
                .env_clear()
                .envs(env)
                .arg("-C")
                .arg(dir)
                .args(args)
                .output()
                .unwrap();
            assert!(output.status.success(), "git {args:?}: {output:?}");
        }
        let base_env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Repository::discover_with_env(&project, base_env).unwrap()
    }

    #[test]
    fn the_sql_reads_the_same_from_git_and_from_the_files_carried_from_it() {
        let temp = tempfile::tempdir().unwrap();
        let repo = repository(temp.path());
        let git = SqlSource::Git {
            repo: &repo,
            treeish: "HEAD",
        };
        let (from_git, shared) = read_sql(&git, &spec()).unwrap();
        assert!(shared.is_none());
        assert_eq!(
            names(&from_git),
            [
                ("2_a.sql", "create table a ();"),
                ("10_b.sql", "create table b ();")
            ]
        );
        assert_eq!(
            from_git.seed.as_ref().map(|s| s.sql.as_str()),
            Some("insert into a default values;")
        );

        let files = carried(&git, &spec()).unwrap();
        assert_eq!(
            files.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "db/migrations/10_b.sql",
                "db/migrations/2_a.sql",
                "db/seed.sql"
            ],
            "paths relative to the project, without `./`, non-SQL files left out"
        );
        let (from_files, _) = read_sql(&SqlSource::Carried(&files), &spec()).unwrap();
        assert_eq!(names(&from_files), names(&from_git));
        assert_eq!(from_files.seed, from_git.seed);
        assert_eq!(from_files.content_hash(), from_git.content_hash());
    }

    #[test]
    fn missing_carried_files_say_what_is_missing_and_where() {
        let none = BTreeMap::new();
        let error = read_sql(&SqlSource::Carried(&none), &spec())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("migrations = \"db/migrations\" is not a directory in the files the manifest carries"),
            "{error}"
        );
        let only_migrations: BTreeMap<String, String> =
            [("db/migrations/1.sql".to_owned(), "select 1;".to_owned())]
                .into_iter()
                .collect();
        let error = read_sql(&SqlSource::Carried(&only_migrations), &spec())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                "seed = \"db/seed.sql\" does not exist in the files the manifest carries"
            ),
            "{error}"
        );
    }
}

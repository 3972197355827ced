//! `sandpit projects add|list|show|remove`: the projects a control plane builds from git,
//! through the server.

use std::process::ExitCode;

use reqwest::Method;
use sandpit_server::wire::{AddProjectRequest, Project, ProjectList, RemovedProject};

use crate::output::{self, Align, Table};
use crate::remote::{self, Remote};
use crate::settings::RemoteSettings;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Register a project (admin): its repository is mirrored, and the branch head's
    /// sandpit.toml must be valid and name the project.
    Add {
        /// The project's name, as its sandpit.toml `[project] name` says.
        #[arg(value_parser = crate::arguments::name)]
        name: String,
        /// Where the server fetches it from (https://, ssh://, file:// or a path on the server).
        #[arg(long, value_name = "URL")]
        git: String,
        /// The branch pipelines build by default.
        #[arg(long, value_name = "BRANCH", default_value = "main")]
        branch: String,
        /// The secret its webhooks carry (GitLab's secret token, GitHub's webhook secret);
        /// without it one is generated and shown once.
        #[arg(long, value_name = "SECRET")]
        webhook_secret: Option<String>,
        /// Run merge requests from forks: their code on this server's machines.
        #[arg(long)]
        allow_forks: bool,
    },
    /// List the registered projects.
    List,
    /// Show one project: its repository, branch, last fetched head and webhook URLs.
    Show {
        /// The project's name.
        name: String,
    },
    /// Unregister a project (admin); its artifacts and deployment history are kept.
    Remove {
        /// The project's name.
        name: String,
    },
}

pub async fn exec(settings: &RemoteSettings, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_settings(settings)?;
    match args.action {
        Action::Add {
            name,
            git,
            branch,
            webhook_secret,
            allow_forks,
        } => {
            let generated = webhook_secret.is_none();
            let request = AddProjectRequest {
                name,
                git,
                branch,
                webhook_secret,
                allow_forks,
            };
            let added: Project = remote
                .call(Method::POST, "/api/v1/projects", Some(&request))
                .await?;
            if json {
                output::print_json(&added)?;
            } else {
                println!(
                    "added project {} from {} (branch {}, head {})",
                    added.name,
                    added.git,
                    added.branch,
                    added
                        .head
                        .as_deref()
                        .map_or("-".to_owned(), output::short_version)
                );
                print_hooks(&remote, &added);
                if let (true, Some(secret)) = (generated, &added.webhook_secret) {
                    println!("  webhook secret (shown once; GitLab's \"Secret token\", GitHub's \"Secret\"):");
                    println!("    {secret}");
                }
            }
        }
        Action::List => {
            let list: ProjectList = remote
                .call(Method::GET, "/api/v1/projects", None::<&()>)
                .await?;
            if json {
                output::print_json(&list)?;
            } else {
                print_projects(&list.projects);
            }
        }
        Action::Show { name } => {
            let path = remote::project_path(&name);
            let project: Project = remote.call(Method::GET, &path, None::<&()>).await?;
            if json {
                output::print_json(&project)?;
            } else {
                print_projects(std::slice::from_ref(&project));
                print_hooks(&remote, &project);
            }
        }
        Action::Remove { name } => {
            let path = remote::project_path(&name);
            let removed: RemovedProject = remote.call(Method::DELETE, &path, None::<&()>).await?;
            if json {
                output::print_json(&removed)?;
            } else {
                println!("{}", removed.message);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_hooks(remote: &Remote, project: &Project) {
    println!(
        "  GitLab webhook: {}{}",
        remote.server(),
        project.hooks.gitlab
    );
    println!(
        "  GitHub webhook: {}{}",
        remote.server(),
        project.hooks.github
    );
    println!(
        "  merge requests from forks: {}",
        if project.allow_forks {
            "run"
        } else {
            "ignored"
        }
    );
}

fn print_projects(projects: &[Project]) {
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("GIT", Align::Left),
        ("BRANCH", Align::Left),
        ("HEAD", Align::Left),
        ("FETCHED", Align::Left),
        ("ADDED BY", Align::Left),
    ]);
    for project in projects {
        table.row(vec![
            project.name.clone(),
            project.git.clone(),
            project.branch.clone(),
            project
                .head
                .as_deref()
                .map_or("-".to_owned(), output::short_version),
            project.fetched_at.clone().unwrap_or_else(|| "-".to_owned()),
            project.added_by.clone(),
        ]);
    }
    table.print();
}

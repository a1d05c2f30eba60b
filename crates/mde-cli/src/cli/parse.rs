//! Reading the command line: the operation each command sends (the one table from operation
//! to command), the request body's flags generated from the spec, the permissions in `--help`,
//! the profile applied, and the fixes clap cannot make.

use clap::{CommandFactory, FromArgMatches};
use mde_client::operations::OperationId;

use super::*;

/// The command that sends `op`, its request made from its body's flags: the spec's
/// `x-cli-command` (`package collect --graph` and `tag`, `live` and `library` take their
/// bodies from their own words, and the rest are read by the commands that show and follow).
pub fn command_of(op: OperationId) -> Option<&'static [&'static str]> {
    op.facts().cli_command
}

/// The subcommand at `path` of `command`, changed by `change`; a step `command` lacks is
/// made (a group, or the leaf `change` completes).
fn at_path(
    command: clap::Command,
    path: &[&str],
    change: impl FnOnce(clap::Command) -> clap::Command,
) -> clap::Command {
    match path {
        [] => change(command),
        [first, rest @ ..] => {
            let command = match command.find_subcommand(first) {
                Some(_) => command,
                None => command.subcommand(
                    clap::Command::new(first.to_string()).subcommand_required(!rest.is_empty()),
                ),
            };
            command.mut_subcommand(*first, |sub| at_path(sub, rest, change))
        }
    }
}

/// Whether `command` has no subcommand at `path`.
fn lacks(command: &clap::Command, path: &[&str]) -> bool {
    (path.iter())
        .try_fold(command, |c, word| c.find_subcommand(word))
        .is_none()
}

/// The command of an operation `mde` has no words of its own for (`Command::FromSpec`): the
/// spec's summary, the machines, `--wait` where it creates a machine action (its body's flags
/// are added with every other command's).
fn spec_command(op: OperationId, command: clap::Command) -> clap::Command {
    use clap::Args;
    let command = match op.creates_action() {
        Some(_) => Wait::augment_args(Targets::augment_args(command)),
        None => Targets::augment_args(command),
    };
    // After the arguments: a struct's own docs would be the command's.
    let summary = op.facts().summary;
    command.about(summary).long_about(summary)
}

/// The `Command` the arguments name, `derived` the commands with words of their own.
fn command_in(matches: &clap::ArgMatches, derived: &clap::Command) -> Result<Command, clap::Error> {
    let spec = OperationId::ALL.into_iter().find_map(|op| {
        let path = command_of(op).filter(|path| lacks(derived, path))?;
        let leaf = (path.iter()).try_fold(matches, |m, word| m.subcommand_matches(word))?;
        Some((op, leaf))
    });
    let Some((op, leaf)) = spec else {
        return Command::from_arg_matches(matches);
    };
    let wait = match op.creates_action() {
        Some(_) => Wait::from_arg_matches(leaf)?.every(),
        None => None,
    };
    let targets = Targets::from_arg_matches(leaf)?;
    Ok(Command::FromSpec { op, targets, wait })
}

/// The `Cli` of `matches`, the action's body among them.
fn parsed(matches: &clap::ArgMatches, derived: &clap::Command) -> Result<Cli, clap::Error> {
    let mut cli = Cli {
        connection: Connection::from_arg_matches(matches)?,
        run: RunOptions::from_arg_matches(matches)?,
        command: command_in(matches, derived)?,
        body: serde_json::Map::new(),
        given: Vec::new(),
    };
    for op in OperationId::ALL {
        let Some(path) = command_of(op) else { continue };
        let found = path
            .iter()
            .try_fold(matches, |m, name| m.subcommand_matches(name));
        if let Some(matches) = found {
            cli.body = crate::body_flags::read(op, matches);
        }
    }
    Ok(cli)
}

/// Parses the process's arguments, the action's body among them.
pub fn parse() -> Cli {
    let matches = command().get_matches();
    let mut cli = parsed(&matches, &Cli::command()).unwrap_or_else(|e| e.exit());
    cli.given = FROM_PROFILE
        .iter()
        .filter(|id| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        .map(|id| id.to_string())
        .collect();
    // One profile is the connection of every command; several, each their part of a run.
    let mut seen = std::collections::HashSet::new();
    cli.connection.profile.retain(|p| seen.insert(p.clone()));
    if let [name] = &cli.connection.profile[..]
        && !cli.connection.simulate
    {
        let (conn, problem) = cli.connection_of(name).unwrap_or_else(|e| {
            eprintln!("mde: {e}");
            std::process::exit(2);
        });
        if let Some(problem) = problem {
            eprintln!("mde: {problem}");
            std::process::exit(3);
        }
        cli.connection = conn;
    }
    // Each --args belongs to the --run written before it.
    if let (Command::Live(live), Some(matches)) =
        (&mut cli.command, matches.subcommand_matches("live"))
    {
        let at = |name| {
            matches
                .indices_of(name)
                .map(Iterator::collect::<Vec<_>>)
                .unwrap_or_default()
        };
        let (runs, args) = (at("run"), at("args"));
        live.args_of_run = vec![None; runs.len()];
        for (arg, value) in args.iter().zip(&live.session.args) {
            match runs.iter().rposition(|run| run < arg) {
                Some(i) if live.args_of_run[i].is_none() => {
                    live.args_of_run[i] = Some(value.clone())
                }
                _ => {
                    eprintln!("mde: every --args follows the --run it is for, once");
                    std::process::exit(2);
                }
            }
        }
    }
    cli
}

/// The command line as parsed and as completed: each action command with the flags of its
/// body, and the options of the service's connection not shown for the commands that never
/// call it.
pub fn command() -> clap::Command {
    let mut command = with_operations(Cli::command());
    // Global options reach every subcommand when the command is built; hide them after.
    command.build();
    let local: Vec<String> = Cli::command()
        .get_arguments()
        .filter(|a| {
            a.get_help_heading()
                .is_some_and(|h| h.starts_with("Connection"))
        })
        .map(|a| a.get_id().to_string())
        .collect();
    // In place: the built command keeps its arguments by position.
    let hide = |names: Vec<String>| {
        move |sub: clap::Command| {
            sub.mut_args(|a| {
                let hidden = a.is_hide_set() || names.iter().any(|n| n == a.get_id().as_str());
                a.hide(hidden)
            })
        }
    };
    let mut quiet = local.clone();
    quiet.extend(["output".to_string(), "verbose".to_string()]);
    command = command.mut_subcommand("completions", hide(quiet));
    command.mut_subcommand("package", |p| p.mut_subcommand("verify", hide(local)))
}

/// `derived` with every operation's command: made from the spec where `derived` has none,
/// and each with its body's flags and the permissions it needs.
fn with_operations(derived: clap::Command) -> clap::Command {
    let mut command = derived.clone();
    for op in OperationId::ALL {
        let Some(path) = command_of(op) else { continue };
        let made = lacks(&derived, path);
        command = at_path(command, path, |sub| {
            let sub = if made { spec_command(op, sub) } else { sub };
            let help = match sub.get_after_help() {
                Some(help) => format!("{help}\n\n{}", permissions(op)),
                None => permissions(op),
            };
            sub.args(crate::body_flags::args(op)).after_help(help)
        });
    }
    command
}

/// The permissions a command needs, from the spec's `x-permissions`: its operation's, the
/// pending-action check's before a containment, and the name and tag look-ups'.
fn permissions(op: OperationId) -> String {
    let any = |op: OperationId| {
        let facts = op.facts();
        let or = |p: &[&str]| p.join(" or ");
        format!(
            "{} (application), {} (delegated)",
            or(facts.application_permissions),
            or(facts.delegated_permissions)
        )
    };
    let mut text = format!("Permissions: {}.", any(op));
    let contains = op
        .creates_action()
        .is_some_and(|kind| crate::pending::opposite(&kind).is_some());
    if contains {
        text.push_str(&format!(
            "\nBefore sending, the pending-action check reads the tenant's actions: {} (--skip-pending-check sends without it).",
            any(OperationId::ListMachineActions)
        ));
    }
    if crate::targets::on_machines(op) {
        text.push_str(&format!(
            "\nMachines by name (--machine-name, --names-file) or --tag are looked up with {}.",
            any(OperationId::ListMachines)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command line without a command of its own: each operation's is made from the spec.
    fn bare() -> clap::Command {
        use clap::Args;
        RunOptions::augment_args(Connection::augment_args(clap::Command::new("mde")))
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let matches = with_operations(bare()).try_get_matches_from(args)?;
        parsed(&matches, &bare())
    }

    const MACHINE: &str = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07";

    #[test]
    fn an_operation_without_words_of_its_own_gets_a_command_from_the_spec() {
        let cli = parse(&[
            "mde",
            "isolate",
            MACHINE,
            "--machine-name",
            "ws-0001",
            "--type",
            "selective",
            "--comment",
            "Case 42",
            "--wait",
            "--poll-interval",
            "5",
        ])
        .unwrap();
        let Command::FromSpec { op, targets, wait } = &cli.command else {
            panic!("not made from the spec: {:?}", cli.command)
        };
        assert_eq!(*op, OperationId::IsolateMachine);
        assert_eq!(
            (&targets.machines[..], &targets.names[..]),
            (&[MACHINE.to_string()][..], &["ws-0001".to_string()][..])
        );
        assert_eq!(*wait, Some(std::time::Duration::from_secs(5)));
        assert_eq!(
            serde_json::Value::Object(cli.body),
            serde_json::json!({"Comment": "Case 42", "IsolationType": "Selective"})
        );
        // Words of two steps make their group; the help is the spec's summary.
        let cli = parse(&["mde", "package", "collect", MACHINE, "--comment", "c"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::FromSpec {
                op: OperationId::CollectInvestigationPackage,
                wait: None,
                ..
            }
        ));
        let mut command = with_operations(bare());
        let collect = command
            .find_subcommand_mut("package")
            .unwrap()
            .find_subcommand_mut("collect")
            .unwrap();
        let help = collect.render_long_help().to_string();
        assert!(
            help.starts_with(OperationId::CollectInvestigationPackage.facts().summary),
            "{help}"
        );
        assert!(
            help.contains("Permissions: Machine.CollectForensics"),
            "{help}"
        );
    }

    #[test]
    fn a_command_from_the_spec_refuses_what_the_spec_does() {
        let error = |args: &[&str]| parse(args).unwrap_err().kind();
        // An operation that creates no machine action has nothing to wait for.
        let start = [
            "mde",
            "investigation",
            "start",
            MACHINE,
            "--comment",
            "c",
            "--wait",
        ];
        assert_eq!(error(&start), clap::error::ErrorKind::UnknownArgument);
        assert_eq!(
            error(&["mde", "isolate", MACHINE]),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            error(&[
                "mde",
                "isolate",
                MACHINE,
                "--comment",
                "c",
                "--type",
                "partial"
            ]),
            clap::error::ErrorKind::InvalidValue
        );
        assert_eq!(
            error(&["mde", "package"]),
            clap::error::ErrorKind::MissingSubcommand
        );
    }
}

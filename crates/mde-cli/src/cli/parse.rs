//! Reading the command line: the operation each command sends (the one table from operation
//! to command), the request body's flags generated from the spec, the permissions in `--help`,
//! the profile applied, and the fixes clap cannot make.

use clap::FromArgMatches;
use mde_client::operations::OperationId;

use super::*;

/// The command that sends `op`, its request made from its body's flags: the spec's
/// `x-cli-command` (`package collect --graph` and `tag`, `live` and `library` take their
/// bodies from their own words, and the rest are read by the commands that show and follow).
pub fn command_of(op: OperationId) -> Option<&'static [&'static str]> {
    op.facts().cli_command
}

/// The subcommand at `path` of `command`, changed by `change`. A path `mde` lacks (a wrong
/// `x-cli-command`) fails `cargo xtask check` and `tests/reference.rs`, which render the
/// command line before anyone runs it.
fn at_path(
    command: clap::Command,
    path: &[&str],
    change: impl FnOnce(clap::Command) -> clap::Command,
) -> clap::Command {
    match path {
        [] => change(command),
        [first, rest @ ..] => {
            let known = command.find_subcommand(first).is_some();
            assert!(
                known,
                "x-cli-command: `{}` has no command `{first}`",
                command.get_name()
            );
            command.mut_subcommand(*first, |sub| at_path(sub, rest, change))
        }
    }
}

/// Parses the process's arguments, the action's body among them.
pub fn parse() -> Cli {
    let matches = command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    for op in OperationId::ALL {
        let Some(path) = command_of(op) else { continue };
        let found = path
            .iter()
            .try_fold(&matches, |m, name| m.subcommand_matches(name));
        if let Some(matches) = found {
            cli.body = crate::body_flags::read(op, matches);
        }
    }
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
    use clap::CommandFactory;
    let mut command = Cli::command();
    for op in OperationId::ALL {
        if let Some(path) = command_of(op) {
            command = at_path(command, path, |sub| {
                let help = match sub.get_after_help() {
                    Some(help) => format!("{help}\n\n{}", permissions(op)),
                    None => permissions(op),
                };
                sub.args(crate::body_flags::args(op)).after_help(help)
            });
        }
    }
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

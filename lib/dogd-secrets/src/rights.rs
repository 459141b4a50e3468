//! Finding the command and checking that it is safe to run: a regular file, owned by the user dogd
//! runs as, executable by it, and giving no rights to anyone else.

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid, User};

use crate::SecretError;

/// The file to run for `command`: `command` itself when it contains a `/`, else the first regular,
/// executable file of that name in an absolute directory of `path_var` (like Go's `exec.LookPath`,
/// which the agent uses; relative `PATH` entries are skipped, as Go does since 1.19).
pub(crate) fn resolve_command(
    command: &Path,
    path_var: Option<&OsStr>,
) -> Result<PathBuf, SecretError> {
    if command.as_os_str().is_empty() {
        return Err(SecretError::NoCommand);
    }
    if command.as_os_str().as_encoded_bytes().contains(&b'/') {
        return Ok(command.to_path_buf());
    }
    let dirs = path_var.map(std::env::split_paths).into_iter().flatten();
    for dir in dirs.filter(|dir| dir.is_absolute()) {
        let candidate = dir.join(command);
        if let Ok(meta) = candidate.metadata()
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return Ok(candidate);
        }
    }
    Err(SecretError::NotInPath {
        command: command.to_path_buf(),
    })
}

/// Checks the file at `path` (symlinks followed, as `stat` does in the agent) before it is run.
///
/// Rules (Linux section of the agent's secrets-management docs, `pkg/secrets/check_rights_nix.go`
/// and `pkg/util/filesystem/rights_nix.go`):
/// - it must be a regular file;
/// - it must be owned by the effective user running dogd; with `allow_group_exec`
///   (`secret_backend_command_allow_group_exec_perm`), a file owned by someone else is accepted
///   when its group is one of ours and the group may execute it;
/// - the owner must be able to execute it;
/// - `group` and `other` must have no rights at all (mode & 0o077 == 0), not even read; with
///   `allow_group_exec`, the group may read and execute (mode & 0o027 == 0).
pub(crate) fn check_rights(path: &Path, allow_group_exec: bool) -> Result<(), SecretError> {
    let meta = path
        .metadata()
        .map_err(|source| SecretError::Inaccessible {
            path: path.to_path_buf(),
            source,
        })?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "a special file (device, FIFO or socket)"
        };
        return Err(SecretError::UnsafeCommand {
            path: path.to_path_buf(),
            problems: format!("is not a regular file (it is {kind})"),
            fix: "point secret_backend_command at the executable file itself".to_owned(),
        });
    }
    let verdict = judge(
        &FileFacts {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
        },
        &Runner::current(),
        allow_group_exec,
    );
    match verdict {
        None => Ok(()),
        Some((problems, fixes)) => {
            let quoted = shell_quote(path);
            Err(SecretError::UnsafeCommand {
                path: path.to_path_buf(),
                problems,
                fix: fixes
                    .iter()
                    .map(|fix| format!("{fix} {quoted}"))
                    .collect::<Vec<_>>()
                    .join(" && "),
            })
        }
    }
}

/// What matters about the file.
#[derive(Debug, Clone, Copy)]
struct FileFacts {
    uid: u32,
    gid: u32,
    mode: u32,
}

/// Who runs it.
#[derive(Debug)]
struct Runner {
    uid: u32,
    /// The user's name, for the `chown` fix; its uid when the user database does not know it.
    name: String,
    /// The effective gid and the supplementary groups.
    groups: Vec<u32>,
}

impl Runner {
    fn current() -> Self {
        let uid = Uid::effective();
        let name = match User::from_uid(uid) {
            Ok(Some(user)) => user.name,
            _ => uid.as_raw().to_string(),
        };
        let mut groups = vec![Gid::effective().as_raw()];
        if let Ok(extra) = nix::unistd::getgroups() {
            groups.extend(extra.into_iter().map(Gid::as_raw));
        }
        Self {
            uid: uid.as_raw(),
            name,
            groups,
        }
    }
}

/// `None` when `file` may be run by `runner`, else what is wrong (one phrase, following "it") and
/// the commands that fix it (each to be followed by the path).
fn judge(
    file: &FileFacts,
    runner: &Runner,
    allow_group_exec: bool,
) -> Option<(String, Vec<String>)> {
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    let chmod = if allow_group_exec {
        "chmod 750"
    } else {
        "chmod 700"
    };

    let owned = file.uid == runner.uid;
    let group_member = runner.groups.contains(&file.gid);
    let may_run = owned || (allow_group_exec && group_member);
    if !may_run {
        let whom = if allow_group_exec {
            format!(
                "is owned by uid {} and group {}, neither of which is the user dogd runs as ({}, uid {}) or one of its groups",
                file.uid, file.gid, runner.name, runner.uid
            )
        } else {
            format!(
                "is owned by uid {}, not by the user dogd runs as ({}, uid {})",
                file.uid, runner.name, runner.uid
            )
        };
        problems.push(whom);
        fixes.push(format!("chown {}", runner.name));
    }

    let forbidden = if allow_group_exec { 0o027 } else { 0o077 };
    if file.mode & forbidden != 0 {
        problems.push(format!(
            "gives rights to {} (mode {:04o})",
            describe_extra_rights(file.mode & forbidden),
            file.mode
        ));
        fixes.push(chmod.to_owned());
    }

    // Whoever will run it must be allowed to execute it: the owner, or (group mode) the group.
    let can_execute = if owned || !allow_group_exec {
        file.mode & 0o100 != 0
    } else {
        file.mode & 0o010 != 0
    };
    if !can_execute {
        let who = if owned || !allow_group_exec {
            "its owner"
        } else {
            "its group"
        };
        problems.push(format!(
            "is not executable by {who} (mode {:04o})",
            file.mode
        ));
        if !fixes.iter().any(|fix| fix == chmod) {
            fixes.push(chmod.to_owned());
        }
    }

    if problems.is_empty() {
        None
    } else {
        Some((problems.join(", and it "), fixes))
    }
}

/// `group (write) and others (read, execute)` for the given group/other bits.
fn describe_extra_rights(bits: u32) -> String {
    let class = |name: &str, rwx: u32| -> Option<String> {
        let rights: Vec<&str> = [(0o4, "read"), (0o2, "write"), (0o1, "execute")]
            .into_iter()
            .filter(|(bit, _)| rwx & bit != 0)
            .map(|(_, right)| right)
            .collect();
        (!rights.is_empty()).then(|| format!("{name} ({})", rights.join(", ")))
    };
    [
        class("group", (bits >> 3) & 0o7),
        class("others", bits & 0o7),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" and ")
}

/// `path` quoted for a POSIX shell when it needs to be.
fn shell_quote(path: &Path) -> String {
    let text = path.to_string_lossy();
    let safe = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c));
    if safe {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner() -> Runner {
        Runner {
            uid: 1000,
            name: "dd-agent".to_owned(),
            groups: vec![1000, 20],
        }
    }

    fn file(uid: u32, gid: u32, mode: u32) -> FileFacts {
        FileFacts { uid, gid, mode }
    }

    fn problems(file: FileFacts, allow_group_exec: bool) -> Option<(String, Vec<String>)> {
        judge(&file, &runner(), allow_group_exec)
    }

    #[test]
    fn an_owned_file_with_owner_only_rights_is_accepted() {
        assert!(problems(file(1000, 1000, 0o700), false).is_none());
        assert!(problems(file(1000, 1000, 0o500), false).is_none());
        assert!(problems(file(1000, 1000, 0o100), false).is_none());
    }

    #[test]
    fn any_right_for_group_or_others_is_refused_by_default() {
        let (text, fixes) = problems(file(1000, 1000, 0o770), false).expect("refused");
        assert_eq!(
            text,
            "gives rights to group (read, write, execute) (mode 0770)"
        );
        assert_eq!(fixes, ["chmod 700"]);
        let (text, _) = problems(file(1000, 1000, 0o704), false).expect("refused");
        assert_eq!(text, "gives rights to others (read) (mode 0704)");
        let (text, _) = problems(file(1000, 1000, 0o755), false).expect("refused");
        assert_eq!(
            text,
            "gives rights to group (read, execute) and others (read, execute) (mode 0755)"
        );
    }

    #[test]
    fn a_file_owned_by_someone_else_is_refused_with_a_chown_fix() {
        let (text, fixes) = problems(file(0, 0, 0o700), false).expect("refused");
        assert_eq!(
            text,
            "is owned by uid 0, not by the user dogd runs as (dd-agent, uid 1000)"
        );
        assert_eq!(fixes, ["chown dd-agent"]);
    }

    #[test]
    fn a_file_the_owner_cannot_execute_is_refused() {
        let (text, fixes) = problems(file(1000, 1000, 0o600), false).expect("refused");
        assert_eq!(text, "is not executable by its owner (mode 0600)");
        assert_eq!(fixes, ["chmod 700"]);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_each_fix_once() {
        let (text, fixes) = problems(file(0, 0, 0o666), false).expect("refused");
        assert_eq!(
            text,
            "is owned by uid 0, not by the user dogd runs as (dd-agent, uid 1000), \
             and it gives rights to group (read, write) and others (read, write) (mode 0666), \
             and it is not executable by its owner (mode 0666)"
        );
        assert_eq!(fixes, ["chown dd-agent", "chmod 700"]);
    }

    #[test]
    fn group_exec_mode_lets_the_group_read_and_execute_but_not_write() {
        assert!(problems(file(1000, 1000, 0o750), true).is_none());
        // Owned by another user but by one of our groups, which may execute it.
        assert!(problems(file(0, 20, 0o750), true).is_none());
        let (text, fixes) = problems(file(1000, 1000, 0o770), true).expect("refused");
        assert_eq!(text, "gives rights to group (write) (mode 0770)");
        assert_eq!(fixes, ["chmod 750"]);
        let (text, _) = problems(file(1000, 1000, 0o751), true).expect("refused");
        assert_eq!(text, "gives rights to others (execute) (mode 0751)");
        let (text, _) = problems(file(0, 20, 0o740), true).expect("refused");
        assert_eq!(text, "is not executable by its group (mode 0740)");
        let (text, _) = problems(file(0, 0, 0o750), true).expect("refused");
        assert!(text.starts_with("is owned by uid 0 and group 0, neither of which"));
    }

    #[test]
    fn a_bare_command_name_is_looked_up_in_absolute_path_directories_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join("helper");
        std::fs::write(&exe, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let not_exe = dir.path().join("data");
        std::fs::write(&not_exe, "").expect("write");

        let path_var = std::env::join_paths([Path::new("relative"), dir.path()]).expect("join");
        let found = resolve_command(Path::new("helper"), Some(&path_var)).expect("found");
        assert_eq!(found, exe);
        assert!(matches!(
            resolve_command(Path::new("data"), Some(&path_var)),
            Err(SecretError::NotInPath { .. })
        ));
        assert!(matches!(
            resolve_command(Path::new("helper"), None),
            Err(SecretError::NotInPath { .. })
        ));
        // A path with a slash is used as is, even when relative.
        assert_eq!(
            resolve_command(Path::new("./helper"), Some(&path_var)).expect("as is"),
            Path::new("./helper")
        );
        assert!(matches!(
            resolve_command(Path::new(""), Some(&path_var)),
            Err(SecretError::NoCommand)
        ));
    }

    #[test]
    fn paths_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(
            shell_quote(Path::new("/etc/dd/secret.sh")),
            "/etc/dd/secret.sh"
        );
        assert_eq!(shell_quote(Path::new("/a b/it's")), r"'/a b/it'\''s'");
    }
}

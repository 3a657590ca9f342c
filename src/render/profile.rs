//! Browser profiles: `profiles/<worker-id>/` is a Chromium user-data-dir that persists across runs.
//! One browser per profile, ever: a stale `SingletonLock` left by a crashed run (another hostname or
//! a dead pid) is removed at start, a live one is never stolen.

use std::path::{Path, PathBuf};

/// The profile could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "profile {dir} is in use by a live Chromium (pid {pid} on this host); \
         run each worker with its own --worker-id"
    )]
    InUse { dir: PathBuf, pid: u32 },
    #[error("Failed to prepare profile {dir}: {source}")]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// Chromium's lock files in a user-data-dir.
const LOCK_FILES: [&str; 3] = ["SingletonLock", "SingletonSocket", "SingletonCookie"];

/// The file naming the process that owns a profile (`hostname pid`).
const OWNER_FILE: &str = "scrapefarm.owner";

/// Creates `root/<worker_id>` if needed, refuses it when a live process owns it, and otherwise
/// takes it over: Chromium left running by a dead owner is killed and stale locks are removed.
/// Returns the profile directory.
pub fn claim(root: &Path, worker_id: &str) -> Result<PathBuf, ProfileError> {
    let dir = root.join(worker_id);
    let io = |dir: &Path| {
        let dir = dir.to_path_buf();
        move |source| ProfileError::Io { dir, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let dir = dir.canonicalize().map_err(io(&dir))?;
    let me = std::process::id();
    if let Some((host, pid)) = read_owner(&dir)
        && host == this_host()
        && pid != me
        && pid_alive(pid)
    {
        return Err(ProfileError::InUse { dir, pid });
    }
    let orphans = kill_orphans(&dir);
    if orphans > 0 {
        tracing::warn!(profile = %dir.display(), orphans, "Killed Chromium left running by a dead worker.");
    }
    if let Some((host, pid)) = read_lock(&dir) {
        if host == this_host() && wait_for_exit(pid) {
            return Err(ProfileError::InUse { dir, pid });
        }
        tracing::info!(profile = %dir.display(), %host, pid, "Removing a stale profile lock.");
        for name in LOCK_FILES {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
    std::fs::write(dir.join(OWNER_FILE), format!("{} {me}\n", this_host())).map_err(io(&dir))?;
    Ok(dir)
}

/// A launcher for `chrome`, written into the profile: it starts Chromium with only the
/// environment `confine::browser_env` allows (never the worker's credentials), through
/// `setpriv --pdeathsig KILL` where installed, so the kernel kills Chromium when the worker dies,
/// even by SIGKILL (Chromium's own children follow their browser process); without `setpriv`,
/// orphans are only killed at the next start (`claim`).
pub fn launcher(profile_dir: &Path, chrome: &Path) -> Result<PathBuf, ProfileError> {
    let script = profile_dir.join("scrapefarm-chromium.sh");
    let text = launcher_script(
        chrome,
        &super::confine::browser_env_of_process(),
        Path::new("/usr/bin/setpriv").exists(),
    );
    let written = std::fs::write(&script, text).and_then(|()| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
    });
    written.map_err(|source| ProfileError::Io {
        dir: profile_dir.to_path_buf(),
        source,
    })?;
    Ok(script)
}

/// The launcher's text: `env -i` with the allowed variables, then (optionally) `setpriv`.
fn launcher_script(chrome: &Path, env: &[(String, String)], setpriv: bool) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut line = String::from("exec /usr/bin/env -i");
    for (key, value) in env {
        line.push_str(&format!(" {key}={}", quote(value)));
    }
    if setpriv {
        line.push_str(" /usr/bin/setpriv --pdeathsig KILL --");
    }
    line.push_str(&format!(" {} \"$@\"\n", quote(&chrome.to_string_lossy())));
    format!(
        "#!/bin/sh\n# Written by scrapefarm: Chromium gets a minimal environment and dies with the worker.\n{line}"
    )
}

/// Whether `pid` is still alive after up to two seconds (a killed orphan takes a moment to go).
fn wait_for_exit(pid: u32) -> bool {
    for _ in 0..20 {
        if !pid_alive(pid) {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    pid_alive(pid)
}

fn read_owner(dir: &Path) -> Option<(String, u32)> {
    let text = std::fs::read_to_string(dir.join(OWNER_FILE)).ok()?;
    let (host, pid) = text.trim().rsplit_once(' ')?;
    Some((host.to_string(), pid.parse().ok()?))
}

/// The `hostname-pid` target of the `SingletonLock` symlink, if there is one.
fn read_lock(dir: &Path) -> Option<(String, u32)> {
    let target = std::fs::read_link(dir.join("SingletonLock")).ok()?;
    let target = target.to_string_lossy();
    let (host, pid) = target.rsplit_once('-')?;
    Some((host.to_string(), pid.parse().ok()?))
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

pub(crate) fn pid_alive(pid: u32) -> bool {
    // A zombie still has a /proc entry but is not alive.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Kills Chromium processes left running on this profile by a worker that died without closing
/// its browser (SIGKILL orphans Chromium). Only called after the lock was found stale or absent.
pub fn kill_orphans(dir: &Path) -> usize {
    let mut killed = 0;
    for pid in processes_on(dir) {
        let status = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
        if status.is_ok_and(|s| s.success()) {
            killed += 1;
        }
    }
    killed
}

/// Waits up to `grace` for every process of a closed browser on this profile (its helpers
/// outlive the main process for a moment) to exit, then kills what is left; so the next browser
/// on the profile never runs beside the last one. Returns how many had to be killed.
pub fn wait_until_unused(dir: &Path, grace: std::time::Duration) -> usize {
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if processes_on(dir).is_empty() {
            return 0;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    kill_orphans(dir)
}

/// Processes (other than this one) started with this profile as their user-data-dir.
fn processes_on(dir: &Path) -> Vec<u32> {
    let needle = format!("--user-data-dir={}", dir.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let matches = cmdline
                .split(|b| *b == 0)
                .any(|arg| arg == needle.as_bytes());
            (matches && pid != std::process::id()).then_some(pid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_lock_from_another_host_is_removed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("w1");
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("some-other-host-123", dir.join("SingletonLock")).unwrap();
        let claimed = claim(root.path(), "w1").unwrap();
        assert!(std::fs::symlink_metadata(claimed.join("SingletonLock")).is_err());
    }

    #[test]
    fn stale_lock_with_a_dead_pid_is_removed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("w2");
        std::fs::create_dir_all(&dir).unwrap();
        let target = format!("{}-{}", this_host(), 999_999_999u32);
        std::os::unix::fs::symlink(target, dir.join("SingletonLock")).unwrap();
        assert!(claim(root.path(), "w2").is_ok());
        assert!(std::fs::symlink_metadata(dir.join("SingletonLock")).is_err());
    }

    #[test]
    fn a_profile_owned_by_a_live_process_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("w4");
        std::fs::create_dir_all(&dir).unwrap();
        // PID 1 is always alive and is not this test.
        std::fs::write(dir.join(OWNER_FILE), format!("{} 1\n", this_host())).unwrap();
        let err = claim(root.path(), "w4").unwrap_err();
        assert!(matches!(err, ProfileError::InUse { pid: 1, .. }), "{err}");
        std::fs::write(dir.join(OWNER_FILE), format!("{} 999999999\n", this_host())).unwrap();
        assert!(
            claim(root.path(), "w4").is_ok(),
            "a dead owner's profile is taken over"
        );
    }

    #[test]
    fn the_launcher_passes_only_the_allowed_environment_quoted() {
        let env = [("HOME".to_string(), "/tmp/it's".to_string())];
        let text = launcher_script(Path::new("/usr/bin/chromium"), &env, true);
        let last = text.lines().last().unwrap();
        assert_eq!(
            last,
            "exec /usr/bin/env -i HOME='/tmp/it'\\''s' /usr/bin/setpriv --pdeathsig KILL -- '/usr/bin/chromium' \"$@\""
        );
        // Run with `env` as the browser: it prints exactly what the browser would get.
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("launch.sh");
        std::fs::write(
            &script,
            launcher_script(Path::new("/usr/bin/env"), &env, false),
        )
        .unwrap();
        let out = std::process::Command::new("sh")
            .arg(&script)
            .env("DATABASE_URL", "postgres://u:s3cret@h/db")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "HOME=/tmp/it's\n");
    }

    #[test]
    fn live_lock_is_never_stolen() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("w3");
        std::fs::create_dir_all(&dir).unwrap();
        let target = format!("{}-{}", this_host(), std::process::id());
        std::os::unix::fs::symlink(target, dir.join("SingletonLock")).unwrap();
        let err = claim(root.path(), "w3").unwrap_err();
        assert!(matches!(err, ProfileError::InUse { .. }), "{err}");
        assert!(std::fs::symlink_metadata(dir.join("SingletonLock")).is_ok());
    }
}

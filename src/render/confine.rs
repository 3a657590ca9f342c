//! What the browser is allowed: whether Chromium runs inside its own sandbox, and the environment
//! Chromium and chromedriver start with. Both renderers ask here before they launch.
//!
//! The sandbox is on wherever the kernel allows it. Chromium's Linux sandbox needs either
//! unprivileged user namespaces (the namespace sandbox, what Debian's Chromium uses) or a setuid
//! `chrome-sandbox` helper, and Chromium refuses to sandbox itself as root. [`decide`] turns those
//! facts (and `SCRAPEFARM_BROWSER_SANDBOX=auto|on|off`) into one verdict; [`Sandbox::detect`]
//! gathers the facts and logs one WARN when the sandbox must be off, saying why.
//!
//! The environment is an allow-list ([`browser_env`]): the worker's own variables hold the
//! database and broker credentials, and a compromised renderer must not be able to read them
//! from its parent's environment.

use std::path::Path;
use std::process::{Command, Stdio};

/// The variable that overrides the sandbox decision.
pub const SANDBOX_VAR: &str = "SCRAPEFARM_BROWSER_SANDBOX";

/// The operator's choice (`SCRAPEFARM_BROWSER_SANDBOX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// On where the kernel allows it, off (with a WARN saying why) where it does not.
    Auto,
    /// Always on: a host that cannot sandbox fails at launch instead of running unconfined.
    On,
    /// Always off (with a WARN).
    Off,
}

impl std::str::FromStr for SandboxMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "" | "auto" => Ok(SandboxMode::Auto),
            "on" => Ok(SandboxMode::On),
            "off" => Ok(SandboxMode::Off),
            other => Err(format!("{SANDBOX_VAR}={other:?} is not auto, on or off")),
        }
    }
}

/// What this host allows, as [`Sandbox::detect`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// Effective uid of this process (Chromium inherits it).
    pub uid: u32,
    /// `Ok` when an unprivileged user namespace (with its own pid and network namespace, as
    /// Chromium's namespace sandbox makes) could be created; else why not.
    pub user_namespaces: Result<(), String>,
    /// A setuid-root `chrome-sandbox` helper is installed beside the browser.
    pub setuid_helper: bool,
}

/// The launch decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sandbox {
    On,
    /// `--no-sandbox`, and the operator-facing reason.
    Off {
        reason: String,
    },
}

impl Sandbox {
    pub fn is_on(&self) -> bool {
        matches!(self, Sandbox::On)
    }

    /// Reads `SCRAPEFARM_BROWSER_SANDBOX`, probes the host and decides, logging one WARN when the
    /// sandbox is off. Blocking (runs `unshare` once): call it from `spawn_blocking` or at start.
    pub fn detect(chrome: &Path) -> Result<Sandbox, String> {
        let mode = std::env::var(SANDBOX_VAR)
            .unwrap_or_default()
            .parse::<SandboxMode>()?;
        let facts = HostFacts {
            uid: effective_uid(),
            user_namespaces: if mode == SandboxMode::Auto {
                probe_user_namespaces()
            } else {
                Ok(())
            },
            setuid_helper: setuid_helper(chrome),
        };
        let sandbox = decide(mode, &facts)?;
        if let Sandbox::Off { reason } = &sandbox {
            tracing::warn!(
                uid = facts.uid,
                "Chromium runs without its sandbox: {reason}"
            );
        }
        Ok(sandbox)
    }
}

/// [`Sandbox::detect`] off the async runtime, as a launch error when it cannot hold.
pub async fn detect_in_background(chrome: &Path) -> Result<Sandbox, super::RenderError> {
    let chrome = chrome.to_path_buf();
    tokio::task::spawn_blocking(move || Sandbox::detect(&chrome))
        .await
        .map_err(|e| super::RenderError::Browser(format!("sandbox detection failed: {e}")))?
        .map_err(super::RenderError::Browser)
}

/// The decision, from the operator's mode and the host's facts. `Err` when `on` was asked for
/// on a host where Chromium would refuse to start.
pub fn decide(mode: SandboxMode, facts: &HostFacts) -> Result<Sandbox, String> {
    let root = facts.uid == 0;
    match mode {
        SandboxMode::Off => Ok(Sandbox::Off {
            reason: format!("{SANDBOX_VAR}=off turned it off."),
        }),
        SandboxMode::On if root => Err(format!(
            "{SANDBOX_VAR}=on, but this process runs as root (uid 0) and Chromium refuses to \
             sandbox itself as root; run the worker as a non-root user"
        )),
        SandboxMode::On => Ok(Sandbox::On),
        SandboxMode::Auto if root => Ok(Sandbox::Off {
            reason: "this process runs as root (uid 0), where Chromium refuses its sandbox; \
                     run the worker as a non-root user to sandbox it."
                .into(),
        }),
        SandboxMode::Auto => match (&facts.user_namespaces, facts.setuid_helper) {
            (Ok(()), _) | (Err(_), true) => Ok(Sandbox::On),
            (Err(why), false) => Ok(Sandbox::Off {
                reason: format!(
                    "the kernel does not let uid {} create user namespaces ({why}) and no \
                     setuid chrome-sandbox is installed; allow unprivileged user namespaces \
                     (in Kubernetes: the seccomp profile in k8s/seccomp/) to sandbox it.",
                    facts.uid
                ),
            }),
        },
    }
}

/// The effective uid, from `/proc/self/status` (no libc dependency for one number).
fn effective_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2)?.parse().ok()
        })
        // Unknown: assume the worst, which only costs the sandbox.
        .unwrap_or(0)
}

/// Creates a user namespace with a pid and network namespace inside, as Chromium's namespace
/// sandbox does, by running util-linux's `unshare`; without it, reads the kernel's switches.
fn probe_user_namespaces() -> Result<(), String> {
    let knobs = kernel_switches();
    let unshare = ["/usr/bin/unshare", "/bin/unshare"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(unshare) = unshare else {
        return knobs;
    };
    let status = Command::new(unshare)
        .args([
            "--user",
            "--map-root-user",
            "--pid",
            "--net",
            "--fork",
            "true",
        ])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(knobs.err().unwrap_or_else(|| {
            format!(
                "`unshare --user --pid --net` failed ({s}): seccomp or a security module denies it"
            )
        })),
        Err(e) => knobs.and(Err(format!("could not run {unshare}: {e}"))),
    }
}

/// The sysctls that switch unprivileged user namespaces off.
fn kernel_switches() -> Result<(), String> {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
    };
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Err("kernel.unprivileged_userns_clone = 0".into());
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Err("user.max_user_namespaces = 0".into());
    }
    Ok(())
}

/// A setuid-root `chrome-sandbox` beside the browser (or at `CHROME_DEVEL_SANDBOX`).
fn setuid_helper(chrome: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let beside = chrome
        .canonicalize()
        .ok()
        .and_then(|c| c.parent().map(|d| d.join("chrome-sandbox")));
    let named = std::env::var_os("CHROME_DEVEL_SANDBOX").map(Into::into);
    [
        beside,
        named,
        Some("/usr/lib/chromium/chrome-sandbox".into()),
    ]
    .into_iter()
    .flatten()
    .any(|p: std::path::PathBuf| {
        std::fs::metadata(p).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o4000 != 0)
    })
}

/// Variables Chromium and chromedriver may see: where to find programs, home and temp dirs,
/// locale, time zone, XDG dirs and fontconfig. Nothing else of the worker's environment (its
/// `DATABASE_URL`, `AMQP_URL`, any token) reaches the browser.
pub fn browser_env(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    const EXACT: [&str; 7] = [
        "PATH",
        "HOME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "CHROME_DEVEL_SANDBOX",
    ];
    const PREFIXES: [&str; 3] = ["LC_", "XDG_", "FONTCONFIG_"];
    let mut kept: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| EXACT.contains(&k.as_str()) || PREFIXES.iter().any(|p| k.starts_with(p)))
        .collect();
    kept.sort();
    kept
}

/// [`browser_env`] of this process's environment (variables that are not UTF-8 are dropped).
pub fn browser_env_of_process() -> Vec<(String, String)> {
    browser_env(
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(uid: u32, userns: bool, helper: bool) -> HostFacts {
        HostFacts {
            uid,
            user_namespaces: if userns { Ok(()) } else { Err("denied".into()) },
            setuid_helper: helper,
        }
    }

    #[test]
    fn root_never_gets_the_sandbox_and_the_reason_says_so() {
        let verdict = decide(SandboxMode::Auto, &facts(0, true, true)).unwrap();
        let Sandbox::Off { reason } = verdict else {
            panic!("root must run without the sandbox")
        };
        assert!(reason.contains("root (uid 0)"), "{reason}");
        assert!(decide(SandboxMode::On, &facts(0, true, true)).is_err());
    }

    #[test]
    fn a_non_root_user_with_user_namespaces_or_a_setuid_helper_is_sandboxed() {
        assert_eq!(
            decide(SandboxMode::Auto, &facts(10001, true, false)),
            Ok(Sandbox::On)
        );
        assert_eq!(
            decide(SandboxMode::Auto, &facts(10001, false, true)),
            Ok(Sandbox::On)
        );
        let Ok(Sandbox::Off { reason }) = decide(SandboxMode::Auto, &facts(10001, false, false))
        else {
            panic!("no user namespaces and no helper: no sandbox")
        };
        assert!(reason.contains("user namespaces (denied)"), "{reason}");
    }

    #[test]
    fn the_override_wins_over_detection() {
        assert_eq!(
            decide(SandboxMode::On, &facts(10001, false, false)),
            Ok(Sandbox::On)
        );
        let off = decide(SandboxMode::Off, &facts(10001, true, true)).unwrap();
        assert!(!off.is_on());
        assert_eq!("".parse::<SandboxMode>(), Ok(SandboxMode::Auto));
        assert_eq!("off".parse::<SandboxMode>(), Ok(SandboxMode::Off));
        assert!("yes".parse::<SandboxMode>().is_err());
    }

    #[test]
    fn the_browser_environment_keeps_only_what_chromium_needs() {
        let vars = [
            ("PATH", "/usr/bin"),
            ("HOME", "/tmp"),
            ("LC_ALL", "C.UTF-8"),
            ("XDG_CONFIG_HOME", "/tmp/x"),
            ("FONTCONFIG_PATH", "/etc/fonts"),
            ("DATABASE_URL", "postgres://u:s3cret@h/db"),
            ("AMQP_URL", "amqp://u:s3cret@h/"),
            ("SCRAPEFARM_WORKER_DB_PASSWORD", "s3cret"),
            ("AWS_SECRET_ACCESS_KEY", "s3cret"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let kept = browser_env(vars);
        let names: Vec<&str> = kept.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "FONTCONFIG_PATH",
                "HOME",
                "LC_ALL",
                "PATH",
                "XDG_CONFIG_HOME"
            ]
        );
        assert!(kept.iter().all(|(_, v)| !v.contains("s3cret")));
    }
}

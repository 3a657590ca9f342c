//! Which Chromium the CDP renderer launches, and what it shows the sites about itself.
//!
//! Debian ships two builds of the same Chromium: the browser (`chromium`, here in its new
//! headless mode) and the headless shell (`chromium-headless-shell`, the old headless mode: Blink
//! and the network stack without the browser's UI layer — no tab strip, history, session
//! restore, page-load metrics, predictors). Rendering a page is the same work in both; what the
//! browser does around each navigation is not: on the fixture listings the browser's own process
//! spent ~12–15 s of CPU per 200 pages against ~6–7 s in the shell's, and the whole tree ~130
//! against ~95 ms per page (bare loop, same lean flags; bench/results-2026-12-01.md).
//!
//! The shell is easier to fingerprint (no plugins, no `window.chrome`), so `full` stays one
//! flag away for sites that look for that; both builds announce themselves as `HeadlessChrome`
//! in the user agent, which every tab overrides (`user_agent`).

use std::path::{Path, PathBuf};

use super::RenderError;

/// Where Debian's `chromium-headless-shell` package puts the shell: the binary itself, not
/// `/usr/bin/chromium-headless-shell`, a shell script that forks it without `exec` (killing the
/// script would leave the browser running).
pub const HEADLESS_SHELL: &str = "/usr/lib/chromium/chromium-headless-shell";

/// Where Debian's `chromium` package puts the full browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The operator's choice of build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowserBuild {
    /// The headless shell when it is installed, else the full browser.
    Auto,
    /// The headless shell; an error when it is missing.
    Shell,
    /// The full browser (`--chrome`).
    Full,
}

impl std::str::FromStr for BrowserBuild {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(BrowserBuild::Auto),
            "shell" => Ok(BrowserBuild::Shell),
            "full" => Ok(BrowserBuild::Full),
            other => Err(format!(
                "unknown browser build {other:?}: expected auto, shell or full"
            )),
        }
    }
}

/// The binary to launch for `build`, given the full browser and the shell's paths.
pub fn pick(build: BrowserBuild, full: &Path, shell: &Path) -> Result<PathBuf, RenderError> {
    let missing = |what: &str, path: &Path, package: &str, var: &str| {
        RenderError::Browser(format!(
            "{what} not found at {}. Install it with `apt-get install {package}` or set {var}.",
            path.display()
        ))
    };
    match build {
        BrowserBuild::Shell if !shell.exists() => Err(missing(
            "Chromium's headless shell",
            shell,
            "chromium-headless-shell",
            "CHROME_HEADLESS_SHELL_BIN (or --cdp-browser full)",
        )),
        BrowserBuild::Shell => Ok(shell.to_path_buf()),
        BrowserBuild::Auto if shell.exists() => Ok(shell.to_path_buf()),
        BrowserBuild::Auto | BrowserBuild::Full if !full.exists() => {
            Err(missing("Chromium", full, "chromium", "CHROME_BIN"))
        }
        BrowserBuild::Auto | BrowserBuild::Full => Ok(full.to_path_buf()),
    }
}

/// [`pick`] with the paths the command line would read: `CHROME_BIN` and
/// `CHROME_HEADLESS_SHELL_BIN`, else Debian's.
pub fn pick_from_env(build: BrowserBuild) -> Result<PathBuf, RenderError> {
    let path =
        |var: &str, default: &str| PathBuf::from(std::env::var(var).unwrap_or(default.into()));
    pick(
        build,
        &path("CHROME_BIN", CHROMIUM),
        &path("CHROME_HEADLESS_SHELL_BIN", HEADLESS_SHELL),
    )
}

/// The user agent to send instead of the browser's own, if that one gives headless away.
pub fn user_agent(reported: &str) -> Option<String> {
    reported
        .contains("HeadlessChrome/")
        .then(|| reported.replace("HeadlessChrome/", "Chrome/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_prefers_the_shell_and_falls_back_to_the_browser() {
        let dir = tempfile::tempdir().unwrap();
        let (full, shell) = (dir.path().join("chromium"), dir.path().join("shell"));
        let absent = dir.path().join("absent");
        std::fs::write(&full, "").unwrap();
        std::fs::write(&shell, "").unwrap();
        assert_eq!(pick(BrowserBuild::Auto, &full, &shell).unwrap(), shell);
        assert_eq!(pick(BrowserBuild::Auto, &full, &absent).unwrap(), full);
        assert_eq!(pick(BrowserBuild::Full, &full, &shell).unwrap(), full);
        assert_eq!(pick(BrowserBuild::Shell, &full, &shell).unwrap(), shell);
    }

    #[test]
    fn a_missing_build_names_its_package() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("absent");
        let err = pick(BrowserBuild::Shell, &absent, &absent).unwrap_err();
        assert!(
            err.to_string()
                .contains("apt-get install chromium-headless-shell")
        );
        let err = pick(BrowserBuild::Auto, &absent, &absent).unwrap_err();
        assert!(
            err.to_string().contains("apt-get install chromium`"),
            "{err}"
        );
        assert!("bogus".parse::<BrowserBuild>().is_err());
        assert_eq!("shell".parse::<BrowserBuild>(), Ok(BrowserBuild::Shell));
    }

    #[test]
    fn the_headless_marker_is_replaced_and_nothing_else() {
        let shell = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.8078.114 Safari/537.36";
        assert_eq!(
            user_agent(shell).unwrap(),
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.8078.114 Safari/537.36"
        );
        assert_eq!(
            user_agent("Mozilla/5.0 ... Chrome/156.0.0.0 Safari/537.36"),
            None
        );
    }
}

//! API keys for the price-tracker service (`scrapefarm apikey …`): a key is 32 random bytes shown
//! once at creation; the store keeps only its SHA-256, so a leaked database gives no usable key.
//! A `read` key reads; a `write` key also creates, runs and deletes.

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::cli::{ApiKeyCommand, Common};
use crate::store::Store;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    /// Read searches, listings, watches and alerts.
    Read,
    /// Read, and create, run and delete.
    Write,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }
}

/// A new key: `sf_` and 64 hex digits of operating-system randomness.
pub fn new_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
    Ok(format!("sf_{}", hex::encode(bytes)))
}

/// What the store keeps of a key.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A key name: 1–64 letters, digits, `-`, `_` or `.` (it appears in tables and logs).
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        bail!("key name {name:?}: use 1 to 64 letters, digits, `-`, `_` or `.`");
    }
    Ok(())
}

/// `scrapefarm apikey create|ls|revoke`.
pub async fn command(common: &Common, cmd: &ApiKeyCommand) -> anyhow::Result<()> {
    let store: Store = crate::app::connect_store(common).await?;
    match cmd {
        ApiKeyCommand::Create { name, scope } => {
            check_name(name)?;
            let key = new_key()?;
            let created = store
                .create_api_key(name, scope.as_str(), &hash_key(&key))
                .await
                .context("Failed to store the key")?;
            if !created {
                bail!("a key named {name:?} exists already; revoke it or choose another name");
            }
            // The key alone on stdout, once: `KEY=$(scrapefarm apikey create …)`.
            println!("{key}");
            eprintln!(
                "Key {name:?} ({}) created; it is not shown again.",
                scope.as_str()
            );
        }
        ApiKeyCommand::Ls(args) => {
            let keys = store.api_keys().await?;
            if args.json {
                for key in &keys {
                    println!("{}", serde_json::to_string(key)?);
                }
            } else if keys.is_empty() {
                println!("no API keys; create one with `scrapefarm apikey create --name NAME`");
            } else {
                println!(
                    "{:<24} {:<6} {:<8} {:<19}",
                    "name", "scope", "state", "created (UTC)"
                );
                for key in &keys {
                    let state = if key.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "live"
                    };
                    let created = crate::snapshot::format_time(key.created_at);
                    println!("{:<24} {:<6} {:<8} {created}", key.name, key.scope, state);
                }
            }
        }
        ApiKeyCommand::Revoke { name } => {
            if !store.revoke_api_key(name).await? {
                bail!("no live key named {name:?}");
            }
            println!("Key {name:?} revoked.");
        }
    }
    store.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_only_their_hash_is_kept() {
        let (a, b) = (new_key().unwrap(), new_key().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("sf_") && a.len() == 67, "{a}");
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_ne!(hash_key(&a), hash_key(&b));
        assert!(!hash_key(&a).contains(&a[3..]));
    }

    #[test]
    fn key_names_are_short_plain_words() {
        assert!(check_name("dashboard-1").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
    }
}

//! A tenant's configuration and secrets: given by the operator (the configuration
//! file's `[tenants.NAME.config]` and `[tenants.NAME.secrets]`, then the admin API's
//! on top), read by the tenant through `wasi:config/store`. Secrets reach the tenant
//! like any value, and nobody else: the API shows them masked and nothing logs them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// What the API shows instead of a secret.
pub const MASK: &str = "********";

/// The most names a tenant's configuration holds.
pub const MAX_ENTRIES: usize = 1000;
/// The longest name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// The largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 << 10;

/// Names to values, some of them secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantConfig {
    /// Plain values, shown back by the API.
    pub config: BTreeMap<String, String>,
    /// Secret values, shown back masked.
    pub secrets: BTreeMap<String, String>,
}

impl TenantConfig {
    /// The value of `name` (a secret over a plain value of the same name).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.secrets
            .get(name)
            .or_else(|| self.config.get(name))
            .map(String::as_str)
    }

    /// Every name and value, secrets included: what the tenant sees.
    pub fn all(&self) -> Vec<(String, String)> {
        let mut all: BTreeMap<&String, &String> = self.config.iter().collect();
        all.extend(self.secrets.iter());
        all.into_iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }

    /// What the API shows: the plain values, and the secrets' names with their values masked.
    pub fn masked(&self) -> Value {
        let secrets: Map<String, Value> = self
            .secrets
            .keys()
            .map(|name| (name.clone(), Value::from(MASK)))
            .collect();
        json!({ "config": self.config, "secrets": secrets })
    }

    /// This configuration with `other`'s names set over it.
    pub fn overlaid(&self, other: &TenantConfig) -> TenantConfig {
        let mut merged = self.clone();
        for (name, value) in &other.config {
            merged.secrets.remove(name);
            merged.config.insert(name.clone(), value.clone());
        }
        for (name, value) in &other.secrets {
            merged.config.remove(name);
            merged.secrets.insert(name.clone(), value.clone());
        }
        merged
    }

    /// Applies a change as the API's `PUT` sends it: `{"config": {...}, "secrets": {...}}`,
    /// a name set to a string is set (plain or secret), one set to `null` removed, the
    /// others kept. Checks the sizes; an error says what is wrong.
    pub fn patched(&self, change: &Value) -> Result<TenantConfig, String> {
        let Value::Object(change) = change else {
            return Err("send {\"config\": {...}, \"secrets\": {...}}".into());
        };
        let mut next = self.clone();
        for (section, entries) in change {
            let secret = match section.as_str() {
                "config" => false,
                "secrets" => true,
                other => return Err(format!("unknown section {other:?}: config or secrets")),
            };
            let Value::Object(entries) = entries else {
                return Err(format!(
                    "{section} is an object of names to strings (or null)"
                ));
            };
            for (name, value) in entries {
                next.config.remove(name);
                next.secrets.remove(name);
                match value {
                    Value::Null => {}
                    Value::String(value) => {
                        let map = if secret {
                            &mut next.secrets
                        } else {
                            &mut next.config
                        };
                        map.insert(name.clone(), value.clone());
                    }
                    _ => return Err(format!("{section}.{name}: a string, or null to remove it")),
                }
            }
        }
        next.check()?;
        Ok(next)
    }

    /// Whether it is within the sizes a configuration may have.
    pub fn check(&self) -> Result<(), String> {
        if self.config.len() + self.secrets.len() > MAX_ENTRIES {
            return Err(format!("at most {MAX_ENTRIES} names"));
        }
        for (name, value) in self.config.iter().chain(&self.secrets) {
            if name.is_empty() || name.len() > MAX_NAME_BYTES {
                return Err(format!("a name is 1 to {MAX_NAME_BYTES} bytes"));
            }
            if value.len() > MAX_VALUE_BYTES {
                return Err(format!(
                    "{name}: a value is at most {MAX_VALUE_BYTES} bytes"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_sets_removes_and_keeps_and_secrets_stay_masked() {
        let base = TenantConfig::default()
            .patched(
                &json!({"config": {"room": "lobby", "motd": "hi"}, "secrets": {"key": "s3cret"}}),
            )
            .expect("valid");
        assert_eq!(base.get("key"), Some("s3cret"));
        let next = base
            .patched(&json!({"config": {"motd": null, "key": "public now"}}))
            .expect("valid");
        assert_eq!(next.get("motd"), None);
        assert_eq!(next.get("room"), Some("lobby"));
        assert_eq!(next.get("key"), Some("public now"));
        let shown = base.masked().to_string();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains(MASK));
        assert!(base.patched(&json!({"config": {"n": 1}})).is_err());
        assert!(base.patched(&json!({"other": {}})).is_err());
        let huge = "x".repeat(MAX_VALUE_BYTES + 1);
        assert!(base.patched(&json!({"secrets": {"big": huge}})).is_err());
    }

    #[test]
    fn the_api_layer_goes_over_the_files() {
        let file = TenantConfig::default()
            .patched(&json!({"config": {"a": "1", "b": "2"}, "secrets": {"c": "3"}}))
            .expect("valid");
        let api = TenantConfig::default()
            .patched(&json!({"secrets": {"a": "x"}, "config": {"c": "y"}}))
            .expect("valid");
        let merged = file.overlaid(&api);
        assert_eq!(
            merged.all(),
            vec![
                ("a".into(), "x".into()),
                ("b".into(), "2".into()),
                ("c".into(), "y".into())
            ]
        );
        assert!(merged.secrets.contains_key("a") && merged.config.contains_key("c"));
    }
}

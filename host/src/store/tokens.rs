//! Bearer tokens: the operator's, and deploy tokens minted for one tenant each. Only
//! SHA-256 hashes are kept (in memory for the operator's, on disk or in the cluster's
//! Redis for deploy tokens), and a presented token is compared with every hash in
//! constant time.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::durable;

/// What a token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Everything.
    Operator,
    /// Upload and read this tenant, nothing else.
    Tenant(String),
}

/// Every tenant's deploy tokens, as hex SHA-256 hashes.
pub type DeployHashes = BTreeMap<String, Vec<String>>;

/// The tokens the admin API accepts.
pub struct Tokens {
    /// Where the deploy tokens' hashes are kept; none when the cluster keeps them.
    path: Option<PathBuf>,
    operator: [u8; 32],
    deploy: RwLock<BTreeMap<String, Vec<String>>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The fewest characters an operator token may have: enough that guessing is hopeless.
pub const MIN_OPERATOR_TOKEN_LEN: usize = 16;

/// Whether `token` may be the operator's: at least [`MIN_OPERATOR_TOKEN_LEN`] visible
/// ASCII characters (an empty one would make every request unauthorised, a short one
/// guessable, and whitespace is surely a copy-and-paste accident).
pub fn check_operator_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("the operator token is empty".into());
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "the operator token may hold visible ASCII characters only (no spaces or newlines)"
                .into(),
        );
    }
    if token.len() < MIN_OPERATOR_TOKEN_LEN {
        return Err(format!(
            "the operator token has {} characters; it needs at least {MIN_OPERATOR_TOKEN_LEN}",
            token.len()
        ));
    }
    Ok(())
}

/// A new deploy token and the hash to keep of it.
pub fn new_deploy_token() -> (String, String) {
    let secret: [u8; 32] = rand::random();
    let token = format!(
        "nsbox_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let hash = hex(&digest(&token));
    (token, hash)
}

impl Tokens {
    /// Loads the deploy tokens' hashes from `data_dir`; `operator` is the operator's token.
    pub fn open(data_dir: &Path, operator: &str) -> io::Result<Tokens> {
        let path = data_dir.join("tokens.json");
        durable::clean_temporaries(data_dir);
        let deploy = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => return Err(error),
        };
        Ok(Tokens {
            path: Some(path),
            operator: digest(operator),
            deploy: RwLock::new(deploy),
        })
    }

    /// The operator's token, and deploy tokens kept elsewhere (the cluster's Redis):
    /// given with [`Tokens::replace`], made with [`new_deploy_token`].
    pub fn kept_elsewhere(operator: &str) -> Tokens {
        Tokens {
            path: None,
            operator: digest(operator),
            deploy: RwLock::default(),
        }
    }

    /// The deploy tokens, as they now are where they are kept.
    pub fn replace(&self, deploy: DeployHashes) {
        *self.deploy.write() = deploy;
    }

    /// What `token` may do, if it is one of ours.
    pub fn authenticate(&self, token: &str) -> Option<Access> {
        let presented = digest(token);
        if bool::from(presented.ct_eq(&self.operator)) {
            return Some(Access::Operator);
        }
        let presented = hex(&presented);
        let deploy = self.deploy.read();
        let mut found = None;
        // Every hash is compared, matched or not, so timing says nothing about which.
        for (tenant, hashes) in deploy.iter() {
            for hash in hashes {
                if bool::from(hash.as_bytes().ct_eq(presented.as_bytes())) {
                    found = Some(Access::Tenant(tenant.clone()));
                }
            }
        }
        found
    }

    /// A new deploy token for `tenant`; only its hash is kept.
    pub fn mint(&self, tenant: &str) -> io::Result<String> {
        let (token, hash) = new_deploy_token();
        self.add(tenant, hash)?;
        Ok(token)
    }

    /// Accepts the token whose hash is `hash` for `tenant`.
    pub fn add(&self, tenant: &str, hash: String) -> io::Result<()> {
        self.update(|deploy| deploy.entry(tenant.to_owned()).or_default().push(hash))
    }

    /// Revokes every deploy token of `tenant`.
    pub fn revoke(&self, tenant: &str) -> io::Result<()> {
        self.update(|deploy| {
            deploy.remove(tenant);
        })
    }

    fn update(&self, change: impl FnOnce(&mut BTreeMap<String, Vec<String>>)) -> io::Result<()> {
        let mut deploy = self.deploy.write();

        let mut next = deploy.clone();
        change(&mut next);
        if let Some(path) = &self.path {
            let bytes = serde_json::to_vec_pretty(&next).map_err(io::Error::other)?;
            durable::write(path, &bytes)?;
        }
        *deploy = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_tokens_must_be_long_and_visible() {
        assert!(check_operator_token("").is_err());
        assert!(check_operator_token("short").is_err_and(|e| e.contains("at least 16")));
        assert!(check_operator_token("a long token with spaces").is_err());
        assert!(check_operator_token("0123456789abcdef\n").is_err());
        assert!(check_operator_token("0123456789abcdef").is_ok());
    }

    #[test]
    fn operator_and_deploy_tokens_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("nsbox-tokens-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let tokens = Tokens::open(&dir, "operator-secret").expect("opens");
        assert_eq!(
            tokens.authenticate("operator-secret"),
            Some(Access::Operator)
        );
        assert_eq!(tokens.authenticate("operator-secreT"), None);
        assert_eq!(tokens.authenticate(""), None);
        let acme = tokens.mint("acme").expect("minted");
        assert!(acme.starts_with("nsbox_") && acme.len() > 40);
        assert_eq!(
            tokens.authenticate(&acme),
            Some(Access::Tenant("acme".into()))
        );
        // Only the hash is on disk, and it survives a restart.
        let on_disk = std::fs::read_to_string(dir.join("tokens.json")).expect("saved");
        assert!(!on_disk.contains(&acme));
        let reopened = Tokens::open(&dir, "another-operator").expect("opens");
        assert_eq!(
            reopened.authenticate(&acme),
            Some(Access::Tenant("acme".into()))
        );
        assert_eq!(reopened.authenticate("operator-secret"), None);
        reopened.revoke("acme").expect("revoked");
        assert_eq!(reopened.authenticate(&acme), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

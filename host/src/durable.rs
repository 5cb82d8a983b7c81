//! Durable, all-or-nothing file writes: a reader (or a restart after a crash) sees the
//! old content or the new, never a torn mix; and the digests that check them. What the
//! data directory holds (tenants' code, compiled forms, token hashes) is the
//! operator's alone: directories 0700, files 0600. Used by the store and by the
//! runtime's compiled cache alike.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// SHA-256 of `bytes`, in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Creates `dir` and its missing parents, readable by their owner only.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory,
/// fsync, rename over the target, fsync of the directory.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("a file path has a directory"))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::other("a file path has a name"))?;
    let temporary = dir.join(format!(".{name}.{}.tmp", rand::random::<u64>()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// Makes a rename or a removal in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes temporary files a crash left behind in `dir`.
pub fn clean_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temporaries() {
        let dir = std::env::temp_dir().join(format!("nsbox-atomic-{}", rand::random::<u64>()));
        fs::create_dir_all(&dir).expect("a directory");
        let path = dir.join("data.json");
        write(&path, b"first").expect("written");
        write(&path, b"second, longer").expect("rewritten");
        assert_eq!(fs::read(&path).expect("readable"), b"second, longer");
        fs::write(dir.join(".data.json.1.tmp"), b"torn").expect("a leftover");
        clean_temporaries(&dir);
        let names: Vec<_> = fs::read_dir(&dir)
            .expect("listable")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["data.json"]);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).expect("there").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let private = dir.join("a/b");
        create_private_dir(&private).expect("created");
        let mode = fs::metadata(&private).expect("there").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let _ = fs::remove_dir_all(&dir);
    }
}

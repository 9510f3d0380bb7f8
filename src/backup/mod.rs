//! Backup and restore of a running shop. The server takes a consistent snapshot of every
//! tree between two commit groups ([`take`], behind `POST /admin/v1/backups`); the operator
//! CLI saves it into a directory ([`fetch`]) and later turns it into a store a server starts
//! on ([`restore`]). The file format is ours ([`mod@format`]), not sled's files.

pub mod format;

use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::config::StorageSettings;
use crate::store::{Importer, Store, StoreError};
pub use format::{Header, TreeSummary};

/// The file a backup directory holds.
pub const FILE_NAME: &str = "cartwright.backup";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("not a cartwright backup")]
    NotABackup,
    #[error("backup format version {0} is not one this build reads (it reads version {v})", v = format::FORMAT_VERSION)]
    UnknownVersion(u32),
    #[error("the backup is truncated or corrupted: its checksum does not match")]
    Checksum,
    #[error("the backup is malformed: {0}")]
    Malformed(String),
    #[error("{} is not empty: restore only into a new or empty directory", .0.display())]
    TargetNotEmpty(PathBuf),
    #[error("{} already holds a backup: pass --force to replace it", .0.display())]
    BackupExists(PathBuf),
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the server answered {status} {code}: {message}")]
    Refused { status: u16, code: String, message: String },
}

/// What a backup holds.
#[derive(Debug, Clone)]
pub struct Summary {
    pub file: PathBuf,
    pub header: Header,
    pub trees: Vec<TreeSummary>,
}

/// The whole store as a backup file: an anonymous temporary file, read from its start.
/// Writes wait while the snapshot is written to it (reading every tree, writing the file
/// into the page cache, no fsync), then go on; the caller sends it at the client's pace
/// afterwards. Blocks the calling thread.
pub fn take(store: &Store) -> Result<File, BackupError> {
    let spool = spool_file()?;
    let created_at_ms = chrono::Utc::now().timestamp_millis();
    let mut file = store.snapshot(move |snapshot| {
        let started = std::time::Instant::now();
        let mut out = BufWriter::new(spool);
        let trees = format::encode(snapshot, &mut out, created_at_ms)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        // How long writes waited for the backup: what it costs a running shop.
        let writes_paused_ms = started.elapsed().as_millis() as u64;
        let records: u64 = trees.iter().map(|t| t.records).sum();
        tracing::info!(trees = trees.len(), records, writes_paused_ms, "backup taken");
        Ok::<_, BackupError>(file)
    })??;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

/// A file in the system's temporary directory (`TMPDIR`), unlinked at once: the open handle
/// is all there is, so nothing is left behind whatever happens to the request.
fn spool_file() -> std::io::Result<File> {
    let path = std::env::temp_dir().join(format!("cartwright-backup-{}", uuid::Uuid::new_v4()));
    let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// Asks the server at `url` for a backup and saves it as `dir/cartwright.backup`: written to
/// a temporary file, checked, fsynced, renamed into place, and the directory fsynced. An
/// existing backup is replaced only with `force`.
pub async fn fetch(url: &str, token: &str, dir: &Path, force: bool) -> Result<Summary, BackupError> {
    std::fs::create_dir_all(dir)?;
    let target = dir.join(FILE_NAME);
    if target.exists() && !force {
        return Err(BackupError::BackupExists(target));
    }
    let url = url.trim_end_matches('/');
    let unreachable = |e: reqwest::Error| BackupError::Unreachable { url: url.to_string(), reason: e.to_string() };
    let mut resp = reqwest::Client::new()
        .post(format!("{url}/admin/v1/backups"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(unreachable)?;
    let status = resp.status();
    if !status.is_success() {
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        return Err(BackupError::Refused {
            status: status.as_u16(),
            code: body["error"]["code"].as_str().unwrap_or("ERROR").to_string(),
            message: body["error"]["message"].as_str().unwrap_or("").to_string(),
        });
    }
    let partial = dir.join(format!(".{FILE_NAME}.partial"));
    let saved = save(&mut resp, &partial).await.map_err(|e| match e {
        Saving::Io(e) => BackupError::Io(e),
        Saving::Http(e) => unreachable(e),
    });
    // A backup that did not arrive whole, or does not check out, never takes the name.
    let summary = match saved.and_then(|()| summarize(&partial)) {
        Ok(summary) => summary,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, &target)?;
    sync_dir(dir)?;
    Ok(Summary { file: target, ..summary })
}

enum Saving {
    Io(std::io::Error),
    Http(reqwest::Error),
}

/// Writes the response body to `path` and fsyncs it.
async fn save(resp: &mut reqwest::Response, path: &Path) -> Result<(), Saving> {
    let mut out = BufWriter::new(File::create(path).map_err(Saving::Io)?);
    while let Some(chunk) = resp.chunk().await.map_err(Saving::Http)? {
        out.write_all(&chunk).map_err(Saving::Io)?;
    }
    let file = out.into_inner().map_err(|e| Saving::Io(e.into_error()))?;
    file.sync_all().map_err(Saving::Io)
}

/// Checks a backup file (or a directory holding one) whole and says what it holds.
pub fn summarize(path: &Path) -> Result<Summary, BackupError> {
    let file = backup_file(path);
    let mut input = BufReader::new(File::open(&file)?);
    let (header, trees) = format::decode(&mut input, |_, _, _| Ok(()))?;
    Ok(Summary { file, header, trees })
}

/// Makes `to` a store a server starts on, from the backup in `from` (a backup directory or
/// the file itself). The backup is checked whole first; the store is built in
/// `<to>.restore-tmp`, made durable, opened once as the server would, and only then renamed
/// to `to`, so a failed restore leaves nothing at `to`.
pub fn restore(from: &Path, to: &Path) -> Result<Summary, BackupError> {
    // Without a trailing slash, so that the staging directory is a sibling of `to`.
    let to: &Path = &to.components().collect::<PathBuf>();
    let file = backup_file(from);
    let mut input = BufReader::new(File::open(&file)?);
    format::verify(&mut input)?;
    refuse_non_empty(to)?;
    let staging = staging_path(to);
    if staging.exists() {
        // Left by a restore that stopped half-way; it was never renamed into place.
        std::fs::remove_dir_all(&staging)?;
    }
    let built = build(&mut input, &staging);
    let (header, trees) = match built {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    std::fs::rename(&staging, to)?;
    sync_dir(to.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))?;
    Ok(Summary { file, header, trees })
}

fn build(input: &mut BufReader<File>, staging: &Path) -> Result<(Header, Vec<TreeSummary>), BackupError> {
    let settings = StorageSettings::sled_at(staging.to_path_buf(), 64);
    let mut importer = Importer::create(&settings)?;
    let decoded = format::decode(input, |tree, key, value| Ok(importer.insert(tree, key, value)?))?;
    importer.finish()?;
    // Opened as the server opens it: creates any table this build has and the backup had
    // not, and proves the result is a store a server starts on.
    Store::open(&settings)?.close()?;
    Ok(decoded)
}

fn backup_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(FILE_NAME)
    } else {
        path.to_path_buf()
    }
}

fn refuse_non_empty(to: &Path) -> Result<(), BackupError> {
    match std::fs::read_dir(to).map(|mut entries| entries.next().is_none()) {
        Ok(true) => Ok(()),
        Ok(false) => Err(BackupError::TargetNotEmpty(to.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        // A file, or a directory we cannot read: either way not a place to restore into.
        Err(_) => Err(BackupError::TargetNotEmpty(to.to_path_buf())),
    }
}

fn staging_path(to: &Path) -> PathBuf {
    let mut name = to.as_os_str().to_owned();
    name.push(".restore-tmp");
    PathBuf::from(name)
}

/// fsyncs a directory, so the entries created in it (files, renames) survive a power cut.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    type Records = Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>;

    fn take_bytes(store: &Store) -> Vec<u8> {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut take(store).unwrap(), &mut bytes).unwrap();
        bytes
    }

    fn settings(path: &Path) -> StorageSettings {
        StorageSettings::sled_at(path.to_path_buf(), 8)
    }

    /// A store holding a few records in one of our tables, in a tree no table of this
    /// build names, and in sled's default tree: the backup carries trees generically.
    fn store_with_records(path: &Path) -> (Store, Records) {
        let records: Records = vec![
            (b"__sled__default".to_vec(), b"k".to_vec(), b"v".to_vec()),
            (b"orders".to_vec(), vec![1; 16], vec![7; 300]),
            (b"orders".to_vec(), vec![2; 16], Vec::new()),
            (b"table_from_the_future".to_vec(), b"key".to_vec(), b"value".to_vec()),
        ];
        let mut importer = Importer::create(&settings(path)).unwrap();
        for (tree, k, v) in &records {
            importer.insert(tree, k, v).unwrap();
        }
        importer.finish().unwrap();
        (Store::open(&settings(path)).unwrap(), records)
    }

    fn decoded(bytes: &[u8]) -> Result<(Header, Vec<TreeSummary>, Records), BackupError> {
        let mut records = Vec::new();
        let (header, trees) = format::decode(&mut Cursor::new(bytes), |t, k, v| {
            records.push((t.to_vec(), k.to_vec(), v.to_vec()));
            Ok(())
        })?;
        Ok((header, trees, records))
    }

    #[test]
    fn a_backup_round_trips_every_tree_and_restores_into_a_store_that_opens() {
        let dir = tempfile::tempdir().unwrap();
        let (store, records) = store_with_records(&dir.path().join("live"));
        let bytes = take_bytes(&store);
        store.close().unwrap();

        let (header, trees, got) = decoded(&bytes).unwrap();
        assert_eq!(header.format_version, format::FORMAT_VERSION);
        assert_eq!(header.cartwright_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(got, records);
        let orders = trees.iter().find(|t| t.name == "orders").unwrap();
        assert_eq!(orders.records, 2);
        assert!(trees.iter().any(|t| t.name == "customers" && t.records == 0), "every table, empty ones too");

        let backup_dir = dir.path().join("backup");
        std::fs::create_dir(&backup_dir).unwrap();
        std::fs::write(backup_dir.join(FILE_NAME), &bytes).unwrap();
        let restored = dir.path().join("restored");
        let summary = restore(&backup_dir, &restored).unwrap();
        assert_eq!(summary.trees, trees);
        assert!(!staging_path(&restored).exists());
        let store = Store::open(&settings(&restored)).unwrap();
        let again = take_bytes(&store);
        store.close().unwrap();
        assert_eq!(decoded(&again).unwrap().2, records, "the restored store holds exactly the backup");
    }

    #[test]
    fn a_truncated_corrupted_or_unknown_backup_is_refused_and_nothing_is_restored() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store_with_records(&dir.path().join("live"));
        let bytes = take_bytes(&store);
        store.close().unwrap();

        let truncated = &bytes[..bytes.len() - 10];
        assert!(matches!(decoded(truncated), Err(BackupError::Checksum)));
        assert!(matches!(decoded(&bytes[..20]), Err(BackupError::Checksum)));
        assert!(matches!(decoded(&bytes[..5]), Err(BackupError::NotABackup)));
        let mut corrupted = bytes.clone();
        corrupted[bytes.len() / 2] ^= 0x01;
        assert!(matches!(decoded(&corrupted), Err(BackupError::Checksum)));
        let mut future = bytes.clone();
        future[8..12].copy_from_slice(&2u32.to_be_bytes());
        assert!(matches!(decoded(&future), Err(BackupError::UnknownVersion(2))));

        for (name, bad) in [("truncated", truncated), ("corrupted", &corrupted[..]), ("future", &future[..])] {
            let file = dir.path().join(name);
            std::fs::write(&file, bad).unwrap();
            let target = dir.path().join(format!("{name}-store"));
            let err = restore(&file, &target).unwrap_err();
            assert!(!matches!(err, BackupError::Io(_)), "{err}");
            assert!(!target.exists() && !staging_path(&target).exists(), "{name}: nothing written");
        }
    }

    #[test]
    fn a_backup_whose_lengths_lie_is_malformed_even_with_a_valid_checksum() {
        use sha2::{Digest, Sha256};
        let mut body = format::MAGIC.to_vec();
        body.extend_from_slice(&format::FORMAT_VERSION.to_be_bytes());
        body.extend_from_slice(&u32::MAX.to_be_bytes()); // a version string of 4 GiB
        let digest = Sha256::digest(&body);
        body.extend_from_slice(&digest);
        assert!(matches!(decoded(&body), Err(BackupError::Malformed(_))));
    }

    #[test]
    fn restore_refuses_a_target_that_is_not_empty_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store_with_records(&dir.path().join("live"));
        let file = dir.path().join(FILE_NAME);
        std::fs::write(&file, take_bytes(&store)).unwrap();
        store.close().unwrap();
        let target = dir.path().join("busy");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("db"), b"someone's data").unwrap();
        assert!(matches!(restore(&file, &target), Err(BackupError::TargetNotEmpty(_))));
        assert_eq!(std::fs::read(target.join("db")).unwrap(), b"someone's data");
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        restore(&file, &empty).unwrap();
        assert!(empty.join("conf").exists());
    }
}

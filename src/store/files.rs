//! The files sled writes that its own flush never makes durable, and what we do about them.
//!
//! sled 0.34 puts a tree node whose serialized size exceeds about a quarter of its segment
//! size into a file of its own under `blobs/`, and never fsyncs those files, the `blobs/`
//! directory or its `conf` file. Three defences, so no acknowledged byte lives only in an
//! unsynced file:
//! 1. Every record is bounded ([`MAX_RECORD_BYTES`], enforced by the committer), and a
//!    leaf holds at most 17 entries before sled splits it, so a node stays far below the
//!    blob threshold of a [`SEGMENT_SIZE`] segment (4 MiB): sled never writes a blob.
//! 2. Should one appear anyway (a store created by an older build with 512 KiB segments),
//!    [`BlobSyncer`] fsyncs every blob file created since the last group, and the
//!    directory, before the group's data file is synced and its writers are answered.
//! 3. `conf` and the directories are fsynced once at open, so the store's layout survives a
//!    power cut (an empty `conf` would let sled reopen 16 MiB segments as 512 KiB ones).

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// sled's segment size for stores this build creates (sled's maximum): the blob threshold
/// is a quarter of it.
pub(crate) const SEGMENT_SIZE: usize = 16 << 20;

/// sled's default, used by stores created before [`SEGMENT_SIZE`]; a store keeps the
/// segment size it was created with (sled refuses to reopen it with another).
const LEGACY_SEGMENT_SIZE: usize = 512 << 10;

/// Largest key plus value one record may weigh. 17 of them (a full leaf) stay under 4 MiB,
/// sled's blob threshold with [`SEGMENT_SIZE`]. The domain's limits (names, descriptions,
/// variants, cart lines, body size) keep every valid record well below it; the committer
/// refuses a write set that would cross it rather than let it reach `blobs/`.
pub const MAX_RECORD_BYTES: usize = 192 << 10;

/// The segment size to open the store at `path` with: the one recorded in its `conf`, or
/// [`SEGMENT_SIZE`] for a new store.
pub(crate) fn segment_size(path: &Path) -> usize {
    let recorded = std::fs::read(path.join("conf")).ok().and_then(|bytes| {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        text.lines().find_map(|l| l.strip_prefix("segment_size: ")?.trim().parse::<usize>().ok())
    });
    if let Some(size) = recorded {
        return size;
    }
    let has_log = std::fs::metadata(path.join("db")).is_ok_and(|m| m.len() > 0);
    if has_log {
        // A store from a build that did not sync `conf`, cut before sled rewrote it.
        tracing::warn!(path = %path.display(), "store has a log but no readable conf; assuming sled's default segment size");
        LEGACY_SEGMENT_SIZE
    } else {
        SEGMENT_SIZE
    }
}

/// fsyncs a directory, so the entries created in it (files, renames) survive a power cut.
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Makes the store's layout durable once it is opened: `conf`, `blobs/`, the store
/// directory and its parent (which holds the store directory's own entry).
pub(crate) fn sync_layout(path: &Path) -> io::Result<()> {
    File::open(path.join("conf"))?.sync_all()?;
    let blobs = path.join("blobs");
    if blobs.is_dir() {
        sync_dir(&blobs)?;
    }
    sync_dir(path)?;
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// fsyncs the blob files sled created since the last call, then `blobs/` itself.
///
/// Listing the directory for every commit group would cost an `opendir` and its buffers
/// each time, on the thread every write waits for; instead one `fstat` of the directory
/// decides whether anything can have changed since the last listing (see [`Self::unchanged`]).
pub(crate) struct BlobSyncer {
    dir: PathBuf,
    synced: HashSet<OsString>,
    /// `blobs/` held open for the `fstat` (sled creates it at open).
    handle: Option<File>,
    /// The directory's mtime read just before the last listing, and when that listing began.
    listed: Option<(SystemTime, SystemTime)>,
}

/// Directory timestamps come from a coarse clock (a few ms); a listing is skipped only when
/// the mtime is older than the last listing by more than this.
const MTIME_MARGIN: Duration = Duration::from_millis(50);

impl BlobSyncer {
    /// Knows of no file yet: the first [`sync_new`](Self::sync_new) syncs whatever an
    /// earlier run (or an older build, which never synced them) left in `blobs/`.
    pub(crate) fn new(store_path: &Path) -> BlobSyncer {
        BlobSyncer { dir: store_path.join("blobs"), synced: HashSet::new(), handle: None, listed: None }
    }

    /// Returns how many files it synced; an `fstat` when nothing changed.
    pub(crate) fn sync_new(&mut self) -> io::Result<usize> {
        if self.handle.is_none() {
            self.handle = File::open(&self.dir).ok();
        }
        let mtime = match &self.handle {
            Some(dir) => Some(dir.metadata()?.modified()?),
            None => None,
        };
        if let (Some(mtime), Some(listed)) = (mtime, self.listed) {
            if Self::unchanged(mtime, listed) {
                return Ok(0);
            }
        }
        let listing_began = SystemTime::now();
        let present = self.present()?;
        let mut synced = 0;
        for name in present.difference(&self.synced) {
            File::open(self.dir.join(name))?.sync_data()?;
            synced += 1;
        }
        if synced > 0 {
            sync_dir(&self.dir)?;
            tracing::warn!(files = synced, "sled wrote tree nodes to blobs/; synced them before answering");
        }
        // Forget files sled has since removed, so the set does not grow.
        self.synced = present;
        self.listed = mtime.map(|m| (m, listing_began));
        Ok(synced)
    }

    /// Nothing can have been created since the last listing if the directory's mtime is the
    /// one read before that listing and is well older than the listing's start: a creation
    /// after it would have set the mtime to a later tick, or (within the same coarse tick
    /// as the previous change) to a time close to the listing's start. A wall clock that
    /// jumps changes the mtime too, so this errs towards listing.
    fn unchanged(mtime: SystemTime, (mtime_before, listing_began): (SystemTime, SystemTime)) -> bool {
        mtime == mtime_before && mtime + MTIME_MARGIN < listing_began
    }

    fn present(&self) -> io::Result<HashSet<OsString>> {
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries.map(|e| e.map(|e| e.file_name())).collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(HashSet::new()),
            Err(e) => Err(e),
        }
    }
}

/// Fault injection for drills and tests: while the file named by
/// `CARTWRIGHT_FAULT_SYNC_EIO_FILE` exists, every sync of a group fails with `EIO`, as a
/// failing disk would. Read once at open; costs one `stat` per group only when set.
pub(crate) struct SyncFault {
    trigger: Option<PathBuf>,
}

impl SyncFault {
    pub(crate) fn from_env() -> SyncFault {
        SyncFault { trigger: std::env::var_os("CARTWRIGHT_FAULT_SYNC_EIO_FILE").map(PathBuf::from) }
    }

    pub(crate) fn check(&self) -> io::Result<()> {
        match &self.trigger {
            Some(path) if path.exists() => Err(io::Error::from_raw_os_error(5)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_gets_large_segments_and_an_existing_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(segment_size(dir.path()), SEGMENT_SIZE);
        std::fs::write(dir.path().join("conf"), "segment_size: 524288\nuse_compression: false\nversion: 0.34\nxxxx")
            .unwrap();
        assert_eq!(segment_size(dir.path()), 524288);
        std::fs::write(dir.path().join("conf"), "").unwrap();
        std::fs::write(dir.path().join("db"), [1u8; 16]).unwrap();
        assert_eq!(segment_size(dir.path()), LEGACY_SEGMENT_SIZE);
    }

    #[test]
    fn the_syncer_syncs_each_new_blob_once_and_forgets_removed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut syncer = BlobSyncer::new(dir.path());
        assert_eq!(syncer.sync_new().unwrap(), 0, "no blobs/ directory yet");
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        std::fs::write(dir.path().join("blobs/100"), b"node").unwrap();
        std::fs::write(dir.path().join("blobs/200"), b"node").unwrap();
        assert_eq!(syncer.sync_new().unwrap(), 2);
        assert_eq!(syncer.sync_new().unwrap(), 0);
        std::fs::remove_file(dir.path().join("blobs/100")).unwrap();
        std::fs::write(dir.path().join("blobs/300"), b"node").unwrap();
        assert_eq!(syncer.sync_new().unwrap(), 1);
        assert_eq!(syncer.synced.len(), 2);
        // Created right after a listing, within the same coarse timestamp tick: still seen.
        std::fs::write(dir.path().join("blobs/400"), b"node").unwrap();
        assert_eq!(syncer.sync_new().unwrap(), 1);
    }

    #[test]
    fn a_listing_is_skipped_only_for_a_directory_untouched_since_well_before_it() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ms = Duration::from_millis;
        assert!(BlobSyncer::unchanged(t, (t, t + ms(60))), "old and unchanged: skip");
        assert!(!BlobSyncer::unchanged(t, (t, t + ms(10))), "changed in the listing's tick: list");
        assert!(!BlobSyncer::unchanged(t + ms(70), (t, t + ms(60))), "changed since: list");
        assert!(!BlobSyncer::unchanged(t - ms(500), (t, t + ms(60))), "clock went back: list");
    }
}

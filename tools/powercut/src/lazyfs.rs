//! A FUSE file system that forgets, on a power cut, everything a real power loss may forget.
//!
//! The model (the pessimistic end of what Linux file systems promise):
//!
//! - **File data** is durable only up to the last `fsync`/`fdatasync` of that file. Until
//!   then written pages live in memory (`FileData::dirty`); a sync writes them to the
//!   file's backing file. A cut throws the dirty pages away and the file is back to its
//!   size and bytes at its last sync: a file never synced comes back empty.
//!   `sync_file_range` is not a sync (FUSE never even sees it), and neither are `flush`
//!   (close) nor `release`.
//! - **Names** (create, mkdir, unlink, rename) change the live namespace at once; what
//!   survives a cut depends on [`Names`]. By default ([`Names::Journal`]) it is the
//!   namespace at the last `fsync` of any file or `fsyncdir` of any directory: ext4's
//!   journal, where a sync commits every earlier metadata change. So a file created and
//!   written but never synced, while nothing else syncs, is gone after a cut; once something
//!   syncs, its name survives but its contents do not (it comes back empty).
//!   [`Names::PerDirectory`] is the letter of POSIX: a directory's entries survive only
//!   as of its own last `fsyncdir`.
//! - **Power off** is an instant: after [`PowerSwitch::power_off`] every operation that would
//!   change anything (write, sync, create, ...) fails with `EIO` and changes nothing, so a
//!   process still running between the cut and its `SIGKILL` can neither make more data
//!   durable nor leave late writes behind. [`PowerSwitch::restore_power`] then drops all
//!   unsynced state and the file system is usable again.
//!
//! The kernel keeps nothing for us: every open is `direct_io` (no page cache, so no
//! written-back-later pages and no stale reads after a cut) and attributes and entries
//! have a zero TTL. Locks (`flock`, `fcntl`) are not negotiated with the kernel, which
//! then keeps them locally: sled's lock on its `db` file works and dies with the process.
//!
//! Durable bytes live in `<backing>/ino-<n>` (one file per inode, so the backing directory is
//! not a copy of the tree); the namespaces live in memory. The file system is for one
//! test cycle: inodes are never reused or collected.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    Request, WriteFlags,
};

/// Unsynced data is kept in pages of this size.
const PAGE: u64 = 4096;
/// Nothing is cached by the kernel: every lookup and stat comes back to us.
const TTL: Duration = Duration::ZERO;
/// Each open bypasses the kernel's page cache.
const OPEN_FLAGS: FopenFlags = FopenFlags::FOPEN_DIRECT_IO;

/// Directory inode -> its entries.
type Namespace = HashMap<u64, BTreeMap<OsString, u64>>;

/// When a name change (create, mkdir, unlink, rename) becomes durable.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Names {
    /// At the next `fsync` of any file or `fsyncdir` of any directory (ext4's and xfs's
    /// journal: a sync commits every earlier metadata change). The default.
    Journal,
    /// Only when its own directory is `fsyncdir`ed (the letter of POSIX; stricter than
    /// Linux file systems: a new file that was fsynced but whose directory never was is gone).
    PerDirectory,
}

/// The mounted file system (handed to fuser).
pub struct LazyFs {
    state: Arc<Mutex<State>>,
}

/// The harness's handle on the file system's power.
#[derive(Clone)]
pub struct PowerSwitch {
    state: Arc<Mutex<State>>,
}

struct State {
    backing: PathBuf,
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    /// What processes see now.
    live: Namespace,
    /// What survives a cut: the live namespace as of the last sync.
    durable: Namespace,
    names: Names,
    powered: bool,
}

struct Inode {
    kind: FileType,
    perm: u16,
    uid: u32,
    gid: u32,
    mtime: SystemTime,
    /// `None` for directories.
    data: Option<FileData>,
}

/// One regular file: its durable bytes in the backing file, its unsynced changes here.
struct FileData {
    backing: PathBuf,
    /// The backing file's length: the file's size at its last sync.
    durable_len: u64,
    /// The file's size as processes see it now.
    len: u64,
    /// Backing bytes at or past this offset were truncated away since the last sync and
    /// read as zeros (`u64::MAX`: no truncation since).
    stale_from: u64,
    /// Pages written since the last sync, whole (bytes past `len` are zero).
    dirty: BTreeMap<u64, Box<[u8]>>,
}

impl FileData {
    fn backing_file(&self) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&self.backing)
    }

    /// How much of the backing file still belongs to the live file.
    fn visible(&self) -> u64 {
        self.durable_len.min(self.stale_from)
    }

    fn read(&self, offset: u64, size: u64) -> io::Result<Vec<u8>> {
        let end = (offset + size).min(self.len);
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut out = vec![0u8; (end - offset) as usize];
        // Durable bytes first, then the unsynced pages over them.
        let from_backing = end.min(self.visible());
        if offset < from_backing {
            self.backing_file()?.read_exact_at(&mut out[..(from_backing - offset) as usize], offset)?;
        }
        for (&index, page) in self.dirty.range(offset / PAGE..=(end - 1) / PAGE) {
            let page_start = index * PAGE;
            let (from, to) = (offset.max(page_start), end.min(page_start + PAGE));
            out[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&page[(from - page_start) as usize..(to - page_start) as usize]);
        }
        Ok(out)
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset + data.len() as u64;
        let mut at = offset;
        while at < end {
            let index = at / PAGE;
            let page_start = index * PAGE;
            if !self.dirty.contains_key(&index) {
                // Start the page from what the file holds there now (zeros past its end).
                let mut page = vec![0u8; PAGE as usize];
                let current = self.read(page_start, PAGE)?;
                page[..current.len()].copy_from_slice(&current);
                self.dirty.insert(index, page.into_boxed_slice());
            }
            let page = self.dirty.get_mut(&index).expect("page just inserted");
            let to = end.min(page_start + PAGE);
            page[(at - page_start) as usize..(to - page_start) as usize]
                .copy_from_slice(&data[(at - offset) as usize..(to - offset) as usize]);
            at = to;
        }
        self.len = self.len.max(end);
        Ok(())
    }

    fn truncate(&mut self, new_len: u64) {
        if new_len < self.len {
            // Drop whole pages past the end, zero the tail of the last one.
            let first_gone = new_len.div_ceil(PAGE);
            self.dirty.retain(|&index, _| index < first_gone);
            if let Some(page) = self.dirty.get_mut(&(new_len / PAGE)) {
                page[(new_len % PAGE) as usize..].fill(0);
            }
            self.stale_from = self.stale_from.min(new_len);
        }
        // Growing needs nothing: every byte past the old end already reads as zero.
        self.len = new_len;
    }

    /// `fsync`: the live contents become the durable contents.
    fn sync(&mut self) -> io::Result<()> {
        let file = self.backing_file()?;
        file.set_len(self.visible())?;
        for (&index, page) in &self.dirty {
            let start = index * PAGE;
            let n = PAGE.min(self.len - start) as usize;
            file.write_all_at(&page[..n], start)?;
        }
        file.set_len(self.len)?;
        self.durable_len = self.len;
        self.stale_from = u64::MAX;
        self.dirty.clear();
        Ok(())
    }

    /// Power loss: back to the contents at the last sync.
    fn forget_unsynced(&mut self) {
        self.dirty.clear();
        self.len = self.durable_len;
        self.stale_from = u64::MAX;
    }
}

impl State {
    fn attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let inode = self.inodes.get(&ino).ok_or(Errno::ENOENT)?;
        let size = inode.data.as_ref().map_or(0, |d| d.len);
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: inode.mtime,
            mtime: inode.mtime,
            ctime: inode.mtime,
            crtime: inode.mtime,
            kind: inode.kind,
            perm: inode.perm,
            nlink: if inode.kind == FileType::Directory { 2 } else { 1 },
            uid: inode.uid,
            gid: inode.gid,
            rdev: 0,
            blksize: PAGE as u32,
            flags: 0,
        })
    }

    fn entries(&self, dir: u64) -> Result<&BTreeMap<OsString, u64>, Errno> {
        match self.live.get(&dir) {
            Some(entries) => Ok(entries),
            None if self.inodes.contains_key(&dir) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn entries_mut(&mut self, dir: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        if !self.live.contains_key(&dir) {
            return Err(if self.inodes.contains_key(&dir) { Errno::ENOTDIR } else { Errno::ENOENT });
        }
        Ok(self.live.get_mut(&dir).expect("checked above"))
    }

    fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.entries(parent)?.get(name).copied().ok_or(Errno::ENOENT)
    }

    fn file(&mut self, ino: u64) -> Result<&mut FileData, Errno> {
        let inode = self.inodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        inode.data.as_mut().ok_or(Errno::EISDIR)
    }

    /// Every operation that changes something checks this first.
    fn require_power(&self) -> Result<(), Errno> {
        if self.powered {
            Ok(())
        } else {
            Err(Errno::EIO)
        }
    }

    /// A new name in `parent` for a new inode.
    fn make(
        &mut self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        kind: FileType,
    ) -> Result<u64, Errno> {
        self.require_power()?;
        if self.entries(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let data = match kind {
            FileType::Directory => {
                self.live.insert(ino, BTreeMap::new());
                None
            }
            _ => {
                let backing = self.backing.join(format!("ino-{ino}"));
                File::create(&backing).map_err(Errno::from)?;
                Some(FileData { backing, durable_len: 0, len: 0, stale_from: u64::MAX, dirty: BTreeMap::new() })
            }
        };
        let perm = (mode & !umask & 0o7777) as u16;
        let inode = Inode { kind, perm, uid: req.uid(), gid: req.gid(), mtime: SystemTime::now(), data };
        self.inodes.insert(ino, inode);
        self.entries_mut(parent)?.insert(name.to_owned(), ino);
        Ok(ino)
    }

    fn remove(&mut self, parent: u64, name: &OsStr, want_dir: bool) -> Result<(), Errno> {
        self.require_power()?;
        let ino = self.lookup(parent, name)?;
        let is_dir = self.live.contains_key(&ino);
        match (want_dir, is_dir) {
            (false, true) => return Err(Errno::EISDIR),
            (true, false) => return Err(Errno::ENOTDIR),
            (true, true) if !self.live[&ino].is_empty() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        self.entries_mut(parent)?.remove(name);
        if is_dir {
            self.live.remove(&ino);
        }
        Ok(())
    }

    fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        self.require_power()?;
        if flags.contains(RenameFlags::RENAME_EXCHANGE) || flags.contains(RenameFlags::RENAME_WHITEOUT) {
            return Err(Errno::EINVAL);
        }
        let ino = self.lookup(parent, name)?;
        self.entries(new_parent)?;
        if let Ok(target) = self.lookup(new_parent, new_name) {
            if target == ino {
                return Ok(());
            }
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            let moving_dir = self.live.contains_key(&ino);
            let target_dir = self.live.get(&target).map(|entries| entries.is_empty());
            match (moving_dir, target_dir) {
                (true, Some(false)) => return Err(Errno::ENOTEMPTY),
                (true, None) => return Err(Errno::ENOTDIR),
                (false, Some(_)) => return Err(Errno::EISDIR),
                (true, Some(true)) => {
                    self.live.remove(&target);
                }
                (false, None) => {}
            }
        }
        self.entries_mut(parent)?.remove(name);
        self.entries_mut(new_parent)?.insert(new_name.to_owned(), ino);
        Ok(())
    }

    /// `fsync` of a file: its data becomes durable and, with the journal model, every
    /// namespace change so far.
    fn sync_file(&mut self, ino: u64) -> Result<(), Errno> {
        self.require_power()?;
        self.file(ino)?.sync().map_err(Errno::from)?;
        if self.names == Names::Journal {
            self.durable = self.live.clone();
        }
        Ok(())
    }

    /// `fsyncdir`: the journal commits every namespace change so far; per directory, only
    /// this directory's entries become durable.
    fn sync_dir(&mut self, dir: u64) -> Result<(), Errno> {
        self.require_power()?;
        match self.names {
            Names::Journal => self.durable = self.live.clone(),
            Names::PerDirectory => {
                let entries = self.entries(dir)?.clone();
                self.durable.insert(dir, entries);
            }
        }
        Ok(())
    }
}

impl LazyFs {
    /// A file system whose durable bytes go under `backing` (an empty directory).
    pub fn new(backing: &Path, names: Names) -> (LazyFs, PowerSwitch) {
        let root = Inode {
            kind: FileType::Directory,
            perm: 0o755,
            uid: unsafe { libc::getuid() },
            gid: unsafe { libc::getgid() },
            mtime: SystemTime::now(),
            data: None,
        };
        let live: Namespace = HashMap::from([(INodeNo::ROOT.0, BTreeMap::new())]);
        let state = State {
            backing: backing.to_owned(),
            inodes: HashMap::from([(INodeNo::ROOT.0, root)]),
            next_ino: INodeNo::ROOT.0 + 1,
            durable: live.clone(),
            live,
            names,
            powered: true,
        };
        let state = Arc::new(Mutex::new(state));
        (LazyFs { state: state.clone() }, PowerSwitch { state })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock would be a bug in this file; keep serving regardless.
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl PowerSwitch {
    /// The power-cut instant: from now on nothing changes and nothing more becomes durable.
    pub fn power_off(&self) {
        lock(&self.state).powered = false;
    }

    /// Power back: every unsynced byte and name is gone, the rest is as it was synced.
    pub fn restore_power(&self) {
        let mut state = lock(&self.state);
        let mut live = state.durable.clone();
        // A directory whose name survived but whose own entries never were synced is empty.
        for entries in state.durable.values() {
            for ino in entries.values() {
                if state.inodes.get(ino).is_some_and(|i| i.kind == FileType::Directory) {
                    live.entry(*ino).or_default();
                }
            }
        }
        state.live = live;
        for inode in state.inodes.values_mut() {
            if let Some(data) = inode.data.as_mut() {
                data.forget_unsynced();
            }
        }
        state.powered = true;
    }

    /// The durable tree, one `path -> backing file (size)` line per file, to make sense of the
    /// backing directory a failed cycle leaves behind.
    pub fn durable_listing(&self) -> String {
        let state = lock(&self.state);
        let mut lines = Vec::new();
        let mut stack = vec![(INodeNo::ROOT.0, PathBuf::from("/"))];
        while let Some((dir, path)) = stack.pop() {
            for (name, &ino) in state.durable.get(&dir).into_iter().flatten() {
                let child = path.join(name);
                match state.inodes.get(&ino).and_then(|i| i.data.as_ref()) {
                    Some(data) => lines.push(format!("{} -> ino-{ino} ({} bytes)", child.display(), data.durable_len)),
                    None => stack.push((ino, child)),
                }
            }
        }
        lines.sort();
        lines.join("\n") + "\n"
    }

    /// Bytes held in memory that a cut would lose now (for the harness's report).
    pub fn unsynced_bytes(&self) -> u64 {
        let state = lock(&self.state);
        state.inodes.values().filter_map(|i| i.data.as_ref()).map(|d| d.dirty.len() as u64 * PAGE).sum()
    }
}

fn reply_attr(state: &State, ino: u64, reply: ReplyAttr) {
    match state.attr(ino) {
        Ok(attr) => reply.attr(&TTL, &attr),
        Err(e) => reply.error(e),
    }
}

fn reply_entry(state: &State, result: Result<u64, Errno>, reply: ReplyEntry) {
    match result.and_then(|ino| state.attr(ino)) {
        Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn reply_empty(result: Result<(), Errno>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl fuser::Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let state = self.state();
        reply_entry(&state, state.lookup(parent.0, name), reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        reply_attr(&self.state(), ino.0, reply);
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut state = self.state();
        let result = (|| {
            state.require_power()?;
            if let Some(size) = size {
                // Like a write: durable only after the next sync.
                state.file(ino.0)?.truncate(size);
            }
            // Modes and owners are not part of the crash model: applied at once, kept.
            let inode = state.inodes.get_mut(&ino.0).ok_or(Errno::ENOENT)?;
            if let Some(mode) = mode {
                inode.perm = (mode & 0o7777) as u16;
            }
            inode.uid = uid.unwrap_or(inode.uid);
            inode.gid = gid.unwrap_or(inode.gid);
            inode.mtime = SystemTime::now();
            Ok(())
        })();
        match result {
            Ok(()) => reply_attr(&state, ino.0, reply),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let mut state = self.state();
        let made = state.make(req, parent.0, name, mode, umask, FileType::Directory);
        reply_entry(&state, made, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(self.state().remove(parent.0, name, false), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(self.state().remove(parent.0, name, true), reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply_empty(self.state().rename(parent.0, name, newparent.0, newname, flags), reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut state = self.state();
        let result = (|| {
            let is_file = state.file(ino.0).is_ok();
            if is_file && flags.0 & libc::O_TRUNC != 0 {
                state.require_power()?;
                state.file(ino.0)?.truncate(0);
            }
            state.attr(ino.0).map(|_| ())
        })();
        match result {
            Ok(()) => reply.opened(FileHandle(0), OPEN_FLAGS),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut state = self.state();
        let result = match state.lookup(parent.0, name) {
            Ok(_) if flags & libc::O_EXCL != 0 => Err(Errno::EEXIST),
            Ok(ino) => (|| {
                if flags & libc::O_TRUNC != 0 {
                    state.require_power()?;
                    state.file(ino)?.truncate(0);
                }
                Ok(ino)
            })(),
            Err(_) => state.make(req, parent.0, name, mode, umask, FileType::RegularFile),
        };
        match result.and_then(|ino| state.attr(ino)) {
            Ok(attr) => reply.created(&TTL, &attr, Generation(0), FileHandle(0), OPEN_FLAGS),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut state = self.state();
        match state.file(ino.0).and_then(|f| f.read(offset, u64::from(size)).map_err(Errno::from)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut state = self.state();
        let result = (|| {
            state.require_power()?;
            let file = state.file(ino.0)?;
            // With direct_io the kernel passes the descriptor's offset; appends go to our end.
            let offset = if flags.0 & libc::O_APPEND != 0 { file.len } else { offset };
            file.write(offset, data).map_err(Errno::from)?;
            state.inodes.get_mut(&ino.0).expect("file exists").mtime = SystemTime::now();
            Ok(())
        })();
        match result {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        // close(2) is not a sync.
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply_empty(self.state().sync_file(ino.0), reply);
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let state = self.state();
        let entries = match state.entries(ino.0) {
            Ok(entries) => entries,
            Err(e) => return reply.error(e),
        };
        let dots =
            [(ino.0, FileType::Directory, OsStr::new(".")), (INodeNo::ROOT.0, FileType::Directory, OsStr::new(".."))];
        let named = entries.iter().map(|(name, &child)| {
            let kind = state.inodes.get(&child).map_or(FileType::RegularFile, |i| i.kind);
            (child, kind, name.as_os_str())
        });
        for (i, (child, kind, name)) in dots.into_iter().chain(named).enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply_empty(self.state().sync_dir(ino.0), reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Plenty of room; sled never asks, df does.
        reply.statfs(1 << 24, 1 << 24, 1 << 24, 1 << 20, 1 << 20, PAGE as u32, 255, PAGE as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path) -> FileData {
        let backing = dir.join("f");
        File::create(&backing).unwrap();
        FileData { backing, durable_len: 0, len: 0, stale_from: u64::MAX, dirty: BTreeMap::new() }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lazyfs-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn unsynced_writes_are_lost_and_synced_ones_kept() {
        let dir = scratch("data");
        let mut f = file(&dir);
        f.write(0, b"hello").unwrap();
        f.sync().unwrap();
        f.write(5000, b"world").unwrap();
        assert_eq!(f.read(5000, 5).unwrap(), b"world");
        f.forget_unsynced();
        assert_eq!(f.len, 5);
        assert_eq!(f.read(0, 100).unwrap(), b"hello");
        assert_eq!(std::fs::read(&f.backing).unwrap(), b"hello");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn truncate_then_grow_reads_zeros_before_and_after_sync() {
        let dir = scratch("trunc");
        let mut f = file(&dir);
        f.write(0, &[7u8; 10_000]).unwrap();
        f.sync().unwrap();
        f.truncate(10);
        f.write(9_000, b"x").unwrap();
        let expect = |f: &FileData| {
            let all = f.read(0, 20_000).unwrap();
            assert_eq!(all.len(), 9_001);
            assert!(all[..10].iter().all(|&b| b == 7));
            assert!(all[10..9_000].iter().all(|&b| b == 0));
            assert_eq!(all[9_000], b'x');
        };
        expect(&f);
        f.sync().unwrap();
        expect(&f);
        assert_eq!(std::fs::read(&f.backing).unwrap(), f.read(0, 20_000).unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_cut_undoes_a_truncate() {
        let dir = scratch("cut-trunc");
        let mut f = file(&dir);
        f.write(0, b"durable").unwrap();
        f.sync().unwrap();
        f.truncate(0);
        f.forget_unsynced();
        assert_eq!(f.read(0, 100).unwrap(), b"durable");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// The same model seen through a real mount (the kernel must not cache around it).
#[cfg(test)]
mod mounted {
    use std::fs;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn a_cut_keeps_exactly_what_was_synced() {
        if !Path::new("/dev/fuse").exists() {
            eprintln!("!!! SKIPPED: no /dev/fuse, the mounted file system test did not run");
            return;
        }
        let root = std::env::temp_dir().join(format!("lazyfs-mounted-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let (backing, mnt) = (root.join("backing"), root.join("mnt"));
        fs::create_dir_all(&backing).unwrap();
        fs::create_dir_all(&mnt).unwrap();
        let (lazy, power) = LazyFs::new(&backing, Names::Journal);
        let session = fuser::spawn_mount(lazy, &mnt, &fuser::Config::default()).expect("mount (as root)");

        let synced = mnt.join("synced");
        let mut f = File::create(&synced).unwrap();
        // sled takes an exclusive flock on its db file; the kernel keeps it for us.
        let other = File::open(&synced).unwrap();
        assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
        assert_eq!(unsafe { libc::flock(other.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, -1);
        drop(other);
        f.write_all(b"kept").unwrap();
        f.sync_data().unwrap();
        f.write_all(b" and lost").unwrap();
        let created_then_synced_elsewhere = mnt.join("named");
        fs::write(&created_then_synced_elsewhere, b"data never synced").unwrap();
        // Syncing another file commits every name so far, and only that file's data.
        File::create(mnt.join("anchor")).unwrap().sync_all().unwrap();
        fs::create_dir(mnt.join("dir")).unwrap();
        fs::write(mnt.join("dir/never"), b"nothing synced").unwrap();
        fs::rename(&synced, mnt.join("renamed")).unwrap();
        assert_eq!(fs::read(mnt.join("renamed")).unwrap(), b"kept and lost");

        power.power_off();
        let err = fs::write(mnt.join("after"), b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        power.restore_power();

        assert_eq!(fs::read(&synced).unwrap(), b"kept");
        assert_eq!(fs::read(&created_then_synced_elsewhere).unwrap(), b"");
        assert!(!mnt.join("dir").exists());
        assert!(!mnt.join("renamed").exists());
        assert!(!mnt.join("after").exists());

        // fsyncdir commits names too; a truncate is undone by a cut like a write.
        fs::create_dir(mnt.join("d2")).unwrap();
        File::open(&mnt).unwrap().sync_all().unwrap();
        File::options().write(true).open(&synced).unwrap().set_len(1).unwrap();
        power.power_off();
        power.restore_power();
        assert!(mnt.join("d2").is_dir());
        assert_eq!(fs::read(&synced).unwrap(), b"kept");

        drop(f);
        session.umount_and_join().expect("unmounted");
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn per_directory_names_need_their_own_directory_synced() {
        if !Path::new("/dev/fuse").exists() {
            eprintln!("!!! SKIPPED: no /dev/fuse, the mounted file system test did not run");
            return;
        }
        let root = std::env::temp_dir().join(format!("lazyfs-perdir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let (backing, mnt) = (root.join("backing"), root.join("mnt"));
        fs::create_dir_all(&backing).unwrap();
        fs::create_dir_all(&mnt).unwrap();
        let (lazy, power) = LazyFs::new(&backing, Names::PerDirectory);
        let session = fuser::spawn_mount(lazy, &mnt, &fuser::Config::default()).expect("mount (as root)");

        fs::create_dir(mnt.join("d")).unwrap();
        File::open(&mnt).unwrap().sync_all().unwrap(); // "d" is durable, its entries not yet
        let mut f = File::create(mnt.join("d/f")).unwrap();
        f.write_all(b"synced data, unsynced name").unwrap();
        f.sync_all().unwrap();
        drop(f); // an open file would keep the unmount below from happening
        power.power_off();
        power.restore_power();
        assert!(mnt.join("d").is_dir());
        assert!(!mnt.join("d/f").exists());

        let mut f = File::create(mnt.join("d/g")).unwrap();
        f.write_all(b"both synced").unwrap();
        f.sync_all().unwrap();
        File::open(mnt.join("d")).unwrap().sync_all().unwrap();
        power.power_off();
        power.restore_power();
        assert_eq!(fs::read(mnt.join("d/g")).unwrap(), b"both synced");

        drop(f);
        session.umount_and_join().expect("unmounted");
        let _ = fs::remove_dir_all(&root);
    }
}

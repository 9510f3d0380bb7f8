//! The backup file, version 1. All integers big-endian:
//!
//! ```text
//! magic "CWBACKUP" | format version u32 | cartwright version (u32 len, utf-8) |
//! created at (unix ms, i64) | tree count u32 |
//! per tree: name (u32 len, bytes) | record count u64 | records: key (u32 len, bytes), value (u32 len, bytes) |
//! SHA-256 of every byte before it (32 bytes)
//! ```
//!
//! A reader checks the magic, then the version, then the checksum of the whole file before it
//! trusts a single length in it.

use std::io::{self, Read, Seek, SeekFrom, Write};

use sha2::{Digest, Sha256};

use super::BackupError;
use crate::store::{Snapshot, StoreError};

pub const MAGIC: &[u8; 8] = b"CWBACKUP";
pub const FORMAT_VERSION: u32 = 1;
const CHECKSUM_LEN: u64 = 32;
/// Magic and format version: what is read before the checksum is known to match.
const PREAMBLE_LEN: u64 = 12;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub format_version: u32,
    pub cartwright_version: String,
    pub created_at_ms: i64,
    pub trees: u32,
}

/// One tree of a backup: its name and how many records it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSummary {
    pub name: String,
    pub records: u64,
}

/// Writes the snapshot to `out`, trailing checksum included.
pub fn encode(snapshot: &Snapshot, out: impl Write, created_at_ms: i64) -> Result<Vec<TreeSummary>, BackupError> {
    let mut out = Hashing { inner: out, hasher: Sha256::new() };
    let names = snapshot.tree_names();
    out.write_all(MAGIC)?;
    out.write_all(&FORMAT_VERSION.to_be_bytes())?;
    write_bytes(&mut out, env!("CARGO_PKG_VERSION").as_bytes())?;
    out.write_all(&created_at_ms.to_be_bytes())?;
    out.write_all(&u32::try_from(names.len()).map_err(|_| malformed("too many trees"))?.to_be_bytes())?;
    let mut summaries = Vec::with_capacity(names.len());
    for name in names {
        let count = snapshot.count(&name)?;
        write_bytes(&mut out, &name)?;
        out.write_all(&count.to_be_bytes())?;
        let mut written = 0u64;
        snapshot.for_each(&name, |k, v| {
            written += 1;
            write_bytes(&mut out, k)?;
            write_bytes(&mut out, v)
        })?;
        if written != count {
            // Only a write behind the committer's back could do this: refuse the backup.
            return Err(BackupError::Store(StoreError::Codec {
                table: "backup",
                reason: "tree changed while read".into(),
            }));
        }
        summaries.push(TreeSummary { name: String::from_utf8_lossy(&name).into_owned(), records: count });
    }
    let digest = out.hasher.finalize();
    out.inner.write_all(&digest)?;
    out.inner.flush()?;
    Ok(summaries)
}

/// Checks magic, format version and checksum; leaves `input` at an unspecified position.
pub fn verify(input: &mut (impl Read + Seek)) -> Result<(), BackupError> {
    let len = input.seek(SeekFrom::End(0))?;
    input.seek(SeekFrom::Start(0))?;
    let mut preamble = [0u8; PREAMBLE_LEN as usize];
    if len < PREAMBLE_LEN || input.read_exact(&mut preamble).is_err() || &preamble[..8] != MAGIC {
        return Err(BackupError::NotABackup);
    }
    let version = u32::from_be_bytes(preamble[8..].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(BackupError::UnknownVersion(version));
    }
    if len < PREAMBLE_LEN + CHECKSUM_LEN {
        return Err(BackupError::Checksum);
    }
    input.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    io::copy(&mut input.by_ref().take(len - CHECKSUM_LEN), &mut hasher)?;
    let mut expected = [0u8; CHECKSUM_LEN as usize];
    input.read_exact(&mut expected)?;
    if hasher.finalize().as_slice() != expected {
        return Err(BackupError::Checksum);
    }
    Ok(())
}

/// Verifies `input`, then reads it from the start, calling `visit(tree, key, value)` for
/// every record in file order.
pub fn decode(
    input: &mut (impl Read + Seek),
    mut visit: impl FnMut(&[u8], &[u8], &[u8]) -> Result<(), BackupError>,
) -> Result<(Header, Vec<TreeSummary>), BackupError> {
    verify(input)?;
    let len = input.seek(SeekFrom::End(0))?;
    input.seek(SeekFrom::Start(PREAMBLE_LEN))?;
    let mut r = Bounded { inner: input, left: len - PREAMBLE_LEN - CHECKSUM_LEN };
    let cartwright_version =
        String::from_utf8(r.bytes()?).map_err(|_| malformed("the cartwright version is not utf-8"))?;
    let created_at_ms = i64::from_be_bytes(r.array()?);
    let trees = u32::from_be_bytes(r.array()?);
    let mut summaries = Vec::new();
    for _ in 0..trees {
        let name = r.bytes()?;
        let records = u64::from_be_bytes(r.array()?);
        for _ in 0..records {
            let key = r.bytes()?;
            let value = r.bytes()?;
            visit(&name, &key, &value)?;
        }
        summaries.push(TreeSummary { name: String::from_utf8_lossy(&name).into_owned(), records });
    }
    if r.left != 0 {
        return Err(malformed("bytes after the last tree"));
    }
    Ok((Header { format_version: FORMAT_VERSION, cartwright_version, created_at_ms, trees }, summaries))
}

fn malformed(what: &str) -> BackupError {
    BackupError::Malformed(what.to_string())
}

fn write_bytes(out: &mut impl Write, bytes: &[u8]) -> Result<(), BackupError> {
    let len = u32::try_from(bytes.len()).map_err(|_| malformed("a record longer than 4 GiB"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(bytes)?;
    Ok(())
}

/// Hashes every byte it passes on.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads no further than the checksum, so a length in the file can never make us allocate
/// more than the file holds.
struct Bounded<'a, R> {
    inner: &'a mut R,
    left: u64,
}

impl<R: Read> Bounded<'_, R> {
    fn take(&mut self, n: u64) -> Result<Vec<u8>, BackupError> {
        if n > self.left {
            return Err(malformed("a length runs past the end of the file"));
        }
        self.left -= n;
        let mut buf = vec![0u8; n as usize];
        self.inner.read_exact(&mut buf)?;
        Ok(buf)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BackupError> {
        Ok(self.take(N as u64)?.try_into().expect("N bytes"))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, BackupError> {
        let len = u32::from_be_bytes(self.array()?);
        self.take(u64::from(len))
    }
}

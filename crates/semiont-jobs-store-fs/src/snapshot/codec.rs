//! The index snapshot's file format: [`encode`] and [`decode`] of the
//! records, string tables and directory stamps, with the header, checksum
//! and end marker that make a torn or damaged file detectable. Pure: no
//! file system access (that is the parent module's).

use crate::index::FinRec;
use crate::sys::FileInfo;

/// The format version this code writes and reads.
pub(crate) const VERSION: u32 = 1;
const MAGIC: [u8; 8] = *b"SJIXSNAP";
const END: [u8; 8] = *b"SJIXEND\n";
const HEADER: usize = 88;
const REC: usize = 64;
const TRAILER: usize = 16;
/// Longest type or user string accepted.
const MAX_STRING: usize = 1 << 20;

/// A valid snapshot, as loaded.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// Job type names; records' `ty` indexes this.
    pub types: Vec<String>,
    /// User ids; records' `user` indexes this.
    pub users: Vec<String>,
    /// Records sorted by uuid (strictly), `live` false, with the mtime
    /// and size of their files.
    pub recs: Vec<SnapRec>,
    /// Per finished status (complete, failed, cancelled): the directory's
    /// inode and mtime (ns) when the snapshot was written, if it had not
    /// changed for a while before and did not change while writing.
    pub dirs: [DirStamp; 3],
}

/// A status directory's identity and modification time; all zero: unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DirStamp {
    pub ino: u64,
    pub mtime_ns: i64,
}

impl DirStamp {
    /// The stamp of `info`.
    pub fn of(info: &FileInfo) -> DirStamp {
        DirStamp {
            ino: info.ino,
            mtime_ns: info.mtime_ns,
        }
    }

    /// Whether the stamp says anything.
    pub fn known(&self) -> bool {
        *self != DirStamp::default()
    }
}

/// One record to write: the facts and the file they were learned from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SnapRec {
    pub rec: FinRec,
    pub mtime_ns: i64,
    pub size: u64,
}

/// A 64-bit checksum (not cryptographic: it detects torn and damaged files).
fn checksum(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h: u64 = 0x243f_6a88_85a3_08d3 ^ (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K);
        h ^= h >> 29;
    }
    let mut w = [0u8; 8];
    let rest = chunks.remainder();
    w[..rest.len()].copy_from_slice(rest);
    h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K);
    h ^= h >> 32;
    h.wrapping_mul(K) ^ (h >> 29)
}

/// The snapshot file's bytes.
pub(crate) fn encode(
    types: &[Box<str>],
    users: &[Box<str>],
    recs: &[SnapRec],
    dirs: &[DirStamp; 3],
    written_ms: i64,
) -> Vec<u8> {
    let strings: usize = types.iter().chain(users).map(|s| 4 + s.len()).sum();
    let mut out = Vec::with_capacity(HEADER + strings + recs.len() * REC + TRAILER);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&written_ms.to_le_bytes());
    out.extend_from_slice(&(types.len() as u32).to_le_bytes());
    out.extend_from_slice(&(users.len() as u32).to_le_bytes());
    out.extend_from_slice(&(recs.len() as u64).to_le_bytes());
    for d in dirs {
        out.extend_from_slice(&d.ino.to_le_bytes());
        out.extend_from_slice(&d.mtime_ns.to_le_bytes());
    }
    for s in types.iter().chain(users) {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    for s in recs {
        let r = &s.rec;
        out.extend_from_slice(&r.uuid);
        out.push(r.status);
        out.push(0);
        out.extend_from_slice(&r.ty.to_le_bytes());
        out.extend_from_slice(&r.user.to_le_bytes());
        out.extend_from_slice(&r.created.to_le_bytes());
        out.extend_from_slice(&r.finished_at.to_le_bytes());
        out.extend_from_slice(&r.ino.to_le_bytes());
        out.extend_from_slice(&s.mtime_ns.to_le_bytes());
        out.extend_from_slice(&s.size.to_le_bytes());
    }
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out.extend_from_slice(&END);
    out
}

/// A bounds-checked little-endian reader.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or("truncated")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn arr<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.arr()?))
    }

    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.arr()?))
    }

    fn i64(&mut self) -> std::result::Result<i64, String> {
        Ok(i64::from_le_bytes(self.arr()?))
    }

    fn strings(&mut self, n: u32) -> std::result::Result<Vec<String>, String> {
        let mut out = Vec::new();
        for _ in 0..n {
            let len = self.u32()? as usize;
            if len > MAX_STRING {
                return Err("a string is too long".into());
            }
            let s = std::str::from_utf8(self.take(len)?).map_err(|_| "a string is not UTF-8")?;
            out.push(s.to_owned());
        }
        Ok(out)
    }
}

/// Parses and checks a snapshot file; the error says why it is not used.
pub(crate) fn decode(buf: &[u8]) -> std::result::Result<Snapshot, String> {
    if buf.len() < HEADER + TRAILER {
        return Err(format!("too short ({} bytes)", buf.len()));
    }
    if buf[..8] != MAGIC {
        return Err("not an index snapshot (bad magic)".into());
    }
    let version = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
    if version != VERSION {
        return Err(format!("format version {version}, not {VERSION}"));
    }
    let body = buf.len() - TRAILER;
    if buf[body + 8..] != END {
        return Err("truncated (no end marker)".into());
    }
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&buf[body..body + 8]);
    if u64::from_le_bytes(sum) != checksum(&buf[..body]) {
        return Err("checksum mismatch (damaged)".into());
    }
    let mut r = Reader {
        buf: &buf[..body],
        pos: 12,
    };
    let _flags = r.u32()?;
    let _written_ms = r.i64()?;
    let ntypes = r.u32()?;
    let nusers = r.u32()?;
    let nrecs = r.u64()?;
    let mut dirs = [DirStamp::default(); 3];
    for d in &mut dirs {
        d.ino = r.u64()?;
        d.mtime_ns = r.i64()?;
    }
    let types = r.strings(ntypes)?;
    let users = r.strings(nusers)?;
    let left = body - r.pos;
    if u64::try_from(left / REC).ok() != Some(nrecs) || !left.is_multiple_of(REC) {
        return Err(format!("{left} bytes of records for a count of {nrecs}"));
    }
    let n = left / REC;
    let mut recs: Vec<SnapRec> = Vec::with_capacity(n);
    for _ in 0..n {
        let uuid: [u8; 16] = r.arr()?;
        let [status, _] = r.arr::<2>()?;
        let ty = u16::from_le_bytes(r.arr()?);
        let user = r.u32()?;
        let created = r.i64()?;
        let finished_at = r.i64()?;
        let ino = r.u64()?;
        let mtime_ns = r.i64()?;
        let size = r.u64()?;
        if !(2..=4).contains(&status) {
            return Err(format!("a record has status {status}"));
        }
        if usize::from(ty) >= types.len() || user as usize >= users.len() {
            return Err("a record names a string that is not there".into());
        }
        if recs.last().is_some_and(|p| p.rec.uuid >= uuid) {
            return Err("records are not sorted".into());
        }
        recs.push(SnapRec {
            rec: FinRec {
                uuid,
                created,
                finished_at,
                ino,
                user,
                ty,
                status,
                live: false,
            },
            mtime_ns,
            size,
        });
    }
    Ok(Snapshot {
        types,
        users,
        recs,
        dirs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u8, status: u8) -> SnapRec {
        let mut uuid = [0u8; 16];
        uuid[15] = i;
        SnapRec {
            rec: FinRec {
                uuid,
                created: 1000 + i64::from(i),
                finished_at: 2000,
                ino: 77 + u64::from(i),
                user: 1,
                ty: 0,
                status,
                live: false,
            },
            mtime_ns: 5,
            size: 300,
        }
    }

    fn sample() -> Vec<u8> {
        let types = vec![Box::<str>::from("noop")];
        let users = vec![Box::<str>::from("a"), Box::<str>::from("b")];
        let dirs = [
            DirStamp {
                ino: 9,
                mtime_ns: 10,
            },
            DirStamp::default(),
            DirStamp::default(),
        ];
        encode(&types, &users, &[rec(1, 2), rec(2, 3), rec(3, 4)], &dirs, 0)
    }

    #[test]
    fn round_trips() {
        let s = decode(&sample()).unwrap();
        assert_eq!(s.types, ["noop"]);
        assert_eq!(s.users, ["a", "b"]);
        assert_eq!(s.recs.len(), 3);
        assert_eq!(s.recs[1].rec, rec(2, 3).rec);
        assert_eq!((s.recs[2].mtime_ns, s.recs[2].size), (5, 300));
        assert_eq!(s.dirs[0].ino, 9);
        assert!(!s.dirs[1].known());
    }

    #[test]
    fn any_damage_is_refused() {
        let good = sample();
        for cut in [0, 1, 8, 39, 40, 88, good.len() / 2, good.len() - 1] {
            assert!(decode(&good[..cut]).is_err(), "truncated at {cut}");
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_err(), "flipped byte {i}");
        }
        let mut other_version = good.clone();
        other_version[8] = 2;
        assert!(decode(&other_version).unwrap_err().contains("version"));
        // Well-formed but meaningless content is refused too.
        let types = vec![Box::<str>::from("noop")];
        let users = vec![Box::<str>::from("a")];
        let unsorted = encode(
            &types,
            &users,
            &[rec(2, 2), rec(1, 2)],
            &Default::default(),
            0,
        );
        assert!(decode(&unsorted).is_err());
        let pending = encode(&types, &users, &[rec(1, 0)], &Default::default(), 0);
        assert!(decode(&pending).is_err());
        let dangling_user = encode(&types, &users, &[rec(1, 2)], &Default::default(), 0);
        assert!(decode(&dangling_user).is_err(), "user 1 of 1 string");
    }
}

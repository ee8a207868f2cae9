//! Thin wrappers over the few system calls the protocol needs, all relative
//! to directory file descriptors and none following symlinks: `openat`,
//! `renameat2(RENAME_NOREPLACE)`, `unlinkat`, `fstatat`, `fsync`, `syncfs`.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Runs `f` with `name` as a NUL-terminated string, on the stack when short.
fn with_cstr<T>(name: &str, f: impl FnOnce(&CStr) -> io::Result<T>) -> io::Result<T> {
    const MAX: usize = 384;
    if name.len() < MAX {
        let mut buf = [0u8; MAX];
        buf[..name.len()].copy_from_slice(name.as_bytes());
        match CStr::from_bytes_with_nul(&buf[..=name.len()]) {
            Ok(c) => f(c),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "file name contains NUL",
            )),
        }
    } else {
        let c = CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file name contains NUL"))?;
        f(&c)
    }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// What `fstat` says about a file we opened or looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileInfo {
    /// Inode number: a new one for every published file.
    pub ino: u64,
    /// Last modification, in milliseconds since the epoch.
    pub mtime_ms: i64,
    /// Last modification, in nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// File type bits (`S_IFMT` part of `st_mode`).
    pub kind: u32,
    /// Owner.
    pub uid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
}

impl FileInfo {
    fn from_stat(st: &libc::stat) -> Self {
        FileInfo {
            ino: st.st_ino,
            mtime_ms: st.st_mtime.saturating_mul(1000) + st.st_mtime_nsec / 1_000_000,
            mtime_ns: st
                .st_mtime
                .saturating_mul(1_000_000_000)
                .saturating_add(st.st_mtime_nsec),
            kind: st.st_mode & libc::S_IFMT,
            uid: st.st_uid,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mode: st.st_mode & 0o7777,
        }
    }

    pub fn is_file(&self) -> bool {
        self.kind == libc::S_IFREG
    }

    pub fn is_dir(&self) -> bool {
        self.kind == libc::S_IFDIR
    }

    pub fn is_symlink(&self) -> bool {
        self.kind == libc::S_IFLNK
    }

    /// A short word for the file type, for quarantine reasons.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            libc::S_IFREG => "regular file",
            libc::S_IFDIR => "directory",
            libc::S_IFLNK => "symlink",
            libc::S_IFIFO => "fifo",
            libc::S_IFSOCK => "socket",
            libc::S_IFCHR | libc::S_IFBLK => "device",
            _ => "unknown file type",
        }
    }
}

/// Error returned when a path that must be a regular file is something else.
pub(crate) fn not_regular(info: &FileInfo) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("is a {}, not a regular file", info.kind_name()),
    )
}

/// An open directory: every operation is relative to its descriptor, so a
/// directory swapped for a symlink after open is never followed.
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Opens a directory without following a symlink in its last component.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
        // SAFETY: `c` is a valid NUL-terminated string; the flags are constants.
        let fd = cvt(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: `fd` was just returned by open and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Dir {
            fd,
            path: path.to_owned(),
        })
    }

    /// Opens the subdirectory `name` without following symlinks.
    pub fn open_sub(&self, name: &str) -> io::Result<Dir> {
        let fd = with_cstr(name, |c| {
            // SAFETY: valid dirfd and NUL-terminated name.
            cvt(unsafe {
                libc::openat(
                    self.fd.as_raw_fd(),
                    c.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )
            })
        })?;
        // SAFETY: fresh descriptor from openat.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Dir {
            fd,
            path: self.path.join(name),
        })
    }

    /// The directory's path (for messages and `read_dir`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path/name`, for messages.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The directory itself as a `File` (for `flock`).
    pub fn as_file(&self) -> io::Result<File> {
        Ok(File::from(self.fd.try_clone()?))
    }

    /// `fstatat(name, AT_SYMLINK_NOFOLLOW)`; `None` when absent.
    pub fn stat(&self, name: &str) -> io::Result<Option<FileInfo>> {
        let r = with_cstr(name, |c| {
            // SAFETY: `st` is plain old data filled by the kernel.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: valid dirfd, NUL-terminated name, valid out-pointer.
            cvt(unsafe {
                libc::fstatat(
                    self.fd.as_raw_fd(),
                    c.as_ptr(),
                    &mut st,
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            })?;
            Ok(FileInfo::from_stat(&st))
        });
        match r {
            Ok(info) => Ok(Some(info)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads the regular file `name` into `buf` (cleared first). Symlinks
    /// fail with `ELOOP`, other non-regular files with an error saying what
    /// they are; a FIFO never blocks the open.
    pub fn read(&self, name: &str, buf: &mut Vec<u8>) -> io::Result<FileInfo> {
        #[cfg(feature = "fault-injection")]
        if let Some(e) = crate::fault::read_error(name) {
            return Err(e);
        }
        buf.clear();
        let fd = with_cstr(name, |c| {
            // SAFETY: valid dirfd and NUL-terminated name.
            cvt(unsafe {
                libc::openat(
                    self.fd.as_raw_fd(),
                    c.as_ptr(),
                    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
                )
            })
        })?;
        // SAFETY: fresh descriptor from openat, owned here.
        let mut file = unsafe { File::from_raw_fd(fd) };
        let info = fstat(file.as_raw_fd())?;
        if !info.is_file() {
            return Err(not_regular(&info));
        }
        // Published files never change in place: read the size `fstat`
        // gave, and only look further if the file was shorter than that.
        let size = usize::try_from(info.size).unwrap_or(0);
        buf.resize(size, 0);
        let mut got = 0;
        while got < size {
            match file.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(got);
        if got == size && size == 0 {
            file.read_to_end(buf)?;
        }
        Ok(info)
    }

    /// Creates `name` exclusively (mode 0600), writes `data`, optionally
    /// `fdatasync`s it, and returns its inode number when `want_ino`
    /// (else 0).
    pub fn create_write(
        &self,
        name: &str,
        data: &[u8],
        sync: bool,
        want_ino: bool,
    ) -> io::Result<u64> {
        let fd = with_cstr(name, |c| {
            // SAFETY: valid dirfd and NUL-terminated name; mode is a constant.
            cvt(unsafe {
                libc::openat(
                    self.fd.as_raw_fd(),
                    c.as_ptr(),
                    libc::O_WRONLY
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    0o600 as libc::c_uint,
                )
            })
        })?;
        // SAFETY: fresh descriptor from openat, owned here.
        let mut file = unsafe { File::from_raw_fd(fd) };
        let r = (|| {
            file.write_all(data)?;
            if sync {
                file.sync_data()?;
            }
            if want_ino {
                fstat(file.as_raw_fd()).map(|i| i.ino)
            } else {
                Ok(0)
            }
        })();
        match r {
            Ok(ino) => Ok(ino),
            Err(e) => {
                drop(file);
                let _ = self.unlink(name);
                Err(e)
            }
        }
    }

    /// Rewrites the existing file `name` with `data` without truncating it
    /// to zero first (on ext4 a truncate to zero makes the close flush the
    /// file: `auto_da_alloc`): writes from offset 0, then shortens the file
    /// to `data`'s length. Optionally `fdatasync`s it. Returns its inode.
    pub fn rewrite(&self, name: &str, data: &[u8], sync: bool) -> io::Result<u64> {
        use std::os::unix::fs::FileExt;
        let fd = with_cstr(name, |c| {
            // SAFETY: valid dirfd and NUL-terminated name.
            cvt(unsafe {
                libc::openat(
                    self.fd.as_raw_fd(),
                    c.as_ptr(),
                    libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )
            })
        })?;
        // SAFETY: fresh descriptor from openat, owned here.
        let file = unsafe { File::from_raw_fd(fd) };
        file.write_all_at(data, 0)?;
        let info = fstat(file.as_raw_fd())?;
        if info.size > data.len() as u64 {
            file.set_len(data.len() as u64)?;
        }
        if sync {
            file.sync_data()?;
        }
        Ok(info.ino)
    }

    /// Opens (creating if needed, mode 0600) a file for reading and writing,
    /// never following a symlink.
    pub fn open_rw(&self, name: &str, create: bool) -> io::Result<File> {
        let mut flags = libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
        if create {
            flags |= libc::O_CREAT;
        }
        let fd = with_cstr(name, |c| {
            // SAFETY: valid dirfd and NUL-terminated name; mode is a constant.
            cvt(unsafe {
                libc::openat(
                    self.fd.as_raw_fd(),
                    c.as_ptr(),
                    flags,
                    0o600 as libc::c_uint,
                )
            })
        })?;
        // SAFETY: fresh descriptor from openat, owned here.
        let file = unsafe { File::from_raw_fd(fd) };
        let info = fstat(file.as_raw_fd())?;
        if !info.is_file() {
            return Err(not_regular(&info));
        }
        Ok(file)
    }

    /// Removes the file `name`.
    pub fn unlink(&self, name: &str) -> io::Result<()> {
        with_cstr(name, |c| {
            // SAFETY: valid dirfd and NUL-terminated name.
            cvt(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) }).map(drop)
        })
    }

    /// Removes the empty directory `name`.
    pub fn rmdir(&self, name: &str) -> io::Result<()> {
        with_cstr(name, |c| {
            // SAFETY: valid dirfd and NUL-terminated name.
            cvt(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) })
                .map(drop)
        })
    }

    /// Creates the directory `name` with `mode`.
    pub fn mkdir(&self, name: &str, mode: u32) -> io::Result<()> {
        with_cstr(name, |c| {
            // SAFETY: valid dirfd and NUL-terminated name.
            cvt(unsafe { libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) })
                .map(drop)
        })
    }

    /// `fsync` of the directory: makes renames into and out of it durable.
    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: valid descriptor.
        cvt(unsafe { libc::fsync(self.fd.as_raw_fd()) }).map(drop)
    }

    /// `syncfs` of the filesystem holding this directory: one barrier for
    /// every file written before it.
    pub fn syncfs(&self) -> io::Result<()> {
        // SAFETY: valid descriptor.
        cvt(unsafe { libc::syncfs(self.fd.as_raw_fd()) }).map(drop)
    }

    /// Calls `f` with each name in the directory (without `.` and `..`),
    /// the file type and the inode number the directory entry reports:
    /// `getdents64` with a large buffer, no `stat` per entry (except for
    /// entries whose type the filesystem does not report), no allocation
    /// per entry, nothing collected.
    pub fn for_each_entry(&self, mut f: impl FnMut(&[u8], EntryType, u64)) -> io::Result<()> {
        // A descriptor of our own: its directory offset is not shared.
        let fd = cvt(
            // SAFETY: valid dirfd and a NUL-terminated constant name.
            unsafe {
                libc::openat(
                    self.fd.as_raw_fd(),
                    c".".as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            },
        )?;
        // SAFETY: fresh descriptor from openat, owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut buf = vec![0u8; 1 << 18];
        loop {
            // SAFETY: the buffer is valid for its length; the kernel writes
            // at most that many bytes of `linux_dirent64` records.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    fd.as_raw_fd(),
                    buf.as_mut_ptr(),
                    buf.len(),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                return Ok(());
            }
            let mut pos = 0usize;
            let end = usize::try_from(n).unwrap_or(0).min(buf.len());
            // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen;
            // u8 d_type; char d_name[]; }
            while pos + 19 <= end {
                let rec = &buf[pos..end];
                let mut ino = [0u8; 8];
                ino.copy_from_slice(&rec[..8]);
                let ino = u64::from_ne_bytes(ino);
                let reclen = usize::from(u16::from_ne_bytes([rec[16], rec[17]]));
                if reclen < 19 || reclen > rec.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "malformed directory entry",
                    ));
                }
                let d_type = rec[18];
                let raw = &rec[19..reclen];
                let name = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
                pos += reclen;
                if name == b"." || name == b".." {
                    continue;
                }
                let ty = match d_type {
                    libc::DT_REG => EntryType::File,
                    libc::DT_DIR => EntryType::Dir,
                    libc::DT_LNK => EntryType::Symlink,
                    libc::DT_UNKNOWN => match std::str::from_utf8(name)
                        .ok()
                        .and_then(|n| self.stat(n).ok().flatten())
                    {
                        Some(i) if i.is_file() => EntryType::File,
                        Some(i) if i.is_dir() => EntryType::Dir,
                        Some(i) if i.is_symlink() => EntryType::Symlink,
                        _ => EntryType::Other,
                    },
                    _ => EntryType::Other,
                };
                let ty = if std::str::from_utf8(name).is_err() {
                    EntryType::NotUtf8
                } else {
                    ty
                };
                f(name, ty, ino);
            }
        }
    }

    /// Names in the directory (without `.` and `..`), with the file type the
    /// directory entry reports.
    pub fn list(&self) -> io::Result<Vec<(String, EntryType)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.path)? {
            let entry = entry?;
            let ty = match entry.file_type() {
                Ok(t) if t.is_file() => EntryType::File,
                Ok(t) if t.is_dir() => EntryType::Dir,
                Ok(t) if t.is_symlink() => EntryType::Symlink,
                Ok(_) => EntryType::Other,
                Err(_) => EntryType::Other,
            };
            match entry.file_name().into_string() {
                Ok(name) => out.push((name, ty)),
                Err(raw) => out.push((raw.to_string_lossy().into_owned(), EntryType::NotUtf8)),
            }
        }
        Ok(out)
    }
}

/// What a directory entry is, as `readdir` tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EntryType {
    File,
    Dir,
    Symlink,
    Other,
    /// The name is not UTF-8 (the shown name is lossy and cannot be used).
    NotUtf8,
}

fn fstat(fd: libc::c_int) -> io::Result<FileInfo> {
    // SAFETY: `st` is plain old data filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and out-pointer.
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(FileInfo::from_stat(&st))
}

/// `fstat` of an open directory.
pub(crate) fn fstat_dir(dir: &Dir) -> io::Result<FileInfo> {
    fstat(dir.fd.as_raw_fd())
}

/// `renameat2`, optionally with `RENAME_NOREPLACE` (fails with `EEXIST`
/// instead of replacing an existing target).
pub(crate) fn rename(
    from: &Dir,
    from_name: &str,
    to: &Dir,
    to_name: &str,
    noreplace: bool,
) -> io::Result<()> {
    let flags = if noreplace { libc::RENAME_NOREPLACE } else { 0 };
    renameat2(from, from_name, to, to_name, flags)
}

/// `renameat2(RENAME_EXCHANGE)`: atomically swaps two existing names.
/// `EINVAL` when the filesystem does not support it (see
/// [`is_unsupported`]).
pub(crate) fn exchange(a: &Dir, a_name: &str, b: &Dir, b_name: &str) -> io::Result<()> {
    renameat2(a, a_name, b, b_name, libc::RENAME_EXCHANGE)
}

fn renameat2(
    from: &Dir,
    from_name: &str,
    to: &Dir,
    to_name: &str,
    flags: libc::c_uint,
) -> io::Result<()> {
    with_cstr(from_name, |a| {
        with_cstr(to_name, |b| {
            // SAFETY: valid dirfds and NUL-terminated names.
            cvt(unsafe {
                libc::renameat2(
                    from.fd.as_raw_fd(),
                    a.as_ptr(),
                    to.fd.as_raw_fd(),
                    b.as_ptr(),
                    flags,
                )
            })
            .map(drop)
        })
    })
}

/// Whether an IO error says the filesystem does not support a `renameat2`
/// flag (`EINVAL`, or `ENOSYS` on very old kernels).
pub(crate) fn is_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS))
}

/// The effective user id of this process.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// This process's id.
pub(crate) fn pid() -> u32 {
    std::process::id()
}

/// `lstat` by path (for the root, before any descriptor exists).
pub(crate) fn lstat(path: &Path) -> io::Result<Option<FileInfo>> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: plain old data.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    match cvt(unsafe { libc::lstat(c.as_ptr(), &mut st) }) {
        Ok(_) => Ok(Some(FileInfo::from_stat(&st))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `fchmod` on an open directory.
pub(crate) fn chmod_dir(dir: &Dir, mode: u32) -> io::Result<()> {
    // SAFETY: valid descriptor.
    cvt(unsafe { libc::fchmod(dir.fd.as_raw_fd(), mode as libc::mode_t) }).map(drop)
}

/// Whether an IO error means "the file is not there".
pub(crate) fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// Whether an IO error means "the target exists" (from `RENAME_NOREPLACE`
/// or `O_EXCL`).
pub(crate) fn is_exists(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AlreadyExists
}

/// Whether an IO error is `ELOOP` (a symlink met with `O_NOFOLLOW`).
pub(crate) fn is_symlink_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

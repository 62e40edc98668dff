//! `warden:plugin/logs`: read-only access to server log files on this host,
//! in bounded chunks cut at line ends.
//!
//! - Permission ([`check`] with [`HostCall::LogRead`]): the plugin's grant
//!   for the target lists the file, or the directory it sits directly in,
//!   in `log_files`. The path is checked twice: as the plugin wrote it
//!   (absolute, `.` and `..` applied to the text) before the filesystem is
//!   touched, so a plugin cannot probe for files outside its grant; then
//!   resolved (`canonicalize`: symlinks and `..` on the real tree), so no
//!   link leads out of a granted directory.
//! - Only regular files: the type is checked before opening (opening a
//!   device can do something) and again on the open file, which is opened
//!   read-only, `O_NOFOLLOW` and `O_NONBLOCK` (a FIFO swapped in meanwhile
//!   does not block the call).
//! - A chunk holds at most the caller's `max-bytes`, never more than the
//!   grant's `max_result_bytes` (0 means that cap); see [`cut_forward`] and
//!   [`cut_back`] for where it is cut.
//! - The blocking work runs on tokio's blocking pool, within the run's
//!   deadline. Each call has a span (`logs.read`, `logs.read_back`) with
//!   the path and the bytes returned. Reads change nothing, so they run in
//!   dry-run too and record no action.

use super::call::{Budget, Call, Span};
use super::permission::{TargetCall, check_target};
use super::{HostState, RunEnv, invalid};
use crate::host::bindings::types::Error;
use crate::host::bindings::warden::plugin::logs::{Chunk, Host};
use std::fs::File;
use std::io::{ErrorKind, Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Which way a call reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// `read`: from this offset on.
    Forward(u64),
    /// `read-back`: the bytes before this end.
    Back(u64),
}

impl Direction {
    fn call(self) -> &'static str {
        match self {
            Direction::Forward(_) => "logs.read",
            Direction::Back(_) => "logs.read_back",
        }
    }
}

/// `path` as the plugin wrote it, absolute, with `.` dropped and `..`
/// applied to the text (never above the root).
fn normalized(path: &str) -> Result<PathBuf, Error> {
    if path.contains('\0') {
        return Err(invalid(format!(
            "log file path {path:?} contains a NUL byte"
        )));
    }
    if !path.starts_with('/') {
        return Err(invalid(format!(
            "log file path {path:?} is not absolute: name it from the root, as in the grant's \
             `log_files`"
        )));
    }
    let mut out = PathBuf::from("/");
    for component in Path::new(path).components() {
        match component {
            Component::Normal(segment) => out.push(segment),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

/// Where a forward window (the bytes from the requested offset) is cut:
/// how many bytes to return, and whether that cuts a line longer than the
/// window. At the end of the file, everything; otherwise after the last
/// `\n`; without any `\n`, the whole window (a long line).
fn cut_forward(window: &[u8], at_eof: bool) -> (usize, bool) {
    if at_eof {
        return (window.len(), false);
    }
    match window.iter().rposition(|b| *b == b'\n') {
        Some(i) => (i + 1, false),
        None => (window.len(), true),
    }
}

/// Where a backward window is cut: the index in `buf` its data starts at,
/// and whether that cuts a line longer than the window. With `lead`,
/// `buf[0]` is the byte before the window (so a window starting right
/// after a `\n` loses no line); without, the window starts at the file's
/// start and is returned whole. Otherwise the data starts after the first
/// `\n` that is not the window's last byte; without one, the whole window
/// is returned (a long line).
fn cut_back(buf: &[u8], lead: bool) -> (usize, bool) {
    if !lead {
        return (0, false);
    }
    let before_last = buf.len().saturating_sub(1);
    match buf
        .get(..before_last)
        .unwrap_or_default()
        .iter()
        .position(|b| *b == b'\n')
    {
        Some(i) => (i + 1, false),
        None => (1.min(buf.len()), true),
    }
}

/// Reads `len` bytes at `at` (fewer at the end of the file).
fn read_at(file: &mut File, at: u64, len: u64) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(at))?;
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len).read_to_end(&mut buf)?;
    Ok(buf)
}

/// "a directory", "a FIFO", ... for a file type that is not a regular file.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

fn io_error(path: &Path, what: &str, e: &std::io::Error) -> Error {
    match e.kind() {
        ErrorKind::NotFound => invalid(format!("log file `{}` does not exist", path.display())),
        _ => Error::Other(format!("cannot {what} log file `{}`: {e}", path.display())),
    }
}

/// One call, blocking: checks, opens and reads.
fn read_blocking(
    env: &RunEnv,
    target: &str,
    path: &str,
    direction: Direction,
    max_bytes: u32,
) -> Result<Chunk, Error> {
    let written = normalized(path)?;
    let grant = check_target(
        env.scope(),
        TargetCall::LogRead {
            target,
            path: &written,
        },
    )?
    .grant;
    let real = std::fs::canonicalize(&written).map_err(|e| io_error(&written, "resolve", &e))?;
    if real != written {
        check_target(
            env.scope(),
            TargetCall::LogReadResolved {
                target,
                written: &written,
                real: &real,
            },
        )?;
    }
    let refuse = |file_type: std::fs::FileType| {
        invalid(format!(
            "log file `{}` is {}: only regular files are read",
            written.display(),
            kind_of(file_type)
        ))
    };
    let meta = std::fs::symlink_metadata(&real).map_err(|e| io_error(&written, "read", &e))?;
    if !meta.file_type().is_file() {
        return Err(refuse(meta.file_type()));
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&real)
        .map_err(|e| io_error(&written, "open", &e))?;
    let meta = file
        .metadata()
        .map_err(|e| io_error(&written, "read", &e))?;
    if !meta.file_type().is_file() {
        return Err(refuse(meta.file_type()));
    }
    let size = meta.len();
    let cap = match u64::from(max_bytes) {
        0 => grant.max_result_bytes,
        n => n.min(grant.max_result_bytes),
    }
    .max(1);
    let read = |file: &mut File, at: u64, len: u64| {
        read_at(file, at, len).map_err(|e| io_error(&written, "read", &e))
    };
    match direction {
        Direction::Forward(offset) => {
            let offset = offset.min(size);
            let want = cap.min(size - offset);
            let mut data = read(&mut file, offset, want)?;
            let at_eof = offset + (data.len() as u64) >= size || (data.len() as u64) < want;
            let (keep, long_line) = cut_forward(&data, at_eof);
            data.truncate(keep);
            Ok(Chunk {
                end: offset + data.len() as u64,
                data,
                offset,
                file_size: size,
                long_line,
            })
        }
        Direction::Back(end) => {
            let end = end.min(size);
            let start = end.saturating_sub(cap);
            let lead = start > 0;
            let from = if lead { start - 1 } else { start };
            let buf = read(&mut file, from, end - from)?;
            let (skip, long_line) = cut_back(&buf, lead);
            let data = buf.get(skip..).unwrap_or_default().to_vec();
            let offset = from + skip as u64;
            Ok(Chunk {
                end: offset + data.len() as u64,
                data,
                offset,
                file_size: size,
                long_line,
            })
        }
    }
}

impl HostState {
    /// `logs.read` / `logs.read-back` without the wasm boundary.
    async fn logs_read(
        &mut self,
        target: String,
        path: String,
        direction: Direction,
        max_bytes: u32,
    ) -> Result<Chunk, Error> {
        let call = Call {
            name: direction.call(),
            span: Span::File {
                target: &target,
                path: &path,
            },
            ask: TargetCall::Logs { target: &target },
            budget: Budget::Run,
        };
        let (target, path) = (&target, &path);
        self.call(call, |_, cx| {
            Box::pin(async move {
                let work = {
                    let env = Arc::clone(cx.env);
                    let (target, path) = (target.clone(), path.clone());
                    tokio::task::spawn_blocking(move || {
                        read_blocking(&env, &target, &path, direction, max_bytes)
                    })
                };
                let chunk = match tokio::time::timeout(cx.left(), work).await {
                    Ok(Ok(result)) => result?,
                    Ok(Err(e)) => {
                        return Err(Error::Other(format!("reading the log file failed: {e}")));
                    }
                    Err(_) => {
                        return Err(Error::Timeout(
                            "the run's deadline passed while reading the log file".into(),
                        ));
                    }
                };
                cx.span.record("warden.logs.bytes", chunk.data.len() as u64);
                Ok(chunk)
            })
        })
        .await
    }
}

impl Host for HostState {
    async fn read(
        &mut self,
        target: String,
        path: String,
        offset: u64,
        max_bytes: u32,
    ) -> wasmtime::Result<Result<Chunk, Error>> {
        Ok(self
            .logs_read(target, path, Direction::Forward(offset), max_bytes)
            .await)
    }

    async fn read_back(
        &mut self,
        target: String,
        path: String,
        end: u64,
        max_bytes: u32,
    ) -> wasmtime::Result<Result<Chunk, Error>> {
        Ok(self
            .logs_read(target, path, Direction::Back(end), max_bytes)
            .await)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_absolute_and_normalized_as_written() {
        assert_eq!(
            normalized("/var/log/mongodb/mongod.log").unwrap(),
            Path::new("/var/log/mongodb/mongod.log")
        );
        assert_eq!(
            normalized("/var/log/mongodb/../../../etc/./passwd").unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(normalized("/../../x").unwrap(), Path::new("/x"));
        assert_eq!(normalized("//var//log/").unwrap(), Path::new("/var/log"));
        assert!(matches!(
            normalized("mongod.log"),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(normalized("./x"), Err(Error::InvalidInput(_))));
        assert!(matches!(normalized("/x\0y"), Err(Error::InvalidInput(_))));
    }

    /// Where a window is cut, forward (the flag: at the end of the file)
    /// and backward (the flag: a byte before the window was read).
    #[test]
    fn windows_are_cut_at_newlines() {
        type Cut = fn(&[u8], bool) -> (usize, bool);
        type Case = (Cut, &'static [u8], bool, (usize, bool));
        let (fwd, back): (Cut, Cut) = (cut_forward, cut_back);
        let cases: [Case; 10] = [
            (fwd, b"ab\ncd\nef", false, (6, false)),
            (fwd, b"ab\ncd\n", false, (6, false)),
            // A line longer than the window.
            (fwd, b"abcdef", false, (6, true)),
            // At the end of the file, everything (a last line without `\n`).
            (fwd, b"ab\ncd", true, (5, false)),
            (fwd, b"", true, (0, false)),
            // From the file's start: whole.
            (back, b"ab\ncd\n", false, (0, false)),
            // The byte before the window is a `\n`: the window starts a line.
            (back, b"\nab\ncd\n", true, (1, false)),
            // The window starts inside a line: skip to the next one.
            (back, b"xab\ncd\n", true, (4, false)),
            // The only `\n` ends the window: one long line, returned cut.
            (back, b"xabcd\n", true, (1, true)),
            (back, b"xabcd", true, (1, true)),
        ];
        for (n, (cut, window, flag, want)) in cases.into_iter().enumerate() {
            assert_eq!(cut(window, flag), want, "case {n}: {window:?}");
        }
    }

    /// A file's bytes through [`cut_forward`] / [`cut_back`] in small
    /// windows, the way the host reads it, give the file back.
    #[test]
    fn chunks_cover_the_file_exactly() {
        let file: Vec<u8> =
            b"one\ntwo two\n\nthree three three three three\nfour\nlast without newline".to_vec();
        let size = file.len() as u64;
        for cap in 1..=12u64 {
            let mut out = Vec::new();
            let mut offset = 0u64;
            while offset < size {
                let want = cap.min(size - offset);
                let window = &file[offset as usize..(offset + want) as usize];
                let (keep, _) = cut_forward(window, offset + want >= size);
                assert!(keep > 0);
                out.extend_from_slice(&window[..keep]);
                offset += keep as u64;
            }
            assert_eq!(out, file, "forward, cap {cap}");

            let mut parts = Vec::new();
            let mut end = size;
            while end > 0 {
                let start = end.saturating_sub(cap);
                let lead = start > 0;
                let from = if lead { start - 1 } else { start };
                let buf = &file[from as usize..end as usize];
                let (skip, _) = cut_back(buf, lead);
                let data = &buf[skip..];
                assert!(!data.is_empty());
                parts.push(data.to_vec());
                end = from + skip as u64;
            }
            parts.reverse();
            assert_eq!(parts.concat(), file, "backwards, cap {cap}");
        }
    }
}

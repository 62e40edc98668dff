//! Server log files on the agent's host, read-only, `warden:plugin/logs`
//! (since 0.1.3). A file is readable when the plugin's grant for the
//! target lists it, or its directory, in `log_files`:
//!
//! ```toml
//! [[grant]]
//! plugin = "index-advisor"
//! targets = ["orders"]
//! capabilities = ["read"]
//! log_files = ["/var/log/mongodb/mongod.log"]   # or the directory: "/var/log/mongodb/"
//! ```
//!
//! [`read`] and [`read_back`] are the host calls: one bounded [`Chunk`]
//! each, cut at line ends (see [`Chunk::long_line`]). [`lines`] walks a whole
//! file forwards in chunks, [`tail_lines`] gives its last lines:
//!
//! ```no_run
//! use warden_sdk::logs;
//! # fn demo() -> Result<(), warden_sdk::Error> {
//! let path = "/var/log/mongodb/mongod.log";
//! // Everything, oldest first, 1 MiB per host call.
//! for line in logs::lines("orders", path).chunk_bytes(1 << 20) {
//!     let line = line?;
//!     if line.text.contains("\"Slow query\"") {
//!         // ... parse line.text as JSON; line.offset says where it was.
//!     }
//! }
//! // Or only about the last 4 MiB.
//! let recent = logs::tail_lines("orders", path, 4 << 20)?;
//! # let _ = recent; Ok(()) }
//! ```

use crate::Error;
use crate::bindings::warden::plugin::logs as wit;
pub use crate::bindings::warden::plugin::logs::Chunk;
use std::collections::VecDeque;

/// Reads forwards from `offset`, at most `max_bytes` (0: the grant's
/// `max_result_bytes`, which also caps larger values). The chunk ends after
/// a `\n` unless it reaches the end of the file or holds part of one long
/// line; the next chunk starts at its `end`.
pub fn read(target: &str, path: &str, offset: u64, max_bytes: u32) -> Result<Chunk, Error> {
    wit::read(target, path, offset, max_bytes)
}

/// Reads backwards, the bytes before `end` (`u64::MAX`: the end of the
/// file), at most `max_bytes` (as for [`read`]). The chunk starts at a line
/// start unless it holds part of one long line; the previous chunk ends at
/// its `offset`.
pub fn read_back(target: &str, path: &str, end: u64, max_bytes: u32) -> Result<Chunk, Error> {
    wit::read_back(target, path, end, max_bytes)
}

/// The file's size, in one host call that returns no data.
pub fn size(target: &str, path: &str) -> Result<u64, Error> {
    Ok(read(target, path, u64::MAX, 1)?.file_size)
}

/// One line of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Where the line starts in the file (keep it in state to go on later).
    pub offset: u64,
    /// The line without its `\n` (and `\r`), as UTF-8 (invalid bytes
    /// replaced by U+FFFD).
    pub text: String,
    /// True when the line was longer than the reader's `max_line` and only
    /// its start is in `text`.
    pub truncated: bool,
}

/// Lines of a file read forwards in chunks; see [`lines`].
#[derive(Debug)]
pub struct Lines {
    target: String,
    path: String,
    /// The next read's offset.
    next: u64,
    /// Stop here: the file's size at the first read (a growing log does
    /// not keep the iterator going).
    stop: Option<u64>,
    chunk_bytes: u32,
    max_line: usize,
    /// Lines ready to be returned.
    ready: VecDeque<Line>,
    /// The start of a line whose end is not read yet, and its offset.
    partial: Vec<u8>,
    partial_offset: u64,
    partial_truncated: bool,
    done: bool,
}

/// Every line of `path` from its start, read forwards in chunks of
/// [`Lines::chunk_bytes`] (default: the grant's `max_result_bytes`). Stops
/// at the size the file had at the first read. A host error ends the
/// iteration after it is returned.
pub fn lines(target: &str, path: &str) -> Lines {
    Lines {
        target: target.to_owned(),
        path: path.to_owned(),
        next: 0,
        stop: None,
        chunk_bytes: 0,
        max_line: 1 << 20,
        ready: VecDeque::new(),
        partial: Vec::new(),
        partial_offset: 0,
        partial_truncated: false,
        done: false,
    }
}

impl Lines {
    /// Starts at `offset` (a line start, like a [`Line::offset`] or a
    /// chunk's `end` kept from an earlier run) instead of 0.
    #[must_use]
    pub fn from_offset(mut self, offset: u64) -> Lines {
        self.next = offset;
        self.partial_offset = offset;
        self
    }

    /// Bytes per host call; 0 (the default) means the grant's cap.
    #[must_use]
    pub fn chunk_bytes(mut self, bytes: u32) -> Lines {
        self.chunk_bytes = bytes;
        self
    }

    /// Longest line kept whole (default 1 MiB); the rest of a longer line
    /// is skipped and the line marked [`Line::truncated`].
    #[must_use]
    pub fn max_line(mut self, bytes: usize) -> Lines {
        self.max_line = bytes.max(1);
        self
    }

    /// Where the next line starts: after the last line returned, once the
    /// iterator is exhausted the file's end as it was read.
    pub fn offset(&self) -> u64 {
        self.ready
            .front()
            .map_or(self.partial_offset, |line| line.offset)
    }

    fn take_partial(&mut self, next_offset: u64) -> Line {
        let mut bytes = std::mem::take(&mut self.partial);
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let line = Line {
            offset: self.partial_offset,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            truncated: self.partial_truncated,
        };
        self.partial_offset = next_offset;
        self.partial_truncated = false;
        line
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        let room = self.max_line.saturating_sub(self.partial.len());
        if bytes.len() > room {
            self.partial
                .extend_from_slice(bytes.get(..room).unwrap_or_default());
            self.partial_truncated = true;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    /// One host call; splits its data into lines.
    fn fill(&mut self) -> Result<(), Error> {
        if self.stop.is_some_and(|stop| self.next >= stop) {
            self.done = true;
        } else {
            let chunk = read(&self.target, &self.path, self.next, self.chunk_bytes)?;
            let stop = *self.stop.get_or_insert(chunk.file_size);
            if chunk.data.is_empty() {
                self.done = true;
            } else {
                let mut at = chunk.offset;
                for piece in chunk.data.split_inclusive(|b| *b == b'\n') {
                    at += piece.len() as u64;
                    self.push_bytes(piece);
                    if piece.last() == Some(&b'\n') {
                        let line = self.take_partial(at);
                        self.ready.push_back(line);
                    }
                }
                self.next = chunk.end;
                if self.next >= stop {
                    self.done = true;
                }
            }
        }
        if self.done && !self.partial.is_empty() {
            // The file's last line, without a `\n`.
            let line = self.take_partial(self.next);
            self.ready.push_back(line);
        }
        Ok(())
    }
}

impl Iterator for Lines {
    type Item = Result<Line, Error>;

    fn next(&mut self) -> Option<Result<Line, Error>> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Some(Ok(line));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.fill() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

/// The lines that start in the last `max_bytes` of `path`, oldest first:
/// read backwards, in as many host calls as the grant's cap needs. The line
/// cut by the `max_bytes` boundary is left out, unless it is the only one
/// (the last line alone is longer than `max_bytes`): then its end comes
/// back, [`Line::truncated`].
pub fn tail_lines(target: &str, path: &str, max_bytes: u64) -> Result<Vec<Line>, Error> {
    if max_bytes == 0 {
        return Ok(Vec::new());
    }
    // The first call learns the file's size; the others go back to `from`
    // (several calls when the grant's cap is below `max_bytes`; the last
    // one returns the cut line before the first whole one, if any).
    let ask = |bytes: u64| u32::try_from(bytes).unwrap_or(u32::MAX);
    let last = read_back(target, path, u64::MAX, ask(max_bytes))?;
    let from = last.file_size.saturating_sub(max_bytes);
    let mut end = last.offset;
    let mut parts: Vec<Chunk> = vec![last];
    while end > from {
        let chunk = read_back(target, path, end, ask(end - from))?;
        if chunk.data.is_empty() {
            break;
        }
        end = chunk.offset;
        parts.push(chunk);
    }
    let Some(first) = parts.last() else {
        return Ok(Vec::new());
    };
    // The earliest chunk starts inside a line when it is a long line's end.
    let cut = first.long_line;
    let mut at = first.offset;
    let bytes: Vec<u8> = parts.iter().rev().flat_map(|c| c.data.clone()).collect();
    let mut out = Vec::new();
    for piece in bytes.split_inclusive(|b| *b == b'\n') {
        let mut text = piece.strip_suffix(b"\n").unwrap_or(piece);
        text = text.strip_suffix(b"\r").unwrap_or(text);
        out.push(Line {
            offset: at,
            text: String::from_utf8_lossy(text).into_owned(),
            truncated: out.is_empty() && cut,
        });
        at += piece.len() as u64;
    }
    if cut && out.len() > 1 {
        out.remove(0);
    }
    Ok(out)
}

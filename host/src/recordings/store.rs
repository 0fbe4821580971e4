//! Recorded events in an append-only log: numbered segment files of
//! length-prefixed, checksummed records in `recordings/` under the data
//! directory, and an index in memory (conversation → where its records
//! are) rebuilt from them when the server starts.
//!
//! Why not the database, as before: measured, a redb store's commits and
//! the syncs its durability needed (its unsynced commits do not survive a
//! crash of the process) met the agents' own syncs in the filesystem's
//! journal (budgets commit durably after every model call) and cost
//! 9–20 % at p99. A record appended to a file is in the page cache once
//! `write` returns, so it survives `kill -9` with no sync at all; the
//! writer syncs only when it has been idle for a while, at most every
//! 30 s under load, and when the server stops ([`Store::sync`]), against
//! a crash of the machine.
//!
//! Record: `u32 body length, u32 CRC-32 of the body, body`, little-endian;
//! body: `u8 kind, u64 seq, u64 at (Unix ms), u16 conversation length,
//! conversation, payload`. An event's payload is its JSON; a `SKIPPED`
//! record (an event left out for the conversation's byte cap) has none
//! and its `seq` is the number of events kept before it.
//!
//! Space is given back a segment at a time, oldest first: when the
//! segments hold more than `max_bytes`, or when everything recorded in the
//! oldest is past the retention. The conversations that began in a
//! dropped segment go with it whole (their later records are left in
//! younger segments as garbage, skipped when the index is rebuilt: a
//! conversation is taken up only from its record number 0).

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use thiserror::Error;

use super::settings::RecordingSettings;
use super::{Event, Recorded, Recording};

/// The folder of segment files, in the data directory.
pub const DIRECTORY: &str = "recordings";

const EVENT: u8 = 1;
const SKIPPED: u8 = 2;
/// Length and checksum before each body.
const HEADER: usize = 8;
/// Kind, seq, time and the conversation's length before its name.
const BODY_FIXED: usize = 1 + 8 + 8 + 2;
/// A body longer than this is taken for a torn or damaged length.
const MAX_BODY: u32 = 1 << 30;
/// The longest conversation id a record holds (its length is a `u16`);
/// the API allows 256 bytes, events of longer ones are not recorded.
const MAX_CONVERSATION: usize = u16::MAX as usize;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("recordings: cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("recordings: a record of conversation `{conversation}` in {} is damaged: {what}", path.display())]
    Damaged {
        conversation: String,
        path: PathBuf,
        what: String,
    },
    #[error("recordings: cannot encode an event of `{conversation}`: {source}")]
    Encode {
        conversation: String,
        source: serde_json::Error,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Where a record is.
#[derive(Debug, Clone, Copy)]
struct Location {
    segment: u64,
    offset: u64,
    len: u32,
}

/// What the index knows of one conversation.
#[derive(Debug)]
struct Conversation {
    /// The segment its record number 0 (or its first skipped event) is in.
    began_in: u64,
    last_ms: u64,
    /// Bytes of its events' JSON, against the per-conversation cap.
    bytes: u64,
    truncated: u64,
    records: Vec<Location>,
}

struct Segment {
    id: u64,
    path: PathBuf,
    file: Arc<File>,
    bytes: u64,
    /// The newest record's time.
    last_ms: u64,
    /// The conversations that began here: they go when it goes.
    began: Vec<String>,
}

impl Segment {
    /// A segment as known before its records are read (or written).
    fn empty(id: u64, path: PathBuf, file: File) -> Segment {
        Segment {
            id,
            path,
            file: Arc::new(file),
            bytes: 0,
            last_ms: 0,
            began: Vec::new(),
        }
    }
}

struct Index {
    conversations: HashMap<String, Conversation>,
    /// Oldest first; the last is the one appended to.
    segments: VecDeque<Segment>,
    /// Written since the last [`Store::sync`]: segment ids, and whether a
    /// segment file was created (the directory needs a sync too).
    unsynced: Vec<u64>,
    created: bool,
}

impl Index {
    /// Bytes in all segment files: summed when asked (about sixteen
    /// segments under the default caps) rather than kept in step.
    fn total(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    fn segment(&self, id: u64) -> Option<&Segment> {
        let at = self.segments.binary_search_by_key(&id, |s| s.id).ok()?;
        self.segments.get(at)
    }
}

/// The recordings: appended to by one writer, read by exports.
pub struct Store {
    dir: PathBuf,
    /// A segment past this many bytes is closed and a new one begun.
    segment_bytes: u64,
    index: Mutex<Index>,
    /// Held by whoever appends or prunes (the writer thread), for the
    /// whole of it: the index is decided, then the write made without
    /// holding `index`, then the index changed.
    appending: Mutex<()>,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.log"))
}

fn open_segment(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io("open", path))
}

/// The segments in `dir`, oldest first.
fn segment_ids(dir: &Path) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("list", dir))? {
        let entry = entry.map_err(io("list", dir))?;
        let name = entry.file_name();
        if let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// What `caxton storage verify` says of the recordings.
#[derive(Debug, Default)]
pub struct LogCheck {
    pub conversations: usize,
    pub segments: usize,
    pub bytes: u64,
    /// One line per segment with a damaged record: where, and what.
    pub damaged: Vec<String>,
}

/// Reads every record in `data_dir/recordings/` and checks it, changing
/// nothing. A torn record at the end of the newest segment is what a
/// crash mid-write (or, on a running server, a write under way) leaves:
/// not damage (the next start cuts it off).
pub fn check(data_dir: &Path) -> Result<LogCheck> {
    let dir = data_dir.join(DIRECTORY);
    if !dir.exists() {
        return Ok(LogCheck::default());
    }
    let ids = segment_ids(&dir)?;
    let mut conversations = HashMap::new();
    let mut found = LogCheck::default();
    for (n, id) in ids.iter().enumerate() {
        let path = segment_path(&dir, *id);
        let file = File::open(&path).map_err(io("open", &path))?;
        let mut segment = Segment::empty(*id, path.clone(), file);
        let tail = scan(&mut segment, &mut conversations)?;
        found.segments += 1;
        found.bytes += segment.file.metadata().map_err(io("read", &path))?.len();
        match tail {
            Tail::Clean => {}
            Tail::Torn(_, _) if n + 1 == ids.len() => {}
            Tail::Torn(offset, why) | Tail::Damaged(offset, why) => {
                found
                    .damaged
                    .push(format!("{}: {why} at offset {offset}", path.display()));
            }
        }
    }
    found.conversations = conversations.len();
    Ok(found)
}

/// Adds an empty segment `id` to be appended to.
fn begin_segment(dir: &Path, index: &mut Index, id: u64) -> Result<()> {
    let path = segment_path(dir, id);
    let file = open_segment(&path)?;
    index.segments.push_back(Segment::empty(id, path, file));
    index.created = true;
    Ok(())
}

/// One record, decoded; `payload` borrows the body.
struct Record<'a> {
    kind: u8,
    seq: u64,
    at_ms: u64,
    conversation: &'a str,
    payload: &'a [u8],
}

fn decode(body: &[u8]) -> Option<Record<'_>> {
    let fixed = body.get(..BODY_FIXED)?;
    let kind = fixed[0];
    let seq = u64::from_le_bytes(fixed[1..9].try_into().ok()?);
    let at_ms = u64::from_le_bytes(fixed[9..17].try_into().ok()?);
    let name_len = usize::from(u16::from_le_bytes(fixed[17..19].try_into().ok()?));
    let name = body.get(BODY_FIXED..BODY_FIXED + name_len)?;
    let conversation = std::str::from_utf8(name).ok()?;
    let payload = &body[BODY_FIXED + name_len..];
    Some(Record {
        kind,
        seq,
        at_ms,
        conversation,
        payload,
    })
}

/// Appends one record to `out`; answers its length.
fn encode(
    out: &mut Vec<u8>,
    kind: u8,
    seq: u64,
    at_ms: u64,
    conversation: &str,
    payload: &[u8],
) -> u32 {
    // At most MAX_CONVERSATION bytes: the caller leaves longer ones out.
    let name = conversation;
    let body_len = BODY_FIXED + name.len() + payload.len();
    let start = out.len();
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&at_ms.to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    (out.len() - start) as u32
}

/// What reading a segment found past its last good record.
enum Tail {
    Clean,
    /// A record cut short by the end of the file from this offset on: a
    /// write a crash interrupted (or one under way).
    Torn(u64, String),
    /// A record that is not one at this offset (a checksum that does not
    /// match, an impossible length): damage; nothing after it can be
    /// found.
    Damaged(u64, String),
}

impl Store {
    /// Opens the recordings in `data_dir/recordings/` (creating the
    /// folder), rebuilding the index from the segments. A torn record at
    /// the end of the newest segment (a crash mid-write) is cut off; a
    /// damaged one in an older segment ends what is read of that segment.
    pub fn open(data_dir: &Path, segment_bytes: u64) -> Result<Store> {
        let dir = data_dir.join(DIRECTORY);
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let ids = segment_ids(&dir)?;
        let mut index = Index {
            conversations: HashMap::new(),
            segments: VecDeque::new(),
            unsynced: Vec::new(),
            created: false,
        };
        let newest = ids.last().copied();
        let mut damaged_newest = false;
        for id in ids {
            let path = segment_path(&dir, id);
            let file = open_segment(&path)?;
            let mut segment = Segment::empty(id, path.clone(), file);
            let tail = scan(&mut segment, &mut index.conversations)?;
            let len = segment.file.metadata().map_err(io("read", &path))?.len();
            segment.bytes = len;
            match tail {
                Tail::Clean => {}
                Tail::Torn(offset, why) if Some(id) == newest => {
                    tracing::warn!(segment = %path.display(), offset, reason = %why, "cutting a torn record off the end of the recordings");
                    segment
                        .file
                        .set_len(offset)
                        .map_err(io("truncate", &path))?;
                    segment.bytes = offset;
                }
                Tail::Torn(offset, why) | Tail::Damaged(offset, why) => {
                    // Not cut: what follows the damage may matter to
                    // whoever looks, until the segment is pruned like any
                    // other (at once if nothing in it was readable, as it
                    // then holds nothing recent). Appends go to a new
                    // segment.
                    tracing::warn!(segment = %path.display(), offset, reason = %why, "a damaged record in the recordings; the rest of this segment is skipped (`caxton storage verify` lists it)");
                    damaged_newest |= Some(id) == newest;
                }
            }
            index.segments.push_back(segment);
        }
        if index.segments.is_empty() || damaged_newest {
            let next = newest.map_or(1, |id| id + 1);
            begin_segment(&dir, &mut index, next)?;
        }
        Ok(Store {
            dir,
            segment_bytes: segment_bytes.max(1),
            index: Mutex::new(index),
            appending: Mutex::new(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes in all segment files.
    pub fn total(&self) -> u64 {
        self.lock().total()
    }

    /// Conversations recorded and kept.
    pub fn conversations(&self) -> usize {
        self.lock().conversations.len()
    }

    /// Appends `events` (conversation, event, when) with one write. An
    /// event that would take its conversation past
    /// `settings.max_conversation_bytes` is counted, not kept.
    pub fn append(
        &self,
        events: &[(String, Event, u64)],
        settings: &RecordingSettings,
    ) -> Result<()> {
        // Encoded before anything is locked: the JSON is most of an
        // append's work.
        let mut encoded = Vec::with_capacity(events.len());
        for (conversation, event, _) in events {
            let json = serde_json::to_vec(event).map_err(|source| StoreError::Encode {
                conversation: conversation.clone(),
                source,
            })?;
            encoded.push(json);
        }
        let _only = self.appending.lock().unwrap_or_else(|p| p.into_inner());
        let mut index = self.lock();
        if index
            .segments
            .back()
            .is_some_and(|s| s.bytes >= self.segment_bytes)
        {
            let next = index.segments.back().map_or(1, |s| s.id + 1);
            begin_segment(&self.dir, &mut index, next)?;
        }
        let Some(segment) = index.segments.back() else {
            return Ok(());
        };
        let (segment_id, start) = (segment.id, segment.bytes);
        let file = segment.file.clone();
        let path = segment.path.clone();

        // Decide each event against the index as this batch leaves it,
        // then write (readers are not held up meanwhile: only this
        // appender changes the index), then change the index: a failed
        // write changes nothing.
        struct Change<'a> {
            conversation: &'a str,
            kept: Option<Location>,
            size: u64,
            at_ms: u64,
        }
        let mut buffer = Vec::with_capacity(encoded.iter().map(|j| j.len() + 64).sum());
        let mut changes = Vec::with_capacity(events.len());
        let mut pending: HashMap<&str, (u64, u64)> = HashMap::new();
        for ((conversation, _, at_ms), json) in events.iter().zip(&encoded) {
            if conversation.len() > MAX_CONVERSATION {
                continue;
            }
            let (bytes, kept) = *pending.entry(conversation.as_str()).or_insert_with(|| {
                index
                    .conversations
                    .get(conversation.as_str())
                    .map_or((0, 0), |c| (c.bytes, c.records.len() as u64))
            });
            let size = json.len() as u64;
            let offset = start + buffer.len() as u64;
            let change = if bytes + size > settings.max_conversation_bytes {
                encode(&mut buffer, SKIPPED, kept, *at_ms, conversation, &[]);
                Change {
                    conversation,
                    kept: None,
                    size: 0,
                    at_ms: *at_ms,
                }
            } else {
                let len = encode(&mut buffer, EVENT, kept, *at_ms, conversation, json);
                pending.insert(conversation, (bytes + size, kept + 1));
                Change {
                    conversation,
                    kept: Some(Location {
                        segment: segment_id,
                        offset,
                        len,
                    }),
                    size,
                    at_ms: *at_ms,
                }
            };
            changes.push(change);
        }
        drop(index);
        if let Err(e) = file.write_all_at(&buffer, start) {
            // Whatever part was written is cut off again, so the next
            // append starts where the index says the segment ends.
            let _ = file.set_len(start);
            return Err(io("append to", &path)(e));
        }
        let written = buffer.len() as u64;
        let mut index = self.lock();
        let mut began = Vec::new();
        for change in changes {
            let conversation = match index.conversations.get_mut(change.conversation) {
                Some(c) => c,
                None => {
                    began.push(change.conversation.to_string());
                    index
                        .conversations
                        .entry(change.conversation.to_string())
                        .or_insert(Conversation {
                            began_in: segment_id,
                            last_ms: change.at_ms,
                            bytes: 0,
                            truncated: 0,
                            records: Vec::new(),
                        })
                }
            };
            conversation.last_ms = conversation.last_ms.max(change.at_ms);
            match change.kept {
                Some(location) => {
                    conversation.records.push(location);
                    conversation.bytes += change.size;
                }
                None => conversation.truncated += 1,
            }
        }
        let newest = events.iter().map(|(_, _, at)| *at).max().unwrap_or(0);
        if index.unsynced.last() != Some(&segment_id) {
            index.unsynced.push(segment_id);
        }
        if let Some(segment) = index.segments.back_mut() {
            segment.bytes += written;
            segment.last_ms = segment.last_ms.max(newest);
            segment.began.extend(began);
        }
        Ok(())
    }

    /// Makes everything appended so far durable against a crash of the
    /// machine (a crash of the process loses nothing written): the
    /// segments written since the last sync, and the folder when a
    /// segment was created.
    pub fn sync(&self) -> Result<()> {
        let (files, created) = {
            let mut index = self.lock();
            let ids = std::mem::take(&mut index.unsynced);
            let files: Vec<(Arc<File>, PathBuf)> = ids
                .iter()
                .filter_map(|id| index.segment(*id))
                .map(|s| (s.file.clone(), s.path.clone()))
                .collect();
            (files, std::mem::take(&mut index.created))
        };
        for (file, path) in files {
            file.sync_data().map_err(io("sync", &path))?;
        }
        if created {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io("sync", &self.dir))?;
        }
        Ok(())
    }

    /// Drops the oldest segments while the recordings hold more than
    /// `settings.max_bytes`, or while everything recorded in the oldest
    /// (and in the conversations that began there) is older than the
    /// retention. The segment being appended to stays. Answers how many
    /// conversations went. A conversation still going keeps the segment
    /// it began in, and the younger ones, from being dropped for age
    /// until it ends (they still count towards `max_bytes`).
    pub fn prune(&self, settings: &RecordingSettings, now_ms: u64) -> usize {
        let oldest_kept = now_ms.saturating_sub(settings.retention_hours.saturating_mul(3_600_000));
        let _only = self.appending.lock().unwrap_or_else(|p| p.into_inner());
        let mut index = self.lock();
        let mut removed = 0;
        while index.segments.len() > 1 {
            let Some(oldest) = index.segments.front() else {
                break;
            };
            let over = index.total() > settings.max_bytes;
            let expired = oldest.last_ms < oldest_kept
                && oldest.began.iter().all(|name| {
                    index
                        .conversations
                        .get(name)
                        .is_none_or(|c| c.began_in != oldest.id || c.last_ms < oldest_kept)
                });
            if !over && !expired {
                break;
            }
            let Some(oldest) = index.segments.pop_front() else {
                break;
            };
            for name in &oldest.began {
                if index
                    .conversations
                    .get(name)
                    .is_some_and(|c| c.began_in == oldest.id)
                {
                    index.conversations.remove(name);
                    removed += 1;
                }
            }
            index.unsynced.retain(|id| *id != oldest.id);
            if let Err(e) = std::fs::remove_file(&oldest.path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(segment = %oldest.path.display(), error = %e, "could not delete a pruned recordings segment");
            }
        }
        removed
    }

    /// The recording of `conversation`, if there is one.
    pub fn read(&self, conversation: &str) -> Result<Option<Recording>> {
        let (records, bytes, truncated) = {
            let index = self.lock();
            let Some(found) = index.conversations.get(conversation) else {
                return Ok(None);
            };
            // The files are held open here, so a prune meanwhile (which
            // unlinks them) does not take the records from under the read.
            let mut records = Vec::with_capacity(found.records.len());
            for location in &found.records {
                if let Some(segment) = index.segment(location.segment) {
                    records.push((*location, segment.file.clone(), segment.path.clone()));
                }
            }
            (records, found.bytes, found.truncated)
        };
        let mut events = Vec::with_capacity(records.len());
        let mut buffer = Vec::new();
        for (seq, (location, file, path)) in records.into_iter().enumerate() {
            let damaged = |what: &str| StoreError::Damaged {
                conversation: conversation.to_string(),
                path: path.clone(),
                what: format!("{what} at offset {}", location.offset),
            };
            buffer.resize(location.len as usize, 0);
            file.read_exact_at(&mut buffer, location.offset)
                .map_err(io("read", &path))?;
            let body = checked_body(&buffer).map_err(|why| damaged(&why))?;
            let record = decode(body).ok_or_else(|| damaged("a malformed record"))?;
            if record.conversation != conversation || record.seq != seq as u64 {
                return Err(damaged("a record out of place"));
            }
            let event: Event = serde_json::from_slice(record.payload)
                .map_err(|e| damaged(&format!("unreadable event JSON ({e})")))?;
            events.push(Recorded {
                seq: record.seq,
                at: crate::clock::rfc3339_from_millis(record.at_ms),
                event,
            });
        }
        Ok(Some(Recording {
            conversation_id: conversation.to_string(),
            caxton_version: env!("CARGO_PKG_VERSION").to_string(),
            events,
            bytes,
            truncated,
        }))
    }
}

/// The body of one whole record (header included in `record`), its
/// length and checksum checked.
fn checked_body(record: &[u8]) -> std::result::Result<&[u8], String> {
    let header = record
        .get(..HEADER)
        .ok_or("a record shorter than its header")?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let body = record
        .get(HEADER..HEADER + len)
        .ok_or("a record shorter than its length")?;
    if crc32fast::hash(body) != crc {
        return Err("a checksum mismatch".into());
    }
    Ok(body)
}

/// Reads `segment`'s records into `conversations`, in order; answers
/// where the good records end if something after them is not one.
fn scan(segment: &mut Segment, conversations: &mut HashMap<String, Conversation>) -> Result<Tail> {
    let file = segment.file.clone();
    let file_len = file.metadata().map_err(io("read", &segment.path))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, &*file);
    let mut offset = 0u64;
    let mut header = [0u8; HEADER];
    let mut body = Vec::new();
    loop {
        match read_full(&mut reader, &mut header) {
            Ok(0) => return Ok(Tail::Clean),
            Ok(n) if n < HEADER => {
                return Ok(Tail::Torn(offset, "a record header cut short".into()));
            }
            Ok(_) => {}
            Err(e) => return Err(io("read", &segment.path)(e)),
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if (len as usize) < BODY_FIXED {
            return Ok(Tail::Damaged(offset, format!("a record length of {len}")));
        }
        // Checked against the file before a buffer that long is made: a
        // damaged length must not cost a gigabyte.
        if offset + (HEADER as u64) + u64::from(len) > file_len {
            return Ok(Tail::Torn(offset, "a record cut short".into()));
        }
        if len > MAX_BODY {
            return Ok(Tail::Damaged(offset, format!("a record length of {len}")));
        }
        body.resize(len as usize, 0);
        match read_full(&mut reader, &mut body) {
            Ok(n) if n < body.len() => {
                return Ok(Tail::Torn(offset, "a record cut short".into()));
            }
            Ok(_) => {}
            Err(e) => return Err(io("read", &segment.path)(e)),
        }
        if crc32fast::hash(&body) != crc {
            return Ok(Tail::Damaged(offset, "a checksum mismatch".into()));
        }
        let Some(record) = decode(&body) else {
            return Ok(Tail::Damaged(offset, "a malformed record".into()));
        };
        let location = Location {
            segment: segment.id,
            offset,
            len: HEADER as u32 + len,
        };
        offset += u64::from(location.len);
        segment.last_ms = segment.last_ms.max(record.at_ms);
        take_up(segment, conversations, &record, location);
    }
}

/// Adds one scanned record to the index. A conversation is taken up only
/// from its first record (number 0); records of a conversation whose
/// beginning was pruned, or out of sequence, are left out.
fn take_up(
    segment: &mut Segment,
    conversations: &mut HashMap<String, Conversation>,
    record: &Record<'_>,
    location: Location,
) {
    let known = conversations
        .get(record.conversation)
        .map(|c| c.records.len() as u64);
    let fits = known == Some(record.seq);
    if !fits {
        if record.seq != 0 {
            return;
        }
        // Number 0: a conversation begins (again) here.
        conversations.insert(
            record.conversation.to_string(),
            Conversation {
                began_in: segment.id,
                last_ms: record.at_ms,
                bytes: 0,
                truncated: 0,
                records: Vec::new(),
            },
        );
        segment.began.push(record.conversation.to_string());
    }
    let Some(conversation) = conversations.get_mut(record.conversation) else {
        return;
    };
    conversation.last_ms = conversation.last_ms.max(record.at_ms);
    match record.kind {
        EVENT => {
            conversation.records.push(location);
            conversation.bytes += record.payload.len() as u64;
        }
        SKIPPED => conversation.truncated += 1,
        _ => {}
    }
}

/// Reads until `buffer` is full or the end; answers how much was read.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(agent: &str, content: &str) -> Event {
        Event::Inbound {
            agent: agent.into(),
            sender: "user".into(),
            performative: "request".into(),
            content: content.into(),
        }
    }

    fn contents(recording: &Recording) -> Vec<(u64, String)> {
        recording
            .events
            .iter()
            .map(|r| match &r.event {
                Event::Inbound { content, .. } => (r.seq, content.clone()),
                other => panic!("unexpected event {other:?}"),
            })
            .collect()
    }

    fn batch(items: &[(&str, &str)], ms: u64) -> Vec<(String, Event, u64)> {
        items
            .iter()
            .map(|(c, text)| (c.to_string(), said("a", text), ms))
            .collect()
    }

    /// The conversations recorded, by name, sorted.
    fn names(store: &Store) -> Vec<String> {
        let mut names: Vec<String> = store.lock().conversations.keys().cloned().collect();
        names.sort();
        names
    }

    #[test]
    fn conversations_interleave_read_back_in_order_and_outlive_a_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = RecordingSettings {
            max_conversation_bytes: 1_000,
            ..RecordingSettings::default()
        };
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        store
            .append(
                &batch(&[("one", "1a"), ("two", "2a"), ("one", "1b")], 1_000),
                &settings,
            )
            .expect("first batch");
        store
            .append(&batch(&[("two", "2b"), ("one", "1c")], 2_000), &settings)
            .expect("second batch");
        let one = store.read("one").expect("read").expect("recorded");
        assert_eq!(
            contents(&one),
            [(0, "1a".into()), (1, "1b".into()), (2, "1c".into())]
        );
        let two = store.read("two").expect("read").expect("recorded");
        assert_eq!(contents(&two), [(0, "2a".into()), (1, "2b".into())]);
        assert_eq!(two.events[1].at, crate::clock::rfc3339_from_millis(2_000));
        assert!(store.read("three").expect("read").is_none());

        // Past the byte cap, events are counted, not kept, and the kept
        // ones stay in order.
        let long = "x".repeat(1_000);
        store
            .append(&batch(&[("one", &long), ("one", "1d")], 3_000), &settings)
            .expect("third batch");
        let one = store.read("one").expect("read").expect("recorded");
        assert_eq!(one.truncated, 1);
        assert_eq!(contents(&one).last(), Some(&(3, "1d".into())));
        let total = store.total();
        drop(store);

        // A reopened store knows the same, caps included.
        let store = Store::open(dir.path(), 1 << 20).expect("reopen");
        let again = store.read("one").expect("read").expect("recorded");
        assert_eq!(contents(&again), contents(&one));
        assert_eq!((again.bytes, again.truncated), (one.bytes, 1));
        assert_eq!(store.total(), total);
        store
            .append(&batch(&[("two", "2c")], 4_000), &settings)
            .expect("appends after a reopen");
        let two = store.read("two").expect("read").expect("recorded");
        assert_eq!(contents(&two).last(), Some(&(2, "2c".into())));
    }

    #[test]
    fn prune_drops_the_oldest_past_retention_then_past_the_byte_cap() {
        let dir = tempfile::tempdir().expect("temp dir");
        let hour = 3_600_000;
        let settings = RecordingSettings {
            retention_hours: 1,
            ..RecordingSettings::default()
        };
        // One byte per segment: every batch begins a segment of its own.
        let store = Store::open(dir.path(), 1).expect("open");
        for (conversation, ms) in [("a", 1_000), ("b", 2_000), ("c", hour + 3_000)] {
            store
                .append(&batch(&[(conversation, "hi")], ms), &settings)
                .expect("append");
        }
        let each = store.total() / 3;
        // At 1 h + 2.5 s: a and b have had nothing for an hour.
        assert_eq!(store.prune(&settings, hour + 2_500), 2);
        assert_eq!(names(&store), ["c"]);
        assert_eq!(store.total(), each);

        // A conversation still going keeps its segment from being dropped
        // for age.
        store
            .append(&batch(&[("d", "hi")], 3 * hour - 1_000), &settings)
            .expect("append");
        store
            .append(&batch(&[("c", "still here")], 3 * hour), &settings)
            .expect("append");
        assert_eq!(store.prune(&settings, 3 * hour), 0);

        // The byte cap: the oldest go first, however recent; c began in
        // the oldest segment, so all of it goes.
        let capped = RecordingSettings {
            max_bytes: store.total() - 1,
            ..settings
        };
        assert_eq!(store.prune(&capped, 3 * hour), 1);
        assert_eq!(names(&store), ["d"]);
        assert!(store.read("c").expect("read").is_none());
        drop(store);

        // c's later record is left behind in a younger segment; a reopened
        // store does not take it up as a conversation without its start.
        let store = Store::open(dir.path(), 1).expect("reopen");
        assert_eq!(names(&store), ["d"]);
    }

    #[test]
    fn a_torn_record_at_the_end_is_cut_off_and_writing_goes_on() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = RecordingSettings::default();
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        store
            .append(&batch(&[("one", "kept")], 1_000), &settings)
            .expect("append");
        let good = store.total();
        drop(store);
        // Half a record, as a crash in the middle of a write leaves it.
        let path = segment_path(&dir.path().join(DIRECTORY), 1);
        let mut record = Vec::new();
        encode(
            &mut record,
            EVENT,
            1,
            2_000,
            "one",
            br#"{"kind":"inbound"}"#,
        );
        let mut bytes = std::fs::read(&path).expect("segment");
        bytes.extend_from_slice(&record[..record.len() / 2]);
        std::fs::write(&path, bytes).expect("tear");

        let store = Store::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(store.total(), good, "the torn half is cut off");
        store
            .append(&batch(&[("one", "after")], 3_000), &settings)
            .expect("append");
        let one = store.read("one").expect("read").expect("recorded");
        assert_eq!(contents(&one), [(0, "kept".into()), (1, "after".into())]);
    }

    #[test]
    fn the_check_finds_damage_in_an_older_segment_not_a_torn_newest_tail() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = RecordingSettings::default();
        let store = Store::open(dir.path(), 1).expect("open");
        for conversation in ["one", "two"] {
            store
                .append(&batch(&[(conversation, "hello")], 1_000), &settings)
                .expect("append");
        }
        drop(store);
        let clean = check(dir.path()).expect("check");
        assert_eq!((clean.conversations, clean.segments), (2, 2));
        assert!(clean.damaged.is_empty());

        let segments = dir.path().join(DIRECTORY);
        let newest = segment_path(&segments, 2);
        let mut bytes = std::fs::read(&newest).expect("segment");
        bytes.extend_from_slice(&[7, 7, 7]);
        std::fs::write(&newest, bytes).expect("tear");
        assert!(check(dir.path()).expect("check").damaged.is_empty());

        let oldest = segment_path(&segments, 1);
        let mut bytes = std::fs::read(&oldest).expect("segment");
        let last = bytes.len() - 2;
        bytes[last] ^= 0xff;
        std::fs::write(&oldest, bytes).expect("damage");
        let damaged = check(dir.path()).expect("check");
        assert_eq!(damaged.damaged.len(), 1, "{:?}", damaged.damaged);
        assert!(
            damaged.damaged[0].contains("checksum"),
            "{:?}",
            damaged.damaged
        );
        assert_eq!(damaged.conversations, 1);
    }

    #[test]
    fn a_damaged_record_is_reported_not_served() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        store
            .append(
                &batch(&[("one", "hello")], 1_000),
                &RecordingSettings::default(),
            )
            .expect("append");
        let path = segment_path(&dir.path().join(DIRECTORY), 1);
        let mut bytes = std::fs::read(&path).expect("segment");
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).expect("damage");
        let err = store.read("one").expect_err("a damaged record");
        assert!(err.to_string().contains("checksum"), "{err}");
        drop(store);

        // Damage is not a torn write: a reopened store leaves the segment
        // as it is and appends to a new one.
        let size = std::fs::metadata(&path).expect("segment").len();
        let store = Store::open(dir.path(), 1 << 20).expect("reopen");
        assert!(store.read("one").expect("read").is_none());
        store
            .append(
                &batch(&[("two", "after")], 2_000),
                &RecordingSettings::default(),
            )
            .expect("append");
        assert!(store.read("two").expect("read").is_some());
        assert_eq!(std::fs::metadata(&path).expect("segment").len(), size);
        assert!(segment_path(&dir.path().join(DIRECTORY), 2).exists());
    }
}

//! The replay source: a pre-encoded Annex-B file streamed frame by frame, standing in for the
//! device's hardware encoder in memory and fan-out measurements (no encode cost at all). Only
//! the index of access units stays in memory; each frame is read from the file when it is due,
//! and the index is built reading the file a chunk at a time, so the file's size counts against
//! the daemon's memory neither while it runs nor at start-up.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::BytesMut;

use super::annexb::{access_units, nal, nal_type, nal_units, sps_picture_size, AccessUnit};
use super::MediaError;

pub struct ReplaySource {
    path: PathBuf,
    file: File,
    units: Vec<AccessUnit>,
    size: (u16, u16),
    current: usize,
    next: usize,
}

impl ReplaySource {
    pub fn load(path: &Path) -> Result<Self, MediaError> {
        let fail = |e: String| MediaError::Replay(format!("{}: {e}", path.display()));
        let file = File::open(path).map_err(|e| fail(e.to_string()))?;
        let (units, size, first_key) = index(&file, INDEX_CHUNK).map_err(fail)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            units,
            size,
            current: first_key,
            next: first_key,
        })
    }

    pub fn size(&self) -> (u16, u16) {
        self.size
    }

    /// Moves to the next access unit (looping at the end of the file).
    pub fn advance(&mut self) {
        self.current = self.next;
        self.next = (self.next + 1) % self.units.len();
    }

    /// Appends the current access unit to `out` and says whether it is an IDR. With
    /// `force_idr` the stream first jumps to the nearest IDR at or after the current unit, as a
    /// hardware encoder would start one at once.
    pub fn read(&mut self, force_idr: bool, out: &mut BytesMut) -> Result<bool, MediaError> {
        if force_idr && !self.units[self.current].keyframe {
            let n = self.units.len();
            if let Some(k) = (0..n)
                .map(|i| (self.current + i) % n)
                .find(|&k| self.units[k].keyframe)
            {
                self.current = k;
                self.next = (k + 1) % n;
            }
        }
        let unit = &self.units[self.current];
        let start = out.len();
        out.resize(start + unit.range.len(), 0);
        self.file
            .read_exact_at(&mut out[start..], unit.range.start as u64)
            .map_err(|e| MediaError::Replay(format!("{}: {e}", self.path.display())))?;
        Ok(unit.keyframe)
    }
}

/// What is kept of a stream: its access units, its picture size (from the SPS in front of the
/// first IDR), and where that first IDR is.
type StreamIndex = (Vec<AccessUnit>, (u16, u16), usize);

/// Bytes read at a time while indexing: only this and the access unit being looked at are in
/// memory at once.
const INDEX_CHUNK: usize = 64 * 1024;

fn index(mut file: impl Read, chunk: usize) -> Result<StreamIndex, String> {
    let mut units = Vec::new();
    let mut size = None;
    // The bytes from the start of the access unit not yet known to be complete; `base` is
    // where they are in the file.
    let mut carry: Vec<u8> = Vec::new();
    let mut base = 0;
    loop {
        let old = carry.len();
        carry.resize(old + chunk, 0);
        let n = loop {
            match file.read(&mut carry[old..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                other => break other.map_err(|e| e.to_string())?,
            }
        };
        carry.truncate(old + n);
        let eof = n == 0;
        let aus = access_units(&carry);
        // The last unit may go on in the next chunk, unless the file has ended; every earlier
        // one ends where a later one was seen to begin.
        let complete = if eof {
            aus.len()
        } else {
            aus.len().saturating_sub(1)
        };
        for au in &aus[..complete] {
            if au.keyframe && size.is_none() {
                size = Some(keyframe_size(&carry[au.range.clone()])?);
            }
            units.push(AccessUnit {
                range: base + au.range.start..base + au.range.end,
                keyframe: au.keyframe,
            });
        }
        if eof {
            break;
        }
        let cut = aus.get(complete).map_or(0, |au| au.range.start);
        carry.drain(..cut);
        base += cut;
    }
    let first_key = units
        .iter()
        .position(|u| u.keyframe)
        .ok_or("no IDR access unit: not an H.264 Annex-B stream")?;
    Ok((units, size.ok_or("no picture size")?, first_key))
}

/// The picture size from the SPS in front of a keyframe.
fn keyframe_size(au: &[u8]) -> Result<(u16, u16), String> {
    let sps = nal_units(au)
        .into_iter()
        .map(|r| &au[r])
        .find(|n| nal_type(n) == nal::SPS)
        .ok_or("the first IDR has no SPS in front of it")?;
    sps_picture_size(sps).ok_or_else(|| "unreadable SPS".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_an_idr_is_refused_with_its_name() {
        let dir = std::env::temp_dir().join(format!("nanokvmd-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p-frames-only.h264");
        std::fs::write(&path, [0, 0, 0, 1, 0x41, 0x9a, 0, 0, 0, 1, 0x41, 0x9a]).unwrap();
        let err = ReplaySource::load(&path).err().unwrap().to_string();
        assert!(
            err.contains("p-frames-only.h264") && err.contains("no IDR"),
            "{err}"
        );
        let missing = ReplaySource::load(&dir.join("missing.h264"))
            .err()
            .unwrap()
            .to_string();
        assert!(missing.contains("missing.h264"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn indexing_a_chunk_at_a_time_finds_what_indexing_it_whole_does() {
        const SPS_720: [u8; 14] = [
            0x67, 0x42, 0xc0, 0x1f, 0x8c, 0x68, 0x05, 0x00, 0x5b, 0xa0, 0x1e, 0x11, 0x08, 0xd4,
        ];
        let mut s = vec![0, 0, 1, 0x41, 0x9a, 0x07]; // a P-frame before the first IDR
        for k in 0..3u8 {
            for unit in [
                &SPS_720[..],
                &[0x68, 0xce, 0x3c, 0x80],
                &[0x65, 0x88, 0x84, k],
                &[0x41, 0x9a, 0x01, k, k],
                &[0x41, 0x9a, 0x02],
            ] {
                s.extend_from_slice(&[0, 0, 0, 1]);
                s.extend_from_slice(unit);
            }
        }
        let whole = access_units(&s);
        assert_eq!(whole.len(), 10);
        for chunk in [1, 2, 3, 5, 7, 16, 1024] {
            let (units, size, first_key) = index(std::io::Cursor::new(&s), chunk).unwrap();
            assert_eq!(units, whole, "chunk {chunk}");
            assert_eq!((size, first_key), ((1280, 720), 1), "chunk {chunk}");
        }
    }
}

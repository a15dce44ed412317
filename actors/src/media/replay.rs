//! The replay source: a pre-encoded Annex-B file streamed frame by frame, standing in for the
//! device's hardware encoder in memory and fan-out measurements (no encode cost at all). Only
//! the index of access units stays in memory; each frame is read from the file when it is due,
//! so the file's size does not count against the daemon's memory.

use std::fs::File;
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
        let data = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let (units, size, first_key) = index(&data).map_err(|e| fail(e.to_string()))?;
        drop(data);
        let file = File::open(path).map_err(|e| fail(e.to_string()))?;
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

fn index(data: &[u8]) -> Result<StreamIndex, &'static str> {
    let units = access_units(data);
    let first_key = units
        .iter()
        .position(|u| u.keyframe)
        .ok_or("no IDR access unit: not an H.264 Annex-B stream")?;
    let au = &data[units[first_key].range.clone()];
    let sps = nal_units(au)
        .into_iter()
        .map(|r| &au[r])
        .find(|n| nal_type(n) == nal::SPS)
        .ok_or("the first IDR has no SPS in front of it")?;
    let size = sps_picture_size(sps).ok_or("unreadable SPS")?;
    Ok((units, size, first_key))
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
}

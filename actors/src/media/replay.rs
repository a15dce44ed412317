//! The replay source: a pre-encoded Annex-B file streamed frame by frame, standing in for the
//! device's hardware encoder in memory and fan-out measurements (no encode cost at all).

use std::path::Path;

use super::annexb::{access_units, nal, nal_type, nal_units, sps_picture_size, AccessUnit};
use super::MediaError;

pub struct ReplaySource {
    data: Vec<u8>,
    units: Vec<AccessUnit>,
    size: (u16, u16),
    current: usize,
    next: usize,
}

impl ReplaySource {
    pub fn load(path: &Path) -> Result<Self, MediaError> {
        let data = std::fs::read(path)
            .map_err(|e| MediaError::Replay(format!("{}: {e}", path.display())))?;
        Self::from_bytes(data).map_err(|e| MediaError::Replay(format!("{}: {e}", path.display())))
    }

    pub fn from_bytes(data: Vec<u8>) -> Result<Self, String> {
        let units = access_units(&data);
        let first_key = units
            .iter()
            .position(|u| u.keyframe)
            .ok_or("no IDR access unit: not an H.264 Annex-B stream")?;
        let sps = nal_units(&data[units[first_key].range.clone()])
            .into_iter()
            .map(|r| {
                &data[units[first_key].range.start + r.start..units[first_key].range.start + r.end]
            })
            .find(|n| nal_type(n) == nal::SPS)
            .ok_or("the first IDR has no SPS in front of it")?;
        let size = sps_picture_size(sps).ok_or("unreadable SPS")?;
        Ok(Self {
            data,
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

    /// The current access unit; with `force_idr` the stream jumps to the nearest IDR at or after
    /// the current one first, as a hardware encoder would start one at once.
    pub fn take(&mut self, force_idr: bool) -> (&[u8], bool) {
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
        (&self.data[unit.range.clone()], unit.keyframe)
    }
}

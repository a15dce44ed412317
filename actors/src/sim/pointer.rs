//! The simulated target's mouse driver: relative and absolute pointer reports, decoded
//! through their report descriptors, move one pointer. Pure: no I/O.
//!
//! The position is kept in the absolute pointer's units (0..=32767 across each axis), so it
//! does not depend on the console's resolution; relative moves are scaled as on a
//! 1920x1080 screen.

use nanokvm_protocol::hid::descriptor::{
    self, ReportLayout, USAGE_PAGE_BUTTON, USAGE_PAGE_DESKTOP, USAGE_WHEEL, USAGE_X, USAGE_Y,
};
use nanokvm_protocol::hid::report::ABSOLUTE_MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct PointerState {
    pub x: u16,
    pub y: u16,
    pub buttons: u8,
    /// Wheel detents, summed.
    pub wheel: i32,
}

pub struct SimPointer {
    relative: ReportLayout,
    absolute: ReportLayout,
    pub state: PointerState,
}

impl Default for SimPointer {
    fn default() -> Self {
        Self::new()
    }
}

const REFERENCE: (i32, i32) = (1920, 1080);

impl SimPointer {
    pub fn new() -> Self {
        let parse = |d| ReportLayout::parse(d).unwrap_or(ReportLayout { fields: Vec::new() });
        Self {
            relative: parse(descriptor::MOUSE),
            absolute: parse(descriptor::ABSOLUTE),
            state: PointerState {
                x: ABSOLUTE_MAX / 2,
                y: ABSOLUTE_MAX / 2,
                buttons: 0,
                wheel: 0,
            },
        }
    }

    pub fn relative_report(&mut self, r: &[u8]) {
        let l = &self.relative;
        let axis = |u| {
            l.find(USAGE_PAGE_DESKTOP, u)
                .and_then(|(f, i)| f.value(r, i))
                .unwrap_or(0)
        };
        let (dx, dy, wheel) = (axis(USAGE_X), axis(USAGE_Y), axis(USAGE_WHEEL));
        let buttons = buttons(l, r);
        let scale = |pos: u16, d: i32, span: i32| {
            let moved = i32::from(pos) + d * (i32::from(ABSOLUTE_MAX) + 1) / span;
            moved.clamp(0, i32::from(ABSOLUTE_MAX)) as u16
        };
        self.state.x = scale(self.state.x, dx, REFERENCE.0);
        self.state.y = scale(self.state.y, dy, REFERENCE.1);
        self.state.buttons = buttons;
        self.state.wheel += wheel;
    }

    pub fn absolute_report(&mut self, r: &[u8]) {
        let l = &self.absolute;
        let axis = |u| {
            l.find(USAGE_PAGE_DESKTOP, u)
                .and_then(|(f, i)| f.value(r, i))
                .unwrap_or(0)
        };
        self.state.x = axis(USAGE_X).clamp(0, i32::from(ABSOLUTE_MAX)) as u16;
        self.state.y = axis(USAGE_Y).clamp(0, i32::from(ABSOLUTE_MAX)) as u16;
        self.state.wheel += axis(USAGE_WHEEL);
        self.state.buttons = buttons(l, r);
    }
}

fn buttons(l: &ReportLayout, r: &[u8]) -> u8 {
    (1..=5u16).fold(0, |acc, b| {
        let down = l
            .find(USAGE_PAGE_BUTTON, b)
            .and_then(|(f, i)| f.value(r, i))
            == Some(1);
        acc | u8::from(down) << (b - 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanokvm_protocol::hid::report::{absolute_report, mouse_reports};

    #[test]
    fn absolute_reports_place_the_pointer() {
        let mut p = SimPointer::new();
        p.absolute_report(&absolute_report(1000, 32767, 0b101, -2));
        assert_eq!(
            p.state,
            PointerState {
                x: 1000,
                y: 32767,
                buttons: 0b101,
                wheel: -2
            }
        );
    }

    #[test]
    fn relative_reports_move_it_and_stop_at_the_edges() {
        let mut p = SimPointer::new();
        p.absolute_report(&absolute_report(0, 0, 0, 0));
        for r in mouse_reports(192, 108, 1, 1) {
            p.relative_report(&r);
        }
        assert_eq!(
            (p.state.x, p.state.y, p.state.buttons, p.state.wheel),
            (3276, 3276, 1, 1)
        );
        for r in mouse_reports(-5000, -5000, 0, 0) {
            p.relative_report(&r);
        }
        assert_eq!((p.state.x, p.state.y), (0, 0));
    }
}

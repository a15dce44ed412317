// Mouse capture on the video. Absolute mode (the default) sends where the pointer is on the
// picture, 0..32767 across each axis: the picture is letterboxed in the stage, so positions
// are taken relative to where it is actually drawn. Relative mode, for BIOSes that ignore
// absolute pointers, locks the pointer and sends its movements.

const ABSOLUTE_MAX = 32767;
// A wheel "detent" in pixels, for browsers that report pixel deltas.
const PIXELS_PER_DETENT = 100;

export class PointerCapture {
  /**
   * @param {HTMLElement} surface  the stage, which receives the events
   * @param {() => {width: number, height: number} | null} pictureSize  the video's size
   * @param {(msg: object) => void} send  sends a ClientMsg
   * @param {() => void} onButtons  called when the held buttons change
   */
  constructor(surface, pictureSize, send, onButtons = () => {}) {
    this.surface = surface;
    this.pictureSize = pictureSize;
    this.send = send;
    this.onButtons = onButtons;
    this.mode = 'absolute';
    this.buttons = 0;
    this.last = null;
    this.wheelRest = 0;
    surface.addEventListener('pointerdown', (e) => this.onPointer(e));
    surface.addEventListener('pointerup', (e) => this.onPointer(e));
    surface.addEventListener('pointermove', (e) => this.onPointer(e));
    surface.addEventListener('wheel', (e) => this.onWheel(e), { passive: false });
    surface.addEventListener('contextmenu', (e) => e.preventDefault());
    surface.addEventListener('pointerleave', () => {
      if (this.mode === 'absolute' && this.buttons !== 0) this.release();
    });
  }

  setMode(mode) {
    if (mode === this.mode) return;
    this.release();
    this.mode = mode;
    if (mode === 'absolute' && document.pointerLockElement === this.surface) document.exitPointerLock();
  }

  release() {
    if (this.buttons === 0) return;
    this.buttons = 0;
    if (this.mode === 'relative') this.send({ PointerRel: { dx: 0, dy: 0, buttons: 0, wheel: 0 } });
    else if (this.last !== null) this.send({ PointerAbs: { ...this.last, buttons: 0, wheel: 0 } });
    this.onButtons();
  }

  onPointer(event) {
    // The notice and its button sit on the stage too; they are the console's, not the target's.
    if (event.target instanceof Element && event.target.closest('.notice')) return;
    // Browser `buttons` bits are the HID ones: left, right, middle, back, forward.
    const buttons = event.buttons & 0x1f;
    if (event.type === 'pointerdown') {
      this.surface.focus();
      if (this.mode === 'relative' && document.pointerLockElement !== this.surface) {
        this.surface.requestPointerLock?.();
        return;
      }
    }
    if (event.type !== 'pointermove') event.preventDefault();
    const changed = buttons !== this.buttons;
    this.buttons = buttons;
    if (this.mode === 'relative') {
      if (document.pointerLockElement !== this.surface) return;
      const dx = clamp(Math.round(event.movementX), -32768, 32767);
      const dy = clamp(Math.round(event.movementY), -32768, 32767);
      if (dx !== 0 || dy !== 0 || changed) this.send({ PointerRel: { dx, dy, buttons, wheel: 0 } });
    } else {
      const at = this.position(event);
      if (at === null) return;
      const same = this.last !== null && at.x === this.last.x && at.y === this.last.y;
      this.last = at;
      if (!same || changed) this.send({ PointerAbs: { x: at.x, y: at.y, buttons, wheel: 0 } });
    }
    if (changed) this.onButtons();
  }

  onWheel(event) {
    event.preventDefault();
    const scale = event.deltaMode === 0 ? 1 / PIXELS_PER_DETENT : event.deltaMode === 1 ? 1 / 3 : 1;
    // HID wheel: positive is away from the user, which scrolls up (negative deltaY).
    this.wheelRest += -event.deltaY * scale;
    const detents = clamp(Math.trunc(this.wheelRest), -127, 127);
    if (detents === 0) return;
    this.wheelRest -= detents;
    if (this.mode === 'relative') {
      this.send({ PointerRel: { dx: 0, dy: 0, buttons: this.buttons, wheel: detents } });
    } else {
      const at = this.position(event) ?? this.last;
      if (at !== null) this.send({ PointerAbs: { x: at.x, y: at.y, buttons: this.buttons, wheel: detents } });
    }
  }

  /** Where the event is on the picture, in 0..32767 units, or null outside it. */
  position(event) {
    const rect = pictureRect(this.surface.getBoundingClientRect(), this.pictureSize());
    if (rect === null) return null;
    const fx = (event.clientX - rect.left) / rect.width;
    const fy = (event.clientY - rect.top) / rect.height;
    if (fx < 0 || fx > 1 || fy < 0 || fy > 1) return null;
    return { x: toUnits(fx), y: toUnits(fy) };
  }
}

/** Where a picture of `size` is drawn in `box` by object-fit: contain (letterboxed). */
export function pictureRect(box, size) {
  if (size === null || !(size.width > 0) || !(size.height > 0) || box.width <= 0 || box.height <= 0) {
    return null;
  }
  const scale = Math.min(box.width / size.width, box.height / size.height);
  const width = size.width * scale;
  const height = size.height * scale;
  return {
    left: box.left + (box.width - width) / 2,
    top: box.top + (box.height - height) / 2,
    width,
    height,
  };
}

/** A fraction 0..1 of the picture in the absolute pointer's units. */
export function toUnits(fraction) {
  return clamp(Math.round(fraction * ABSOLUTE_MAX), 0, ABSOLUTE_MAX);
}

function clamp(v, lo, hi) {
  return Math.min(hi, Math.max(lo, v));
}

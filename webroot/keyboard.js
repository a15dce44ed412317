// Keyboard capture: while the console has focus, every key goes to the target as its HID
// usage (the target applies its own layout) and the browser's own shortcuts are held back.
// In fullscreen, navigator.keyboard.lock() lets even Escape, Meta and Alt+Tab through.
//
// Keys held are remembered so that they can be released when focus is lost, and a
// KeepAlive goes out while anything is held: the server releases the keys of a client it
// has not heard from for 1 s, so a lost key-up can never leave a key stuck on the target.

import { usageForCode } from './keymap.js';

const KEEP_ALIVE_MS = 300;

export class KeyboardCapture {
  /**
   * @param {HTMLElement} surface  the element that takes focus (the video stage)
   * @param {(msg: object) => void} send  sends a ClientMsg
   * @param {() => boolean} holdsButtons  whether a mouse button is held (for keep-alives)
   */
  constructor(surface, send, holdsButtons = () => false) {
    this.surface = surface;
    this.send = send;
    this.holdsButtons = holdsButtons;
    this.held = new Set();
    this.keepAliveTimer = null;
    surface.addEventListener('keydown', (e) => this.onKey(e, true));
    surface.addEventListener('keyup', (e) => this.onKey(e, false));
    surface.addEventListener('blur', () => this.releaseAll());
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) this.releaseAll();
    });
    document.addEventListener('fullscreenchange', () => this.lockInFullscreen());
  }

  onKey(event, down) {
    // Keys on the notice's close button are the console's own.
    if (event.target !== this.surface && event.target.closest?.('.notice')) return;
    const usage = usageForCode(event.code);
    // Everything typed on the console is the target's, known key or not.
    event.preventDefault();
    event.stopPropagation();
    if (usage === undefined) return;
    if (down) {
      // The target repeats held keys itself, as with a real keyboard.
      if (event.repeat || this.held.has(usage)) return;
      this.held.add(usage);
      this.send({ KeyDown: { usage } });
    } else {
      if (!this.held.delete(usage)) return;
      this.send({ KeyUp: { usage } });
    }
    this.keepAliveWanted();
  }

  /** Sends a shortcut: each key down in order, then up in reverse order. */
  chord(usages) {
    for (const usage of usages) this.send({ KeyDown: { usage } });
    for (const usage of [...usages].reverse()) this.send({ KeyUp: { usage } });
    this.surface.focus();
  }

  releaseAll() {
    this.held.clear();
    this.send('ReleaseAll');
    this.keepAliveWanted();
  }

  /** Runs the keep-alive timer exactly while keys or buttons are held. */
  keepAliveWanted() {
    const wanted = this.held.size > 0 || this.holdsButtons();
    if (wanted && this.keepAliveTimer === null) {
      this.keepAliveTimer = setInterval(() => {
        if (this.held.size > 0 || this.holdsButtons()) this.send('KeepAlive');
        else this.keepAliveWanted();
      }, KEEP_ALIVE_MS);
    } else if (!wanted && this.keepAliveTimer !== null) {
      clearInterval(this.keepAliveTimer);
      this.keepAliveTimer = null;
    }
  }

  async lockInFullscreen() {
    const keyboard = navigator.keyboard;
    if (keyboard === undefined || typeof keyboard.lock !== 'function') return;
    if (document.fullscreenElement) {
      try {
        await keyboard.lock();
      } catch {
        // Not allowed here (e.g. not a secure context): Escape still leaves fullscreen.
      }
    } else {
      keyboard.unlock();
    }
  }
}

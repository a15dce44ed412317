// The console's input side: keyboard and mouse capture on the video, the shortcut menu,
// the paste dialog, the mouse mode, and the target's keyboard LEDs and HID link state.
// Everything goes to the server through the video worker's WebSocket.

import { KEYMAP } from './keymap.js';
import { KeyboardCapture } from './keyboard.js';
import { PasteDialog, describePaste } from './paste.js';
import { PointerCapture } from './pointer.js';

const MOUSE_MODE_PREFERENCE = 'nanokvm.mouseMode';

/**
 * @param {object} o
 * @param {HTMLElement} o.stage  the element around the video; takes focus and events
 * @param {() => {width: number, height: number} | null} o.pictureSize
 * @param {(msg: object) => void} o.send  sends a ClientMsg
 * @param {(text: string) => void} o.notice  shows a message
 */
export function setupInput({ stage, pictureSize, send, notice }) {
  const $ = (id) => document.getElementById(id);
  let keyboard = null;
  const pointer = new PointerCapture(stage, pictureSize, send, () => keyboard.keepAliveWanted());
  keyboard = new KeyboardCapture(stage, send, () => pointer.buttons !== 0);
  const paste = new PasteDialog($('paste-dialog'), send);
  $('paste-button').addEventListener('click', () => paste.open());

  // Shortcuts: each button names its keys by KeyboardEvent.code, pressed in order.
  const menu = $('keys-menu');
  const keysButton = $('keys-button');
  const showMenu = (open) => {
    menu.hidden = !open;
    keysButton.setAttribute('aria-expanded', String(open));
  };
  keysButton.addEventListener('click', () => showMenu(menu.hidden));
  menu.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-keys]');
    if (button === null) return;
    const usages = button.dataset.keys.split(' ').map((code) => KEYMAP[code]);
    if (usages.some((u) => u === undefined)) throw new Error(`unknown key in ${button.dataset.keys}`);
    keyboard.chord(usages);
    showMenu(false);
  });

  const modeButton = $('mouse-mode-button');
  const setMode = (mode) => {
    pointer.setMode(mode);
    modeButton.textContent = mode === 'absolute' ? 'Mouse: absolute' : 'Mouse: relative';
    modeButton.setAttribute('aria-pressed', String(mode === 'relative'));
    try {
      localStorage.setItem(MOUSE_MODE_PREFERENCE, mode);
    } catch {
      // storage disabled
    }
  };
  modeButton.addEventListener('click', () => setMode(pointer.mode === 'absolute' ? 'relative' : 'absolute'));
  let saved = null;
  try {
    saved = localStorage.getItem(MOUSE_MODE_PREFERENCE);
  } catch {
    // storage disabled
  }
  setMode(saved === 'relative' ? 'relative' : 'absolute');

  const leds = $('leds');
  const hidState = $('hid-status');
  return {
    keyboard,
    pointer,
    onHidStatus(status) {
      for (const led of leds.querySelectorAll('[data-led]')) {
        const on = status.leds !== null && status.leds[led.dataset.led] === true;
        led.dataset.on = String(on);
      }
      leds.dataset.known = String(status.leds !== null);
      const down = ['keyboard', 'mouse', 'absolute'].filter((d) => status[d] !== 'Ready');
      hidState.hidden = down.length === 0;
      hidState.textContent = down.map((d) => `${d}: ${status[d].toLowerCase()}`).join(', ');
    },
    onPasteDone(result) {
      notice(describePaste(result));
    },
    /** The connection dropped: nothing is held any more as far as the server knows. */
    onDisconnect() {
      keyboard.held.clear();
      keyboard.keepAliveWanted();
    },
  };
}

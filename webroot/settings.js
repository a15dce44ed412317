// The settings form: the codec (this browser's choice) and the server's StreamSettings.

import { SETTINGS_LIMITS } from './protocol.js';

const NUMBER_FIELDS = ['fps', 'h264_bitrate_kbps', 'gop', 'jpeg_quality'];

export class SettingsForm {
  /**
   * @param form    the <form> with fields named codec, resolution and NUMBER_FIELDS
   * @param onApply called with { codec, settings } when the user applies a valid form
   */
  constructor(form, onApply) {
    this.form = form;
    // The browser checks the ranges before submit; the server checks them again.
    for (const name of NUMBER_FIELDS) {
      form.elements[name].min = SETTINGS_LIMITS[name].min;
      form.elements[name].max = SETTINGS_LIMITS[name].max;
    }
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      onApply(this.read());
    });
  }

  /** Shows the settings now in force on the server. */
  showSettings(settings) {
    this.form.elements.resolution.value = settings.resolution;
    for (const name of NUMBER_FIELDS) this.form.elements[name].value = settings[name];
  }

  /**
   * Shows what the stream really gets (a VideoStatus), and which settings the server's
   * encoder could not take as they are (`settings`: the settings in force, or null).
   */
  showEffective(status, settings) {
    const line = this.form.querySelector('#settings-effective');
    if (status === null || !status.signal) {
      line.hidden = true;
      return;
    }
    const asked = (value, wanted) => (settings !== null && wanted !== value ? ` (asked ${wanted})` : '');
    line.textContent =
      `In force: ${status.width}×${status.height}, ${status.fps} fps, ` +
      `${status.bitrate_kbps} kbit/s${asked(status.bitrate_kbps, settings?.h264_bitrate_kbps)}, ` +
      `GOP ${status.gop}${asked(status.gop, settings?.gop)}`;
    line.hidden = false;
  }

  showCodec(codec) {
    this.form.elements.codec.value = codec;
  }

  /** Offers H.264 only where this browser can decode it. */
  allowH264(allowed) {
    this.form.elements.codec.querySelector('option[value="h264"]').disabled = !allowed;
  }

  read() {
    const settings = { resolution: this.form.elements.resolution.value };
    for (const name of NUMBER_FIELDS) settings[name] = this.form.elements[name].valueAsNumber;
    return { codec: this.form.elements.codec.value, settings };
  }
}

export function sameSettings(a, b) {
  return a !== null && b !== null && Object.keys(a).every((key) => a[key] === b[key]);
}

// The front panel in the toolbar: Power, Reset and Force off buttons, the power and HDD LEDs,
// and the press in progress. Presses go over the console's WebSocket (ClientMsg::Atx); the
// LEDs and `busy` come back as ServerMsg::Atx on every change, the outcome as AtxDone.
//
// Reset, Force off, and Power while the target is on (it would shut down) are confirmed in a
// <dialog> first.

/** Allowed "force off" durations, as `LONG_PRESS_MS` in actors/src/atx/mod.rs. */
export const LONG_PRESS_S = Object.freeze({ min: 1, max: 30, default: 12 });

const BUSY_LABELS = { Power: 'power', PowerLong: 'force off', Reset: 'reset' };

export class AtxPanel {
  /**
   * @param root   the document holding the #atx-* elements
   * @param send   called with a protocol AtxAction ('Power', 'Reset', { PowerLong: { ms } })
   * @param notify called with a message for the user
   */
  constructor(root, send, notify) {
    const $ = (id) => root.getElementById(id);
    this.el = {
      powerLed: $('power-led'),
      hddLed: $('hdd-led'),
      power: $('atx-power'),
      reset: $('atx-reset'),
      forceOff: $('atx-force-off'),
      busy: $('atx-busy'),
      dialog: $('atx-confirm'),
      dialogText: $('atx-confirm-text'),
      duration: $('atx-duration'),
      durationLabel: $('atx-duration-label'),
      confirm: $('atx-confirm-ok'),
    };
    this.send = send;
    this.notify = notify;
    this.state = null;
    this.connected = false;
    this.busySince = 0;
    this.busyTimer = null;
    this.pending = null; // the action the dialog asks about

    Object.assign(this.el.duration, {
      min: LONG_PRESS_S.min,
      max: LONG_PRESS_S.max,
      step: 1,
      value: LONG_PRESS_S.default,
    });
    this.el.power.addEventListener('click', () => {
      if (this.state?.power_led) {
        this.ask('Power', 'The target is on: a power press asks it to shut down.', 'Press power');
      } else {
        this.send('Power');
      }
    });
    this.el.reset.addEventListener('click', () =>
      this.ask('Reset', 'Reset restarts the target at once; unsaved work is lost.', 'Reset'),
    );
    this.el.forceOff.addEventListener('click', () =>
      this.ask(
        'PowerLong',
        'Holding the power button cuts the target\'s power without shutting down; unsaved work is lost.',
        'Force off',
      ),
    );
    this.el.dialog.addEventListener('close', () => this.onDialogClosed());
    this.render();
  }

  ask(kind, text, confirmLabel) {
    this.pending = kind;
    this.el.dialogText.textContent = text;
    this.el.confirm.textContent = confirmLabel;
    this.el.durationLabel.hidden = kind !== 'PowerLong';
    this.el.dialog.returnValue = '';
    this.el.dialog.showModal();
  }

  onDialogClosed() {
    const kind = this.pending;
    this.pending = null;
    if (this.el.dialog.returnValue !== 'confirm' || kind === null) return;
    if (kind !== 'PowerLong') {
      this.send(kind);
      return;
    }
    const seconds = Number(this.el.duration.value);
    if (!Number.isFinite(seconds) || seconds < LONG_PRESS_S.min || seconds > LONG_PRESS_S.max) {
      this.notify(`Force off: hold for ${LONG_PRESS_S.min} to ${LONG_PRESS_S.max} s.`);
      return;
    }
    this.send({ PowerLong: { ms: Math.round(seconds * 1000) } });
  }

  /** The server's AtxState. */
  showState(state) {
    const wasBusy = this.state?.busy ?? null;
    this.state = state;
    if (state.busy !== null && wasBusy === null) this.busySince = performance.now();
    this.render();
  }

  /** A press this console asked for finished (or was refused). */
  showDone({ action, ok, message }) {
    if (!ok) this.notify(`${BUSY_LABELS[action] ?? action}: ${message}`);
  }

  setConnected(connected) {
    this.connected = connected;
    // What the LEDs showed belongs to a connection that is gone.
    if (!connected) this.state = null;
    this.render();
  }

  render() {
    const { powerLed, hddLed, power, reset, forceOff, busy } = this.el;
    const s = this.state;
    powerLed.dataset.on = String(s?.power_led === true);
    powerLed.title = s === null ? 'Power LED: unknown' : `Power LED: ${s.power_led ? 'on' : 'off'}`;
    hddLed.hidden = s === null || s.hdd_led === null;
    hddLed.dataset.on = String(s?.hdd_led === true);
    const idle = this.connected && s !== null && s.busy === null;
    for (const b of [power, reset, forceOff]) b.disabled = !idle;
    clearInterval(this.busyTimer);
    this.busyTimer = null;
    if (s?.busy) {
      const label = BUSY_LABELS[s.busy] ?? s.busy;
      const tick = () => {
        const seconds = Math.floor((performance.now() - this.busySince) / 1000);
        busy.textContent = `${label}… ${seconds} s`;
      };
      tick();
      this.busyTimer = setInterval(tick, 250);
      busy.hidden = false;
    } else {
      busy.textContent = '';
      busy.hidden = true;
    }
  }
}

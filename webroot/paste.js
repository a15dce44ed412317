// The paste dialog: text typed on the target by the server, key by key, for the layout the
// target uses. One paste at a time; the server answers with how much was typed.

const LAYOUT_PREFERENCE = 'nanokvm.pasteLayout';

export class PasteDialog {
  /**
   * @param {HTMLDialogElement} dialog  with a form holding [name=text] and [name=layout]
   * @param {(msg: object) => void} send  sends a ClientMsg
   */
  constructor(dialog, send) {
    this.dialog = dialog;
    this.send = send;
    this.form = dialog.querySelector('form');
    this.text = this.form.elements.namedItem('text');
    this.layout = this.form.elements.namedItem('layout');
    this.layout.value = loadLayout() ?? 'Us';
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.submit();
    });
    dialog.querySelector('[data-close]').addEventListener('click', () => dialog.close());
  }

  open() {
    this.dialog.showModal();
    this.text.focus();
  }

  submit() {
    const text = this.text.value;
    if (text === '') return;
    saveLayout(this.layout.value);
    this.send({ Paste: { text, layout: this.layout.value } });
    this.text.value = '';
    this.dialog.close();
  }
}

/** What to tell the user about a finished paste. */
export function describePaste({ typed, unknown }) {
  const chars = typed === 1 ? 'character' : 'characters';
  const skipped = unknown === '' ? '' : `; not on this layout, skipped: ${[...unknown].join(' ')}`;
  return `Pasted ${typed} ${chars}${skipped}.`;
}

function loadLayout() {
  try {
    return localStorage.getItem(LAYOUT_PREFERENCE);
  } catch {
    return null;
  }
}

function saveLayout(layout) {
  try {
    localStorage.setItem(LAYOUT_PREFERENCE, layout);
  } catch {
    // storage disabled: the choice lasts for this page only
  }
}
